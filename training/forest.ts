/**
 * The random-forest classifier (binary), written for speed: features are binned once
 * (`binning.ts`), each node's split is found from per-bin class histograms, rows live in one
 * typed index array partitioned in place, and a bootstrap sample is a vector of counts (weights),
 * never a copy of the data.
 *
 * It follows scikit-learn's RandomForestClassifier where that matters for results: bootstrap
 * samples of n rows, `max_features` candidates per node (more when those are all constant in the
 * node), Gini impurity on weighted counts, `class_weight: 'balanced'` as n / (2 n_class) from the
 * whole training set, `min_samples_leaf` counted in distinct rows, leaves holding the weighted
 * class-1 fraction and the forest's probability the mean of its trees' (soft voting), and
 * impurity-decrease importances normalised per tree, then averaged.
 *
 * The trees come out as flat arrays (see {@link ForestModel}); `compiled.ts` scores them.
 */
import { seededRandom } from '../core/random.ts'
import { DEFAULT_MAX_BINS, binFeatures } from './binning.ts'
import { TrainingError } from './errors.ts'

export interface ForestOptions {
  /** @defaultValue 200 */
  nEstimators?: number
  /** @defaultValue 6 */
  maxDepth?: number
  /** @defaultValue 2 */
  minSamplesLeaf?: number
  /** Candidate features per node: 'sqrt' (the default), 'log2', a count, or a fraction in (0, 1]. */
  maxFeatures?: 'sqrt' | 'log2' | number
  /** 'balanced' weighs classes by n / (2 n_class); @defaultValue 'balanced' */
  classWeight?: 'balanced' | 'none'
  /** @defaultValue true */
  bootstrap?: boolean
  /** @defaultValue 255 */
  maxBins?: number
  /** @defaultValue 42 */
  seed?: number
}

/** A trained forest as flat arrays: node `i` of any tree is a split or a leaf. */
export interface ForestModel {
  nFeatures: number
  /** Index of each tree's root node. */
  roots: Int32Array
  /** The split feature, or -1 for a leaf. */
  feature: Int32Array
  /** Rows with `x[feature] <= threshold` go left. */
  threshold: Float64Array
  left: Int32Array
  right: Int32Array
  /** Weighted class-1 fraction of the training rows in the node (a leaf's is its probability). */
  value: Float64Array
  /** Mean decrease in impurity per feature, summing to 1 (all 0 when no tree split). */
  importances: Float64Array
}

export interface TrainingMatrix {
  /** Row-major features, `rows` x `columns`, no NaN (impute first). */
  x: Float64Array
  /** 0 or 1 per row. */
  y: Uint8Array
  rows: number
  columns: number
}

export function resolveOptions (options: ForestOptions = {}): Required<ForestOptions> {
  const resolved: Required<ForestOptions> = {
    nEstimators: 200, maxDepth: 6, minSamplesLeaf: 2, maxFeatures: 'sqrt', classWeight: 'balanced', bootstrap: true, maxBins: DEFAULT_MAX_BINS, seed: 42, ...options
  }
  const positiveInteger = (name: keyof ForestOptions, value: number): void => {
    if (!Number.isInteger(value) || value < 1) throw new TrainingError('CHURN_TRAIN_BAD_OPTIONS', `${name} must be a positive integer, got ${value}`)
  }
  positiveInteger('nEstimators', resolved.nEstimators)
  positiveInteger('maxDepth', resolved.maxDepth)
  positiveInteger('minSamplesLeaf', resolved.minSamplesLeaf)
  if (resolved.maxBins < 2 || resolved.maxBins > 256 || !Number.isInteger(resolved.maxBins)) throw new TrainingError('CHURN_TRAIN_BAD_OPTIONS', `maxBins must be an integer within 2..256, got ${resolved.maxBins}`)
  return resolved
}

