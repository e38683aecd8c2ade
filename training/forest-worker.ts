/**
 * A worker thread of `trainForestParallel`: grows its contiguous range of the forest's trees over
 * the shared bin codes and posts them back as typed arrays, moved rather than copied.
 */
import { parentPort, workerData } from 'node:worker_threads'
import { growTrees } from './forest.ts'
import type { GrownTrees } from './forest.ts'
import type { ForestJob } from './parallel.ts'

const { binned, y, options, first, count } = workerData as ForestJob
const grown = growTrees(binned, y, options, first, count)
const feature = Int32Array.from(grown.nodes.feature)
const threshold = Float64Array.from(grown.nodes.threshold)
const left = Int32Array.from(grown.nodes.left)
const right = Int32Array.from(grown.nodes.right)
const value = Float64Array.from(grown.nodes.value)
const roots = Int32Array.from(grown.roots)
const importances = Array.from(grown.importances, importance => Float64Array.from(importance))
const trees: GrownTrees = { nodes: { feature, threshold, left, right, value }, roots, importances }
parentPort?.postMessage(trees, [feature, threshold, left, right, value, roots, ...importances].map(array => array.buffer))
