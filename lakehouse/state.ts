/**
 * Gold's mergeable state, kept in memory by the lakehouse's one writer and logged to DuckDB in
 * each batch's transaction (so a restart reloads exactly what was committed).
 *
 * Why in memory: DuckDB is a column store; updating a thousand rows of a hundred-thousand-row
 * table in place (UPDATE, upsert, or delete and insert) costs tens of milliseconds and makes the
 * commit rewrite whole column segments, which is about what recomputing Gold from scratch costs.
 * Keeping the state where it is merged and appending each new version is what incremental view
 * engines do, and turns a refresh into work proportional to the batch.
 *
 * What is merged is fixed by the measure definitions in `features.ts`, not written here: each
 * subscriber's state is one Float64Array laid out as the measures, then {@link RECENT_DAYS} day
 * slots of `[day, ...recent measures]`. Sums start at 0; minima, maxima and empty slots are NaN
 * (SQL NULL). Counts and epoch milliseconds are integers far below 2^53, exact in a double.
 */
import { DAY_MS, FEATURES, MEASURES, RECENT_DAYS, RECENT_MEASURES } from './features.ts'

const M = MEASURES.length
const R = RECENT_MEASURES.length
const SLOT = 1 + R
export const STATE_LENGTH = M + RECENT_DAYS * SLOT

/** Where the first and last event times sit in a state. */
export const FIRST_EVENT = MEASURES.findIndex(m => m.name === 'first_event_ms')
export const LAST_EVENT = MEASURES.findIndex(m => m.name === 'last_event_ms')
/** For each recent measure, its index among all measures. */
const RECENT_INDEX = RECENT_MEASURES.map(r => MEASURES.indexOf(r))

export interface SubscriberState {
  version: number
  values: Float64Array
}

export function emptyState (): Float64Array {
  const values = new Float64Array(STATE_LENGTH)
  MEASURES.forEach((m, i) => { values[i] = m.aggregate === 'sum' ? 0 : Number.NaN })
  for (let s = 0; s < RECENT_DAYS; s++) values[M + s * SLOT] = Number.NaN
  return values
}

const SUM = 0
const MIN = 1
const MAX = 2
const AGGREGATE = Int8Array.from(MEASURES, m => m.aggregate === 'sum' ? SUM : m.aggregate === 'min' ? MIN : MAX)

/** Values per record of a day buffer: the day, then the recent measures in RECENT_MEASURES order. */
export const DAY_RECORD = SLOT

/**
 * Merges one (subscriber, day) row of a batch's measures into `values` (the totals only; call
 * {@link mergeDays} after all of a subscriber's rows so the window is placed by the final last
 * event). `row[i]` is measure i, NaN where SQL gave NULL.
 */
export function mergeTotals (values: Float64Array, row: ArrayLike<number>): void {
  for (let i = 0; i < M; i++) {
    const v = row[i] as number
    if (Number.isNaN(v)) continue
    const current = values[i] as number
    switch (AGGREGATE[i]) {
      case SUM: values[i] = current + v; break
      case MIN: values[i] = Number.isNaN(current) || v < current ? v : current; break
      default: values[i] = Number.isNaN(current) || v > current ? v : current
    }
  }
}

/** Copies a row's recent measures (NaN as 0) into a day buffer at `at`, after its day. */
export function writeDayRecord (days: Float64Array, at: number, day: number, row: ArrayLike<number>): void {
  days[at] = day
  for (let r = 0; r < R; r++) {
    const v = row[RECENT_INDEX[r] as number] as number
    days[at + 1 + r] = Number.isNaN(v) ? 0 : v
  }
}

/** First day of the recent window of a state (its last event's day, minus RECENT_DAYS - 1). */
function windowStart (values: Float64Array): number {
  return Math.floor((values[LAST_EVENT] as number) / DAY_MS) - (RECENT_DAYS - 1)
}

/**
 * Adds a batch's per-day records (`count` of them in `days`, {@link DAY_RECORD} values each, as
 * {@link writeDayRecord} lays them out) to the day slots: slots that fell out of the window are
 * freed first (the window only moves forward, so they are never needed again), then records of
 * days inside the window are added to their day's slot.
 */
export function mergeDays (values: Float64Array, days: Float64Array, count: number): void {
  const start = windowStart(values)
  for (let s = 0; s < RECENT_DAYS; s++) {
    const at = M + s * SLOT
    if ((values[at] as number) < start) {
      values[at] = Number.NaN
      for (let r = 1; r < SLOT; r++) values[at + r] = 0
    }
  }
  for (let d = 0; d < count; d++) {
    const record = d * DAY_RECORD
    const day = days[record] as number
    if (day < start) continue
    let at = -1
    let free = -1
    for (let s = 0; s < RECENT_DAYS; s++) {
      const slotDay = values[M + s * SLOT] as number
      if (slotDay === day) { at = M + s * SLOT; break }
      if (free < 0 && Number.isNaN(slotDay)) free = M + s * SLOT
    }
    if (at < 0) {
      // The window holds RECENT_DAYS days, so a free slot exists for any day inside it.
      at = free
      values[at] = day
      for (let r = 1; r < SLOT; r++) values[at + r] = 0
    }
    for (let r = 1; r < SLOT; r++) values[at + r] = (values[at + r] as number) + (days[record + r] as number)
  }
}

/** The recent window's sums, in RECENT_MEASURES order, into `out` (allocated when not given). */
export function recentSums (values: Float64Array, out = new Float64Array(R)): Float64Array {
  const start = windowStart(values)
  out.fill(0)
  for (let s = 0; s < RECENT_DAYS; s++) {
    const at = M + s * SLOT
    if (!((values[at] as number) >= start)) continue
    for (let r = 0; r < R; r++) out[r] = (out[r] as number) + (values[at + 1 + r] as number)
  }
  return out
}

const recentScratch = new Float64Array(R)

/**
 * Gold's features of a state, in FEATURES order, into `out` (NaN where SQL gives NULL): the same
 * expressions the recompute runs as SQL, evaluated over the state. Long features are rounded as
 * the SQL cast to BIGINT rounds (they are whole numbers already).
 */
export function featureValues (values: Float64Array, out: Float64Array): Float64Array {
  const recent = recentSums(values, recentScratch)
  for (let f = 0; f < FEATURES.length; f++) {
    const feature = FEATURES[f] as (typeof FEATURES)[number]
    const v = feature.expr.eval(values, recent)
    out[f] = feature.type === 'long' && Number.isFinite(v) ? Math.round(v) : v
  }
  return out
}

export function encodeState (values: Float64Array): Uint8Array {
  return new Uint8Array(values.buffer, values.byteOffset, values.byteLength)
}

export function decodeState (bytes: Uint8Array): Float64Array {
  if (bytes.byteLength !== STATE_LENGTH * 8) throw new Error(`a stored Gold state of ${bytes.byteLength} bytes does not fit the current measures (${STATE_LENGTH * 8} bytes)`)
  // Copy: the bytes may not be 8-byte aligned, and must not alias DuckDB's buffer.
  const values = new Float64Array(STATE_LENGTH)
  new Uint8Array(values.buffer).set(bytes)
  return values
}