export function candidateCount (maxFeatures: ForestOptions['maxFeatures'], columns: number): number {
  let count: number
  if (maxFeatures === undefined || maxFeatures === 'sqrt') count = Math.floor(Math.sqrt(columns))
  else if (maxFeatures === 'log2') count = Math.floor(Math.log2(columns))
  else if (maxFeatures > 0 && maxFeatures <= 1 && !Number.isInteger(maxFeatures)) count = Math.floor(maxFeatures * columns)
  else if (Number.isInteger(maxFeatures) && maxFeatures >= 1) count = Math.min(columns, maxFeatures)
  else throw new TrainingError('CHURN_TRAIN_BAD_OPTIONS', `maxFeatures must be 'sqrt', 'log2', a positive integer or a fraction in (0, 1], got ${maxFeatures}`)
  return Math.max(1, count)
}

/** Checks a matrix before training: shapes, labels, NaN, both classes present. */
export function checkMatrix (m: TrainingMatrix): void {
  if (m.rows < 2) throw new TrainingError('CHURN_TRAIN_EMPTY', `the training set has ${m.rows} row(s); at least 2 are needed`)
  if (m.columns < 1) throw new TrainingError('CHURN_TRAIN_EMPTY', 'the training set has no feature columns')
  if (m.x.length !== m.rows * m.columns || m.y.length !== m.rows) throw new TrainingError('CHURN_TRAIN_BAD_INPUT', `matrix of ${m.x.length} values and ${m.y.length} labels does not match ${m.rows} rows x ${m.columns} columns`)
  let positives = 0
  for (let i = 0; i < m.rows; i++) {
    const label = m.y[i] as number
    if (label > 1) throw new TrainingError('CHURN_TRAIN_BAD_INPUT', `label of row ${i} is ${label}; labels must be 0 or 1`)
    positives += label
  }
  if (positives === 0 || positives === m.rows) throw new TrainingError('CHURN_TRAIN_ONE_CLASS', `every training label is ${positives === 0 ? 0 : 1}; a classifier needs both classes`)
  for (let i = 0; i < m.x.length; i++) {
    if (!Number.isFinite(m.x[i])) throw new TrainingError('CHURN_TRAIN_BAD_INPUT', `feature ${i % m.columns} of row ${Math.floor(i / m.columns)} is ${m.x[i]}; impute missing values before training`)
  }
}

/** Flat node storage of one or more trees, as {@link ForestModel} lays it out. */
export interface TreeNodes {
  feature: ArrayLike<number>
  threshold: ArrayLike<number>
  left: ArrayLike<number>
  right: ArrayLike<number>
  value: ArrayLike<number>
}

/** Trees grown by {@link growTrees}: their nodes (indices local to them), roots and importances. */
export interface GrownTrees {
  nodes: TreeNodes
  roots: ArrayLike<number>
  importances: ArrayLike<ArrayLike<number>>
}

/** Growable flat node storage for one or more trees. */
class NodeArrays implements TreeNodes {
  feature: number[] = []
  threshold: number[] = []
  left: number[] = []
  right: number[] = []
  value: number[] = []

  add (value: number): number {
    this.feature.push(-1)
    this.threshold.push(0)
    this.left.push(-1)
    this.right.push(-1)
    this.value.push(value)
    return this.value.length - 1
  }
}

/** Work buffers shared by every node of every tree a builder grows. */
interface Scratch {
  rows: Uint32Array
  weight: Float64Array
  hist0: Float64Array
  hist1: Float64Array
  count: Int32Array
  order: Int32Array
}

/**
 * Grows trees `first..first+count-1` of a forest (each from its own seed, so a forest is the same
 * however its trees are shared among workers). Returns their nodes and unnormalised importances.
 */
