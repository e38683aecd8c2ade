/**
 * Distributions for drift monitoring: at training time each feature's values and the model's
 * scores are summarised as shares of rows per bin (feature bins at the training deciles, score
 * bins of width 0.1, missing values a bin of their own); the scorer later fills the same bins
 * from live traffic and compares with the population stability index,
 * PSI = sum over bins of (live - training) * ln(live / training).
 */

export interface Distribution {
  /** Ascending cut points: bin i holds values <= edges[i] above edges[i-1]; one more bin above the last. */
  edges: number[]
  /** Share of non-missing rows per bin (edges.length + 1 entries). */
  shares: number[]
  /** Share of all rows that were missing (NaN). */
  missing: number
}

const SCORE_EDGES = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]

/** The bin of `value` among `edges` (binary search; NaN is not binned). */
export function binIndex (edges: readonly number[], value: number): number {
  let low = 0
  let high = edges.length
  while (low < high) {
    const mid = (low + high) >>> 1
    if (value <= (edges[mid] as number)) high = mid
    else low = mid + 1
  }
  return low
}

/** Shares of `values` over fixed `edges`. */
export function distributionOver (edges: readonly number[], values: ArrayLike<number>): Distribution {
  const counts = new Float64Array(edges.length + 1)
  let present = 0
  for (let i = 0; i < values.length; i++) {
    const v = values[i] as number
    if (Number.isNaN(v)) continue
    counts[binIndex(edges, v)]!++
    present++
  }
  return {
    edges: [...edges],
    shares: Array.from(counts, c => present === 0 ? 0 : c / present),
    missing: values.length === 0 ? 0 : (values.length - present) / values.length
  }
}

/** A feature's training distribution: bins at its deciles (fewer when values repeat). */
export function featureDistribution (values: ArrayLike<number>, bins = 10): Distribution {
  const present = Float64Array.from(Array.prototype.filter.call(values, (v: number) => !Number.isNaN(v)) as number[]).sort()
  const edges: number[] = []
  for (let q = 1; q < bins && present.length > 0; q++) {
    const edge = present[Math.min(present.length - 1, Math.floor((q * present.length) / bins))] as number
    // The top value gets no edge of its own: the last bin is open above.
    if (edge < (present[present.length - 1] as number) && (edges.length === 0 || edge > (edges[edges.length - 1] as number))) edges.push(edge)
  }
  return distributionOver(edges, values)
}

export function scoreDistribution (scores: ArrayLike<number>): Distribution {
  return distributionOver(SCORE_EDGES, scores)
}

/**
 * Population stability index of `actual` against `expected` (same edges), the missing share
 * counted as one more bin. Empty bins are floored at `epsilon` so the logarithm stays finite.
 */
export function populationStabilityIndex (expected: Distribution, actual: Distribution, epsilon = 1e-4): number {
  const share = (d: Distribution, i: number): number => i < d.shares.length ? (d.shares[i] as number) * (1 - d.missing) : d.missing
  let psi = 0
  for (let i = 0; i <= expected.shares.length; i++) {
    const e = Math.max(share(expected, i), epsilon)
    const a = Math.max(share(actual, i), epsilon)
    psi += (a - e) * Math.log(a / e)
  }
  return psi
}
