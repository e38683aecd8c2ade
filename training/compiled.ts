/**
 * Scoring a trained forest: the flat node arrays of a {@link ForestModel} walked without
 * allocating per row, for one row or a batch, plus the reasons for a score.
 *
 * Reasons follow the tree paths (Saabas' decomposition): along each tree's path, the change in
 * the node's class-1 fraction at each split is credited to the split's feature; averaged over the
 * trees, the credits plus the forest's mean root value add up to the probability exactly. The
 * features with the largest positive credit are what pushed this subscriber's score up most.
 */
import type { ForestModel } from './forest.ts'

export interface Reason {
  feature: string
  /** Share of the probability this feature added (positive) along the trees' paths. */
  contribution: number
}

export class CompiledForest {
  readonly #roots: Int32Array
  readonly #feature: Int32Array
  readonly #threshold: Float64Array
  readonly #left: Int32Array
  readonly #right: Int32Array
  readonly #value: Float64Array
  readonly nFeatures: number
  /** Mean of the trees' root values: the probability before any split. */
  readonly bias: number

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
  }

  get trees (): number {
    return this.#roots.length
  }

  /** Probability of class 1 for the row at `offset` of `x` (imputed, model feature order). */
  predictOne (x: ArrayLike<number>, offset = 0): number {
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

  /** Probabilities for `rows` row-major rows of `x` into `out` (allocated when not given). */
  predictBatch (x: Float64Array, rows: number, out = new Float64Array(rows)): Float64Array {
    const columns = this.nFeatures
    for (let r = 0; r < rows; r++) out[r] = this.predictOne(x, r * columns)
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
}