export function growTrees (
  binned: { codes: Uint8Array[], thresholds: Float64Array[] },
  y: Uint8Array,
  options: Required<ForestOptions>,
  first: number,
  count: number
): GrownTrees {
  const rows = y.length
  const columns = binned.codes.length
  const candidates = candidateCount(options.maxFeatures, columns)
  let positives = 0
  for (let i = 0; i < rows; i++) positives += y[i] as number
  const classWeight = options.classWeight === 'balanced'
    ? [rows / (2 * (rows - positives)), rows / (2 * positives)]
    : [1, 1]
  const scratch: Scratch = {
    rows: new Uint32Array(rows),
    weight: new Float64Array(rows),
    hist0: new Float64Array(256),
    hist1: new Float64Array(256),
    count: new Int32Array(256),
    order: Int32Array.from({ length: columns }, (_, i) => i)
  }
  const nodes = new NodeArrays()
  const roots: number[] = []
  const importances: Float64Array[] = []
  for (let t = first; t < first + count; t++) {
    const random = seededRandom((options.seed * 1_000_003 + t * 7919) >>> 0)
    // The candidate order is shuffled in place at every node; it restarts with each tree, or a
    // tree would depend on the trees grown before it in this call, not only on its seed.
    for (let f = 0; f < columns; f++) scratch.order[f] = f
    // Bootstrap as counts: the weight of a row is how often it was drawn times its class weight.
    const { weight } = scratch
    weight.fill(0)
    if (options.bootstrap) {
      for (let i = 0; i < rows; i++) weight[Math.floor(random.next() * rows)]! += 1
    } else {
      weight.fill(1)
    }
    let used = 0
    let w0 = 0
    let w1 = 0
    for (let i = 0; i < rows; i++) {
      const w = weight[i] as number
      if (w === 0) continue
      const label = y[i] as number
      const weighted = w * (classWeight[label] as number)
      weight[i] = weighted
      if (label === 1) w1 += weighted
      else w0 += weighted
      scratch.rows[used++] = i
    }
    const importance = new Float64Array(columns)
    roots.push(growTree(binned, y, options, candidates, scratch, nodes, importance, random, used, w0, w1))
    importances.push(importance)
  }
  return { nodes, roots, importances }
}

function growTree (
  binned: { codes: Uint8Array[], thresholds: Float64Array[] },
  y: Uint8Array,
  options: Required<ForestOptions>,
  candidates: number,
  scratch: Scratch,
  nodes: NodeArrays,
  importance: Float64Array,
  random: ReturnType<typeof seededRandom>,
  used: number,
  rootW0: number,
  rootW1: number
): number {
  const { rows, weight, hist0, hist1, count, order } = scratch
  const columns = order.length
  const minLeaf = options.minSamplesLeaf
  const root = nodes.add(rootW1 / (rootW0 + rootW1))
  // Depth-first: [node, start, end, depth, w0, w1] per pending node.
  const stack: number[] = [root, 0, used, 0, rootW0, rootW1]
  while (stack.length > 0) {
    const w1 = stack.pop() as number
    const w0 = stack.pop() as number
    const depth = stack.pop() as number
    const end = stack.pop() as number
    const start = stack.pop() as number
    const node = stack.pop() as number
    const n = end - start
    if (depth >= options.maxDepth || w0 === 0 || w1 === 0 || n < 2 * minLeaf) continue
    const total = w0 + w1
    // Best split: maximise sum over children of (c0^2 + c1^2) / w, i.e. minimise weighted Gini.
    const parentScore = (w0 * w0 + w1 * w1) / total
    let bestScore = parentScore + 1e-12 * total
    let bestFeature = -1
    let bestBin = -1
    let bestL0 = 0
    let bestL1 = 0
    let visited = 0
    // Features in a fresh random order; stop after `candidates` non-constant ones once a split exists.
    for (let k = 0; k < columns; k++) {
      if (visited >= candidates && bestFeature >= 0) break
      const swap = k + Math.floor(random.next() * (columns - k))
      const f = order[swap] as number
      order[swap] = order[k] as number
      order[k] = f
      const codes = binned.codes[f] as Uint8Array
      const bins = (binned.thresholds[f] as Float64Array).length + 1
      if (bins < 2) continue
      hist0.fill(0, 0, bins)
      hist1.fill(0, 0, bins)
      count.fill(0, 0, bins)
      for (let i = start; i < end; i++) {
        const r = rows[i] as number
        const b = codes[r] as number
        if (y[r] === 1) hist1[b]! += weight[r] as number
        else hist0[b]! += weight[r] as number
        count[b]!++
      }
      let occupied = 0
      for (let b = 0; b < bins; b++) if ((count[b] as number) > 0) occupied++
      if (occupied < 2) continue
      visited++
      let l0 = 0
      let l1 = 0
      let ln = 0
      for (let b = 0; b < bins - 1; b++) {
        if (count[b] === 0) continue
        l0 += hist0[b] as number
        l1 += hist1[b] as number
        ln += count[b] as number
        if (ln < minLeaf) continue
        if (n - ln < minLeaf) break
        const lw = l0 + l1
        const r0 = w0 - l0
        const r1 = w1 - l1
        const rw = r0 + r1
        if (lw <= 0 || rw <= 0) continue
        const score = (l0 * l0 + l1 * l1) / lw + (r0 * r0 + r1 * r1) / rw
        if (score > bestScore) {
          bestScore = score
          bestFeature = f
          bestBin = b
          bestL0 = l0
          bestL1 = l1
        }
      }
    }
    if (bestFeature < 0) continue
    // Partition rows[start, end) in place: codes <= bestBin first.
    const codes = binned.codes[bestFeature] as Uint8Array
    let i = start
    let j = end - 1
    while (i <= j) {
      if ((codes[rows[i] as number] as number) <= bestBin) {
        i++
      } else {
        const tmp = rows[i] as number
        rows[i] = rows[j] as number
        rows[j] = tmp
        j--
      }
    }
    const r0 = w0 - bestL0
    const r1 = w1 - bestL1
    const leftNode = nodes.add(bestL1 / (bestL0 + bestL1))
    const rightNode = nodes.add(r1 / (r0 + r1))
    nodes.feature[node] = bestFeature
    nodes.threshold[node] = (binned.thresholds[bestFeature] as Float64Array)[bestBin] as number
    nodes.left[node] = leftNode
    nodes.right[node] = rightNode
    // Impurity decrease, weighted: total * gini(parent) - sum of children's.
    importance[bestFeature]! += bestScore - parentScore
    stack.push(rightNode, i, end, depth + 1, r0, r1)
    stack.push(leftNode, start, i, depth + 1, bestL0, bestL1)
  }
  return root
}

