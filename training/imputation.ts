/**
 * Missing values: training fills each feature's NaN with the median of its training rows, and the
 * artifact keeps those medians so scoring fills a missing value with exactly the same number (a
 * subscriber with no network events yet, a blank `TotalCharges`). One module for both sides.
 */

/** Median of each column over `rowIndex` (all rows by default), ignoring NaN; 0 for a column with no value. */
export function columnMedians (x: Float64Array, rows: number, columns: number, rowIndex?: ArrayLike<number>): Float64Array {
  const medians = new Float64Array(columns)
  const count = rowIndex === undefined ? rows : rowIndex.length
  const values = new Float64Array(count)
  for (let f = 0; f < columns; f++) {
    let n = 0
    for (let i = 0; i < count; i++) {
      const r = rowIndex === undefined ? i : rowIndex[i] as number
      const v = x[r * columns + f] as number
      if (!Number.isNaN(v)) values[n++] = v
    }
    if (n === 0) continue
    const sorted = values.subarray(0, n).sort()
    medians[f] = n % 2 === 1 ? sorted[(n - 1) / 2] as number : ((sorted[n / 2 - 1] as number) + (sorted[n / 2] as number)) / 2
  }
  return medians
}

/** Replaces NaN in a row-major matrix (or one row) with the column's value; returns how many. */
export function impute (x: Float64Array, values: ArrayLike<number>, offset = 0, length = x.length - offset): number {
  const columns = values.length
  let filled = 0
  for (let i = 0; i < length; i++) {
    if (Number.isNaN(x[offset + i])) {
      x[offset + i] = values[i % columns] as number
      filled++
    }
  }
  return filled
}
