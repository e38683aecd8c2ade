/**
 * Quantile binning: each feature's values are mapped once to small integer codes, so a tree
 * finds its best split by filling a histogram per candidate feature (one pass over the node's
 * rows) instead of sorting the node's values for every split, as exact trainers do.
 *
 * A feature with at most `maxBins` distinct values gets one bin per value; otherwise bins hold
 * about equal numbers of rows. Bin `b` holds the values `x <= thresholds[b]` above the previous
 * threshold, and each threshold is the midpoint between the two distinct values it separates (as
 * scikit-learn places its thresholds), so a split "code <= b" is exactly "x <= thresholds[b]" on
 * the raw value, for training rows and for anything scored later.
 */

export const DEFAULT_MAX_BINS = 255

export interface BinnedFeatures {
  /**
   * Per feature, the code of each row (column-major): views of one SharedArrayBuffer, so worker
   * threads growing trees (`parallel.ts`) read the same codes without a copy.
   */
  codes: Uint8Array[]
  /** Per feature, ascending thresholds; the feature has `thresholds.length + 1` bins. */
  thresholds: Float64Array[]
}

/** Thresholds for one feature's values (any order, no NaN). */
export function featureThresholds (values: Float64Array, maxBins = DEFAULT_MAX_BINS): Float64Array {
  if (maxBins < 2 || maxBins > 256) throw new RangeError(`maxBins must be within 2..256, got ${maxBins}`)
  const sorted = Float64Array.from(values).sort()
  const distinct: number[] = []
  for (let i = 0; i < sorted.length; i++) {
    const v = sorted[i] as number
    if (i === 0 || v !== sorted[i - 1]) distinct.push(v)
  }
  const midpoint = (a: number, b: number): number => {
    const m = a + (b - a) / 2
    // The midpoint of adjacent doubles can round to the upper one; the threshold must stay below it.
    return m >= b ? a : m
  }
  if (distinct.length <= maxBins) {
    const thresholds = new Float64Array(Math.max(0, distinct.length - 1))
    for (let i = 0; i < thresholds.length; i++) thresholds[i] = midpoint(distinct[i] as number, distinct[i + 1] as number)
    return thresholds
  }
  // Cut after the value at each quantile; a cut falls between that value and the next distinct one.
  const cuts: number[] = []
  for (let q = 1; q < maxBins; q++) {
    const at = sorted[Math.min(sorted.length - 1, Math.floor((q * sorted.length) / maxBins))] as number
    if (at >= (distinct[distinct.length - 1] as number)) break
    if (cuts.length === 0 || at > (cuts[cuts.length - 1] as number)) cuts.push(at)
  }
  const thresholds = new Float64Array(cuts.length)
  for (let i = 0; i < cuts.length; i++) {
    const value = cuts[i] as number
    // `value` is one of the distinct values; the threshold sits between it and the next.
    thresholds[i] = midpoint(value, distinct[binOf(distinct, value) + 1] as number)
  }
  return thresholds
}

/** The bin of a value: the first threshold it does not exceed. */
export function binOf (thresholds: ArrayLike<number>, value: number): number {
  let low = 0
  let high = thresholds.length
  while (low < high) {
    const mid = (low + high) >>> 1
    if (value <= (thresholds[mid] as number)) high = mid
    else low = mid + 1
  }
  return low
}

/**
 * Bins a row-major matrix (`rows` x `columns`, no NaN). Thresholds come from at most
 * `sampleRows` rows (spread evenly), which is plenty for quantiles and bounds the sorting.
 */
export function binFeatures (x: Float64Array, rows: number, columns: number, maxBins = DEFAULT_MAX_BINS, sampleRows = 200_000): BinnedFeatures {
  const codes: Uint8Array[] = []
  const thresholds: Float64Array[] = []
  const shared = new SharedArrayBuffer(rows * columns)
  const step = Math.max(1, rows / sampleRows)
  const sampled = Math.min(rows, Math.ceil(rows / step))
  const column = new Float64Array(sampled)
  for (let f = 0; f < columns; f++) {
    for (let s = 0; s < sampled; s++) column[s] = x[Math.floor(s * step) * columns + f] as number
    const t = featureThresholds(column, maxBins)
    const c = new Uint8Array(shared, f * rows, rows)
    for (let r = 0; r < rows; r++) c[r] = binOf(t, x[r * columns + f] as number)
    codes.push(c)
    thresholds.push(t)
  }
  return { codes, thresholds }
}