/** Joins groups of grown trees (in tree order) into one model. */
export function assembleForest (columns: number, parts: readonly GrownTrees[]): ForestModel {
  const size = parts.reduce((sum, p) => sum + p.nodes.value.length, 0)
  const model: ForestModel = {
    nFeatures: columns,
    roots: new Int32Array(parts.reduce((sum, p) => sum + p.roots.length, 0)),
    feature: new Int32Array(size),
    threshold: new Float64Array(size),
    left: new Int32Array(size),
    right: new Int32Array(size),
    value: new Float64Array(size),
    importances: new Float64Array(columns)
  }
  let offset = 0
  let tree = 0
  for (const { nodes, roots, importances } of parts) {
    const length = nodes.value.length
    for (let i = 0; i < length; i++) {
      const split = (nodes.left[i] as number) >= 0
      model.feature[offset + i] = nodes.feature[i] as number
      model.threshold[offset + i] = nodes.threshold[i] as number
      model.left[offset + i] = split ? offset + (nodes.left[i] as number) : -1
      model.right[offset + i] = split ? offset + (nodes.right[i] as number) : -1
      model.value[offset + i] = nodes.value[i] as number
    }
    for (let r = 0; r < roots.length; r++) model.roots[tree++] = offset + (roots[r] as number)
    for (const importance of Array.from(importances)) {
      let sum = 0
      for (let f = 0; f < columns; f++) sum += importance[f] as number
      if (sum > 0) for (let f = 0; f < columns; f++) model.importances[f]! += (importance[f] as number) / sum
    }
    offset += length
  }
  let sum = 0
  for (let f = 0; f < columns; f++) sum += model.importances[f] as number
  if (sum > 0) for (let f = 0; f < columns; f++) model.importances[f]! /= sum
  return model
}

/** Trains a forest on one thread. */
export function trainForest (matrix: TrainingMatrix, options: ForestOptions = {}): ForestModel {
  checkMatrix(matrix)
  const resolved = resolveOptions(options)
  const binned = binFeatures(matrix.x, matrix.rows, matrix.columns, resolved.maxBins)
  return assembleForest(matrix.columns, [growTrees(binned, matrix.y, resolved, 0, resolved.nEstimators)])
}
