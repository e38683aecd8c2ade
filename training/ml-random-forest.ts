/**
 * The second training engine: the `ml-random-forest` package (ml-cart trees) grows the trees, and
 * they are converted into the same flat {@link ForestModel} that `forest.ts` produces, so
 * `compiled.ts` scores both and the artifact does not say which engine made it.
 *
 * The package is kept for comparison, not for scale: each node tries every midpoint of every
 * feature and copies the rows for each candidate, so training grows about as n^1.8 (see
 * DESIGN.md, Model). Its own probabilities are hard-vote fractions; the converted forest scores
 * the mean of leaf class fractions instead, as `forest.ts` and scikit-learn do.
 *
 * Node layout read from ml-cart 2.1 `src/TreeNode.js` and ml-random-forest 2.1
 * `src/RandomForestBase.js` (the files in node_modules):
 * - a node splits when it has both `left` and `right` (leaves may still carry the `splitColumn` of
 *   a split they rejected); rows with `row[splitColumn] < splitValue` go left, where
 *   `splitValue` is the midpoint of two neighbouring training values;
 * - `splitColumn` indexes the tree's own columns, which are `indexes[t]` of the training matrix;
 * - a leaf keeps `distribution`, the class fractions of its rows (no counts; one column when the
 *   leaf holds class 0 only); split nodes keep no class counts at all.
 */
import { RandomForestClassifier } from 'ml-random-forest'
import { seededRandom } from '../core/random.ts'
import type { Random } from '../core/random.ts'
import { TrainingError } from './errors.ts'
import { assembleForest, candidateCount, checkMatrix, resolveOptions } from './forest.ts'
import type { ForestModel, ForestOptions, GrownTrees, TrainingMatrix } from './forest.ts'

/** The fields of an ml-cart `TreeNode` the conversion reads. */
interface CartNode {
  splitColumn?: number
  splitValue?: number
  left?: CartNode
  right?: CartNode
}

/** What {@link fitMlRandomForest} grew: one single-tree package forest per tree, and its rows. */
export interface MlRandomForestFit {
  /** Tree `t` is `forests[t].estimators[0]`, seeing the columns `forests[t].indexes[0]`. */
  forests: RandomForestClassifier[]
  /** How often each training row was drawn for each tree (its bootstrap count). */
  draws: Uint32Array[]
  /** Weights of class 0 and class 1 for node values and importances. */
  classWeight: readonly [number, number]
}

/**
 * Grows the trees with the package. {@link trainMlRandomForest} describes the option mapping.
 * Exposed with {@link convertMlRandomForest} so tests can compare the package's trees with ours.
 */
export function fitMlRandomForest (matrix: TrainingMatrix, options: ForestOptions = {}): MlRandomForestFit {
  checkMatrix(matrix)
  const resolved = resolveOptions(options)
  const { rows, columns, y } = matrix
  const features = candidateCount(resolved.maxFeatures, columns)
  if (!Number.isInteger(resolved.seed)) throw new TrainingError('CHURN_TRAIN_BAD_OPTIONS', `seed must be an integer, got ${resolved.seed}`)
  if (resolved.classWeight !== 'balanced' && resolved.classWeight !== 'none') throw new TrainingError('CHURN_TRAIN_BAD_OPTIONS', `classWeight must be 'balanced' or 'none', got ${String(resolved.classWeight)}`)
  let positives = 0
  for (let i = 0; i < rows; i++) positives += y[i] as number
  const balanced = resolved.classWeight === 'balanced'
  const classWeight: [number, number] = balanced ? [rows / (2 * (rows - positives)), rows / (2 * positives)] : [1, 1]
  const copies = classCopies(positives, rows - positives, balanced)
  const values = Array.from({ length: rows }, (_, i) => Array.from(matrix.x.subarray(i * columns, (i + 1) * columns)))
  const fit: MlRandomForestFit = { forests: [], draws: [], classWeight }
  for (let t = 0; t < resolved.nEstimators; t++) {
    // The same seed per tree and bootstrap draws as forest.ts's growTrees, so for one seed
    // tree t of both engines is grown on the same sample.
    const treeSeed = (resolved.seed * 1_000_003 + t * 7919) >>> 0
    const random = seededRandom(treeSeed)
    const draws = new Uint32Array(rows)
    if (resolved.bootstrap) {
      for (let i = 0; i < rows; i++) draws[Math.floor(random.next() * rows)]! += 1
    } else {
      draws.fill(1)
    }
    const sample = expandSample(values, y, draws, copies, random)
    const forest = new RandomForestClassifier({
      nEstimators: 1,
      // We drew the rows above (the package's own bagging cannot weigh classes, and it keeps no
      // record of the rows each tree saw, which the node values need).
      useSampleBagging: false,
      maxFeatures: packageMaxFeatures(features, columns),
      // The package's `replacement` is about features: without it a tree sees distinct columns.
      replacement: false,
      seed: treeSeed,
      noOOB: true,
      treeOptions: {
        gainFunction: 'gini',
        splitFunction: 'mean',
        maxDepth: resolved.maxDepth,
        // The package stops at nodes of <= minNumSamples rows; ours cannot split under
        // 2 * minSamplesLeaf rows, so this is the same node-size rule. Unlike ours it does not
        // keep each child at minSamplesLeaf rows or more, and it counts repeated rows.
        minNumSamples: 2 * resolved.minSamplesLeaf - 1,
        // forest.ts splits on any gain above 1e-12 of the node's weight; the package's gain is
        // per row. Its default (0.01) would stop trees early.
        gainThreshold: 1e-12
      }
    })
    forest.train(sample.x, sample.y)
    fit.forests.push(forest)
    fit.draws.push(draws)
  }
  return fit
}

