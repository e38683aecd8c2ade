/**
 * Scoring a trained forest: the trees of a {@link ForestModel} re-laid for speed, for one row or
 * a batch, plus the reasons for a score.
 *
 * The fast layout pads every tree to a complete binary tree of the forest's depth (children of
 * slot i at 2i+1 and 2i+2; a leaf above the bottom copied into every bottom slot below it, the
 * split slots under it passing rows either way), so a row takes exactly `depth` steps per tree and
 * each step is arithmetic on the comparison, with no branch to mispredict. A batch goes tree after
 * tree over blocks of rows, eight rows at a time, so one tree stays in cache and eight independent
 * walks overlap their memory loads. Every real split compares exactly as the node walk does
 * (`x <= threshold` left, NaN right), and the trees' leaf values are summed in the same order, so
 * the probabilities are bit-identical to walking the flat nodes. Forests too deep to pad keep
 * that walk.
 *
 * Reasons follow the tree paths (Saabas' decomposition): along each tree's path, the change in
 * the node's class-1 fraction at each split is credited to the split's feature; averaged over the
 * trees, the credits plus the forest's mean root value add up to the probability exactly. The
 * features with the largest positive credit are what pushed this subscriber's score up most.
 */
import type { ForestModel } from './forest.ts'

/**
 * Deepest forest padded to complete trees: 8,191 slots (about 80 KB) per tree at 12, doubling
 * with each level for trees that seldom fill them. Measured at 12 (200 trees on 75k rows), the
 * padded walk still scores 9x faster than the node walk.
 */
export const MAX_COMPLETE_DEPTH = 12
/** Most slots (splits and leaves, all trees) the padded layout may take: about 40 MB. */
const MAX_COMPLETE_SLOTS = 1 << 22
/**
 * Rows a batch pushes through one tree before the next, their features staying in cache while
 * every tree passes over them (measured the same from 32 to 1,024 rows).
 */
const BLOCK_ROWS = 256

export interface Reason {
  feature: string
  /** Share of the probability this feature added (positive) along the trees' paths. */
  contribution: number
}

/** The forest as complete trees of one depth, level-ordered, one view per tree. */
interface CompleteTrees {
  depth: number
  /** Per tree, its 2^depth - 1 split slots' features (0 where the slot passes rows through). */
  feature: Int32Array[]
  /** Per tree, its split slots' thresholds (+Infinity where the slot passes rows through). */
  threshold: Float64Array[]
  /** Per tree, its 2^depth bottom slots' values. */
  leaf: Float64Array[]
}

export class CompiledForest {
  readonly #roots: Int32Array
  readonly #feature: Int32Array
  readonly #threshold: Float64Array
  readonly #left: Int32Array
  readonly #right: Int32Array
  readonly #value: Float64Array
  readonly #complete: CompleteTrees | undefined
  readonly nFeatures: number
  /** Mean of the trees' root values: the probability before any split. */
  readonly bias: number
  /** How rows are scored: padded complete trees, or the node walk for forests too deep to pad. */
  readonly layout: 'complete' | 'nodes'

  constructor (model: ForestModel) {
    this.#roots = model.roots
    this.#feature = model.feature
    this.#threshold = model.threshold
    this.#left = model.left
    this.#right = model.right
    this.#value = model.value
    this.nFeatures = model.nFeatures
    let bias = 0
    for (let t = 0; t < model.roots.length; t++) bias += model.value[model.roots[t] as number] as number
    this.bias = bias / model.roots.length
    this.#complete = completeTrees(model)
    this.layout = this.#complete === undefined ? 'nodes' : 'complete'
  }

  get trees (): number {
    return this.#roots.length
  }

  /** Probability of class 1 for the row at `offset` of `x` (imputed, model feature order). */
  predictOne (x: ArrayLike<number>, offset = 0): number {
    const complete = this.#complete
    if (complete === undefined) return this.#walkOne(x, offset)
    const { depth, feature, threshold, leaf } = complete
    const trees = feature.length
    const inner = (1 << depth) - 1
    let sum = 0
    for (let t = 0; t < trees; t++) {
      const f = feature[t] as Int32Array
      const th = threshold[t] as Float64Array
      let i = 0
      // Left child 2i+1, right 2i+2: the comparison as a number picks it without a branch.
      for (let d = 0; d < depth; d++) i = (i << 1) + 2 - (+((x[offset + f[i]!] as number) <= th[i]!)) | 0
      sum += (leaf[t] as Float64Array)[i - inner]!
    }
    return sum / trees
  }

  /** Probabilities for `rows` row-major rows of `x` into `out` (allocated when not given). */
  predictBatch (x: Float64Array, rows: number, out = new Float64Array(rows)): Float64Array {
    const complete = this.#complete
    if (complete === undefined) {
      const columns = this.nFeatures
      for (let r = 0; r < rows; r++) out[r] = this.#walkOne(x, r * columns)
      return out
    }
    out.fill(0, 0, rows)
    for (let start = 0; start < rows; start += BLOCK_ROWS) {
      scoreBlock(complete, x, this.nFeatures, start, Math.min(rows, start + BLOCK_ROWS), out)
    }
    const trees = this.#roots.length
    for (let r = 0; r < rows; r++) out[r]! /= trees
    return out
  }

