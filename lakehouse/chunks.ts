/**
 * Bulk appends through DuckDB data chunks. A chunk's column vectors are typed arrays on the
 * JavaScript side, filled in place and copied to DuckDB once per vector, instead of one native
 * call per value as `appender.appendDouble()` and friends make (measured here 1.5x faster for
 * the Bronze and Gold tables, and less garbage).
 */
import { DuckDBDataChunk } from '@duckdb/node-api'
import type { DuckDBAppender, DuckDBType, DuckDBVector } from '@duckdb/node-api'

/** Rows per data chunk: DuckDB's standard vector size, the most a chunk holds. */
export const CHUNK_ROWS = 2048

/**
 * Appends `count` rows in chunks of {@link CHUNK_ROWS}: `fill(vectors, start, size)` sets items
 * `0..size-1` of each column's vector to rows `start..start+size-1` (with `vector.setItem`).
 */
export function appendChunked (
  appender: DuckDBAppender,
  types: readonly DuckDBType[],
  count: number,
  fill: (vectors: DuckDBVector[], start: number, size: number) => void
): void {
  for (let start = 0; start < count; start += CHUNK_ROWS) {
    const size = Math.min(CHUNK_ROWS, count - start)
    const chunk = DuckDBDataChunk.create(types, size)
    const vectors: DuckDBVector[] = []
    for (let c = 0; c < types.length; c++) vectors.push(chunk.getColumnVector(c))
    fill(vectors, start, size)
    for (const vector of vectors) vector.flush()
    appender.appendDataChunk(chunk)
  }
}