/**
 * Copies per draw of a row of each class. The package's Gini counts rows, so a class weight can
 * only be a number of copies; splits depend on the ratio of the weights alone, so the majority
 * class gets one copy per draw and the minority r = n_majority / n_minority on average.
 */
function classCopies (positives: number, negatives: number, balanced: boolean): { minority: number, ratio: number } {
  if (!balanced) return { minority: -1, ratio: 1 }
  return { minority: positives < negatives ? 1 : 0, ratio: Math.max(negatives, positives) / Math.min(negatives, positives) }
}

/**
 * The rows the package grows one tree on: each row as often as it was drawn, a minority row
 * floor(r) or ceil(r) times per draw at random so that the mean is exactly r.
 */
function expandSample (
  values: readonly number[][],
  y: Uint8Array,
  draws: Uint32Array,
  { minority, ratio }: { minority: number, ratio: number },
  random: Random
): { x: number[][], y: number[] } {
  const whole = Math.floor(ratio)
  const x: number[][] = []
  const labels: number[] = []
  for (let i = 0; i < draws.length; i++) {
    const drawn = draws[i] as number
    if (drawn === 0) continue
    const label = y[i] as number
    let copies = drawn
    if (label === minority) {
      copies = drawn * whole
      for (let d = 0; d < drawn; d++) if (random.next() < ratio - whole) copies++
    }
    for (let c = 0; c < copies; c++) {
      x.push(values[i] as number[])
      labels.push(label)
    }
  }
  return { x, y: labels }
}

/**
 * The package reads an integer as a count of features but 1 (and any number in (0, 1]) as a
 * fraction of them; one feature has to be asked for as a fraction that floors to it.
 */
function packageMaxFeatures (features: number, columns: number): number {
  if (features >= columns) return 1
  return features >= 2 ? features : 1.5 / columns
}

const bits = new Float64Array(1)
const word = new BigUint64Array(bits.buffer)

/** The largest double below `v`: `x < v` and `x <= largestBelow(v)` agree for every x. */
export function largestBelow (v: number): number {
  if (Number.isNaN(v) || v === -Infinity) return v
  if (v === 0) return -Number.MIN_VALUE
  bits[0] = v
  word[0] = v > 0 ? (word[0] as bigint) - 1n : (word[0] as bigint) + 1n
  return bits[0]
}

/**
 * Converts the package's trees into a {@link ForestModel}. Node values are the weighted class-1
 * fractions of the rows each tree was grown on (routed through the converted tree with their
 * draw counts and class weights), so split nodes get one too and leaves match the package's
 * `distribution` when classes are not weighted.
 */
export function convertMlRandomForest (matrix: TrainingMatrix, fit: MlRandomForestFit): ForestModel {
  const parts: GrownTrees[] = []
  for (let t = 0; t < fit.forests.length; t++) {
    const forest = fit.forests[t] as RandomForestClassifier
    const root = (forest.estimators?.[0] as { root?: CartNode } | undefined)?.root
    const columns = forest.indexes?.[0]
    if (root === undefined || columns === undefined) throw new TypeError(`ml-random-forest tree ${t} has no root or column indexes; was it trained?`)
    parts.push(convertTree(matrix, root, columns, fit.draws[t] as Uint32Array, fit.classWeight))
  }
  return assembleForest(matrix.columns, parts)
}

