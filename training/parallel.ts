/**
 * Training a forest on several cores: the features are binned once here, into a
 * SharedArrayBuffer the worker threads read without a copy; each worker grows a contiguous range
 * of the trees with `growTrees` (every tree from its own seed), and the ranges are joined in tree
 * order. The model is therefore the one `trainForest` grows with the same options, whatever the
 * thread count.
 *
 * Every range goes to a worker, none to this thread, so the caller's event loop (health probes,
 * logs) keeps running while the trees grow.
 */
import { availableParallelism } from 'node:os'
import { Worker } from 'node:worker_threads'
import { binFeatures } from './binning.ts'
import type { BinnedFeatures } from './binning.ts'
import { TrainingError } from './errors.ts'
import { assembleForest, checkMatrix, growTrees, resolveOptions } from './forest.ts'
import type { ForestModel, ForestOptions, GrownTrees, TrainingMatrix } from './forest.ts'

export interface ParallelOptions {
  /**
   * Threads growing trees (at most one per tree); 1 grows them in the calling thread, no worker.
   * @defaultValue os.availableParallelism()
   */
  threads?: number
}

/** What one worker is asked to grow (its `workerData`). */
export interface ForestJob {
  binned: BinnedFeatures
  y: Uint8Array
  options: Required<ForestOptions>
  first: number
  count: number
}

/**
 * Trains the same forest as `trainForest(matrix, options)`, its trees grown on `threads` worker
 * threads. A worker's error rejects the promise with that error (its `code` kept), after the
 * other workers are stopped; no worker outlives the promise.
 */
export async function trainForestParallel (matrix: TrainingMatrix, options: ForestOptions = {}, parallel: ParallelOptions = {}): Promise<ForestModel> {
  checkMatrix(matrix)
  const resolved = resolveOptions(options)
  const threads = Math.min(threadCount(parallel.threads), resolved.nEstimators)
  const binned = binFeatures(matrix.x, matrix.rows, matrix.columns, resolved.maxBins)
  if (threads === 1) return assembleForest(matrix.columns, [growTrees(binned, matrix.y, resolved, 0, resolved.nEstimators)])
  const workers: Worker[] = []
  for (let k = 0; k < threads; k++) {
    const first = Math.floor((k * resolved.nEstimators) / threads)
    const next = Math.floor(((k + 1) * resolved.nEstimators) / threads)
    const job: ForestJob = { binned, y: matrix.y, options: resolved, first, count: next - first }
    workers.push(new Worker(new URL('./forest-worker.ts', import.meta.url), { workerData: job }))
  }
  try {
    return assembleForest(matrix.columns, await Promise.all(workers.map(treesOf)))
  } catch (error) {
    await Promise.all(workers.map(worker => worker.terminate()))
    throw error
  }
}

function threadCount (threads: number | undefined): number {
  if (threads === undefined) return availableParallelism()
  if (!Number.isInteger(threads) || threads < 1) throw new TrainingError('CHURN_TRAIN_BAD_OPTIONS', `threads must be a positive integer, got ${threads}`)
  return threads
}

/** The trees a worker posts, once it has exited; its error, or a rejection if it exits without them. */
async function treesOf (worker: Worker): Promise<GrownTrees> {
  return await new Promise((resolve, reject) => {
    let trees: GrownTrees | undefined
    worker.once('message', (grown: GrownTrees) => { trees = grown })
    worker.once('error', reject)
    worker.once('exit', code => {
      if (trees !== undefined) resolve(trees)
      else reject(new TrainingError('CHURN_TRAIN_ENGINE', `a forest worker exited with code ${code} before posting its trees`))
    })
  })
}