  /**
   * Per-feature credits for the row at `offset` (into `out`, length nFeatures); returns the
   * probability (= bias + the sum of the credits).
   */
  contributions (x: ArrayLike<number>, out: Float64Array, offset = 0): number {
    out.fill(0)
    const feature = this.#feature
    const value = this.#value
    const roots = this.#roots
    const trees = roots.length
    let sum = 0
    for (let t = 0; t < trees; t++) {
      let node = roots[t] as number
      let f = feature[node] as number
      while (f >= 0) {
        const next = (x[offset + f] as number) <= (this.#threshold[node] as number) ? this.#left[node] as number : this.#right[node] as number
        out[f]! += ((value[next] as number) - (value[node] as number)) / trees
        node = next
        f = feature[node] as number
      }
      sum += value[node] as number
    }
    return sum / trees
  }

  /** The `limit` features that raised the probability most (positive credits only, largest first). */
  reasons (x: ArrayLike<number>, names: readonly string[], limit = 3, offset = 0): Reason[] {
    const credits = new Float64Array(this.nFeatures)
    this.contributions(x, credits, offset)
    const ranked: Reason[] = []
    for (let f = 0; f < credits.length; f++) {
      const c = credits[f] as number
      if (c > 0) ranked.push({ feature: names[f] ?? `f${f}`, contribution: c })
    }
    ranked.sort((a, b) => b.contribution - a.contribution)
    return ranked.slice(0, limit)
  }

  /** The flat-node walk, for forests too deep to pad. */
  #walkOne (x: ArrayLike<number>, offset: number): number {
    const feature = this.#feature
    const threshold = this.#threshold
    const left = this.#left
    const right = this.#right
    const roots = this.#roots
    let sum = 0
    for (let t = 0; t < roots.length; t++) {
      let node = roots[t] as number
      let f = feature[node] as number
      while (f >= 0) {
        node = (x[offset + f] as number) <= (threshold[node] as number) ? left[node] as number : right[node] as number
        f = feature[node] as number
      }
      sum += this.#value[node] as number
    }
    return sum / roots.length
  }
}

/**
 * Adds each tree's leaf value for rows `start..end` of `x` to `out`, tree after tree. Eight rows
 * walk together: their steps do not depend on each other, so the CPU overlaps their loads, which
 * a single walk (each step waiting for the last) cannot. Levels go two per loop turn, the root's
 * split hoisted out of the rows: fewer loop branches and loads, measured faster than one level a
 * turn. Eight is as many walks as V8 keeps in registers; more spill and run slower.
 */