function convertTree (matrix: TrainingMatrix, root: CartNode, columns: readonly number[], draws: Uint32Array, classWeight: readonly [number, number]): GrownTrees {
  const feature: number[] = []
  const threshold: number[] = []
  const left: number[] = []
  const right: number[] = []
  // Pre-order, left child first, so a tree's root is its node 0.
  const pending: Array<{ node: CartNode, parent: number, side: number[] }> = [{ node: root, parent: -1, side: left }]
  while (pending.length > 0) {
    const { node, parent, side } = pending.pop() as { node: CartNode, parent: number, side: number[] }
    const index = feature.length
    if (parent >= 0) side[parent] = index
    left.push(-1)
    right.push(-1)
    if (node.left !== undefined && node.right !== undefined) {
      feature.push(columns[node.splitColumn as number] as number)
      threshold.push(largestBelow(node.splitValue as number))
      pending.push({ node: node.right, parent: index, side: right }, { node: node.left, parent: index, side: left })
    } else {
      feature.push(-1)
      threshold.push(0)
    }
  }
  const size = feature.length
  const w0 = new Float64Array(size)
  const w1 = new Float64Array(size)
  const { x, y, rows } = matrix
  for (let i = 0; i < rows; i++) {
    const drawn = draws[i] as number
    if (drawn === 0) continue
    const label = y[i] as number
    const weight = drawn * (classWeight[label] as number)
    const sums = label === 1 ? w1 : w0
    let node = 0
    for (;;) {
      sums[node]! += weight
      const f = feature[node] as number
      if (f < 0) break
      node = (x[i * matrix.columns + f] as number) <= (threshold[node] as number) ? left[node] as number : right[node] as number
    }
  }
  const value = new Float64Array(size)
  const importance = new Float64Array(matrix.columns)
  // Weighted impurity decrease per split, as forest.ts counts it: sum over the children of
  // (c0^2 + c1^2) / w minus the parent's.
  const score = (n: number): number => ((w0[n] as number) ** 2 + (w1[n] as number) ** 2) / ((w0[n] as number) + (w1[n] as number))
  for (let n = 0; n < size; n++) {
    // The package never makes an empty node, so one here means our routing differs from its.
    if ((w0[n] as number) + (w1[n] as number) === 0) throw new TrainingError('CHURN_TRAIN_ENGINE', `converted ml-random-forest node ${n} receives none of the rows its tree was grown on`)
    value[n] = (w1[n] as number) / ((w0[n] as number) + (w1[n] as number))
    const f = feature[n] as number
    if (f >= 0) importance[f]! += score(left[n] as number) + score(right[n] as number) - score(n)
  }
  return { nodes: { feature, threshold, left, right, value }, roots: [0], importances: [importance] }
}

/**
 * Trains a forest with the `ml-random-forest` package and converts it to a {@link ForestModel}.
 * Options map onto the package as follows:
 * - `nEstimators`, `maxDepth` (root at depth 0 in both), Gini: as in `forest.ts`; the package's
 *   minimum gain to split (0.01 by default) is set to `forest.ts`'s tolerance, 1e-12.
 * - `bootstrap`, `seed`: the rows of tree t are drawn here exactly as `forest.ts` draws them (n
 *   draws with replacement from the tree's seed), then handed to a one-tree package forest with
 *   its own bagging off; the package's `replacement` is feature sampling and is off.
 * - `maxFeatures`: the same count as `forest.ts`, but the package draws it once per tree (each
 *   tree sees only those columns), not per node as `forest.ts` and scikit-learn do: trees are
 *   weaker and more diverse.
 * - `minSamplesLeaf`: the package's `minNumSamples = 2 * minSamplesLeaf - 1` (a node of that many
 *   rows or fewer is a leaf); it does not keep each child at `minSamplesLeaf` rows, and it counts repeated rows.
 * - `classWeight: 'balanced'` (weights n / (2 n_class), as in `forest.ts`): emulated as weights,
 *   not as resampling. The rows drawn stay the same; each draw of a minority row is copied floor(r)
 *   or ceil(r) times (mean r = n_majority / n_minority), so the package's Gini over copies is the
 *   weighted Gini of the draws with the right class-weight ratio in expectation. Node values and
 *   importances use the exact weights. Costs: the package splits 2 n_majority rows instead
 *   of n (10 to 50% more time measured at 1,000 and 2,000 rows), and copies count towards
 *   `minNumSamples`.
 * - `maxBins` does not apply (the package tries every midpoint); `noOOB` is always set.
 */
export function trainMlRandomForest (matrix: TrainingMatrix, options: ForestOptions = {}): ForestModel {
  return convertMlRandomForest(matrix, fitMlRandomForest(matrix, options))
}