function scoreBlock (complete: CompleteTrees, x: Float64Array, columns: number, start: number, end: number, out: Float64Array): void {
  const { depth, feature, threshold, leaf } = complete
  const inner = (1 << depth) - 1
  // Below the root the levels go in pairs; when they are odd in number, `d` starts at 0 and that
  // first turn takes one level.
  const single = (depth - 1) & 1
  for (let t = 0; t < feature.length; t++) {
    const f = feature[t] as Int32Array
    const th = threshold[t] as Float64Array
    const lv = leaf[t] as Float64Array
    const f0 = f[0]!
    const t0 = th[0]!
    let r = start
    for (; r + 8 <= end; r += 8) {
      const o0 = r * columns
      const o1 = o0 + columns
      const o2 = o1 + columns
      const o3 = o2 + columns
      const o4 = o3 + columns
      const o5 = o4 + columns
      const o6 = o5 + columns
      const o7 = o6 + columns
      let i0 = 2 - (+(x[o0 + f0]! <= t0))
      let i1 = 2 - (+(x[o1 + f0]! <= t0))
      let i2 = 2 - (+(x[o2 + f0]! <= t0))
      let i3 = 2 - (+(x[o3 + f0]! <= t0))
      let i4 = 2 - (+(x[o4 + f0]! <= t0))
      let i5 = 2 - (+(x[o5 + f0]! <= t0))
      let i6 = 2 - (+(x[o6 + f0]! <= t0))
      let i7 = 2 - (+(x[o7 + f0]! <= t0))
      for (let d = 1 - single; d < depth; d += 2) {
        if (d > 0) {
          i0 = (i0 << 1) + 2 - (+(x[o0 + f[i0]!]! <= th[i0]!)) | 0
          i1 = (i1 << 1) + 2 - (+(x[o1 + f[i1]!]! <= th[i1]!)) | 0
          i2 = (i2 << 1) + 2 - (+(x[o2 + f[i2]!]! <= th[i2]!)) | 0
          i3 = (i3 << 1) + 2 - (+(x[o3 + f[i3]!]! <= th[i3]!)) | 0
          i4 = (i4 << 1) + 2 - (+(x[o4 + f[i4]!]! <= th[i4]!)) | 0
          i5 = (i5 << 1) + 2 - (+(x[o5 + f[i5]!]! <= th[i5]!)) | 0
          i6 = (i6 << 1) + 2 - (+(x[o6 + f[i6]!]! <= th[i6]!)) | 0
          i7 = (i7 << 1) + 2 - (+(x[o7 + f[i7]!]! <= th[i7]!)) | 0
        }
        i0 = (i0 << 1) + 2 - (+(x[o0 + f[i0]!]! <= th[i0]!)) | 0
        i1 = (i1 << 1) + 2 - (+(x[o1 + f[i1]!]! <= th[i1]!)) | 0
        i2 = (i2 << 1) + 2 - (+(x[o2 + f[i2]!]! <= th[i2]!)) | 0
        i3 = (i3 << 1) + 2 - (+(x[o3 + f[i3]!]! <= th[i3]!)) | 0
        i4 = (i4 << 1) + 2 - (+(x[o4 + f[i4]!]! <= th[i4]!)) | 0
        i5 = (i5 << 1) + 2 - (+(x[o5 + f[i5]!]! <= th[i5]!)) | 0
        i6 = (i6 << 1) + 2 - (+(x[o6 + f[i6]!]! <= th[i6]!)) | 0
        i7 = (i7 << 1) + 2 - (+(x[o7 + f[i7]!]! <= th[i7]!)) | 0
      }
      out[r]! += lv[i0 - inner]!
      out[r + 1]! += lv[i1 - inner]!
      out[r + 2]! += lv[i2 - inner]!
      out[r + 3]! += lv[i3 - inner]!
      out[r + 4]! += lv[i4 - inner]!
      out[r + 5]! += lv[i5 - inner]!
      out[r + 6]! += lv[i6 - inner]!
      out[r + 7]! += lv[i7 - inner]!
    }
    for (; r < end; r++) {
      const o = r * columns
      let i = 0
      for (let d = 0; d < depth; d++) i = (i << 1) + 2 - (+(x[o + f[i]!]! <= th[i]!)) | 0
      out[r]! += lv[i - inner]!
    }
  }
}

/** Depth of the deepest tree (a lone leaf has depth 0). */
function forestDepth (model: ForestModel): number {
  let deepest = 0
  const stack: number[] = []
  for (let t = 0; t < model.roots.length; t++) {
    stack.push(model.roots[t] as number, 0)
    while (stack.length > 0) {
      const depth = stack.pop() as number
      const node = stack.pop() as number
      if ((model.feature[node] as number) < 0) {
        if (depth > deepest) deepest = depth
      } else {
        stack.push(model.left[node] as number, depth + 1, model.right[node] as number, depth + 1)
      }
    }
  }
  return deepest
}

/** The forest padded to complete trees, or undefined when it is too deep or too big to pad. */
function completeTrees (model: ForestModel): CompleteTrees | undefined {
  const trees = model.roots.length
  // Depth 1 at least, so every tree has a root slot and the walks need no case for lone leaves.
  const depth = Math.max(1, forestDepth(model))
  if (depth > MAX_COMPLETE_DEPTH || trees * ((2 << depth) - 1) > MAX_COMPLETE_SLOTS) return undefined
  const inner = (1 << depth) - 1
  const allFeatures = new Int32Array(trees * inner)
  const allThresholds = new Float64Array(trees * inner).fill(Number.POSITIVE_INFINITY)
  const allLeaves = new Float64Array(trees * (inner + 1))
  const complete: CompleteTrees = { depth, feature: [], threshold: [], leaf: [] }
  const stack: number[] = []
  for (let t = 0; t < trees; t++) {
    const feature = allFeatures.subarray(t * inner, (t + 1) * inner)
    const threshold = allThresholds.subarray(t * inner, (t + 1) * inner)
    const leaf = allLeaves.subarray(t * (inner + 1), (t + 1) * (inner + 1))
    stack.push(model.roots[t] as number, 0, 0)
    while (stack.length > 0) {
      const level = stack.pop() as number
      const slot = stack.pop() as number
      const node = stack.pop() as number
      const f = model.feature[node] as number
      if (f >= 0) {
        feature[slot] = f
        threshold[slot] = model.threshold[node] as number
        stack.push(model.left[node] as number, 2 * slot + 1, level + 1, model.right[node] as number, 2 * slot + 2, level + 1)
      } else {
        // The bottom slots under `slot` are a contiguous run: first and last descendants at the bottom.
        const below = depth - level
        const first = ((slot + 1) << below) - 1
        leaf.fill(model.value[node] as number, first - inner, first - inner + (1 << below))
      }
    }
    complete.feature.push(feature)
    complete.threshold.push(threshold)
    complete.leaf.push(leaf)
  }
  return complete
}
