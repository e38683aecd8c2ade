/**
 * The Gold feature definition: one specification that generates every SQL statement that
 * computes features, so the live incremental refresh, the full recompute it is tested against,
 * and the point-in-time ("as of") features of the training set cannot drift apart.
 *
 * The definition has three parts:
 * - **measures**: mergeable aggregates per subscriber over its Silver events (sums, counts,
 *   minima, maxima). A batch's measures merge into the stored state by adding sums and counts and
 *   taking the larger maximum and smaller minimum, so a refresh reads only the batch.
 * - **recent measures**: the sums and counts of the measures flagged `recent`, kept per subscriber
 *   and UTC day. The recent window is the last {@link RECENT_DAYS} calendar days of the
 *   subscriber's own activity (up to and including the day of its latest event), so Gold is a
 *   function of the subscriber's events alone and a late event is placed by its event time. The
 *   window only moves forward, so day buckets that fall out of it are deleted for good.
 * - **features**: expressions over the measures (`s.`) and the recent window (`r.`).
 *
 * Days since last activity depends on when it is asked, so it is not stored in Gold: the
 * training set computes it as of each label's time and the scorer as of scoring time, both with
 * {@link daysSinceLastActivity} and {@link daysSinceLastActivitySql}.
 *
 * CRM outcomes are labels, never features: only billing, network and device events contribute.
 */

export const DAY_MS = 86_400_000
export const RECENT_DAYS = 7
/** The sources whose events make features. */
export const FEATURE_SOURCES = ['billing', 'network', 'device'] as const

type Aggregate = 'sum' | 'min' | 'max'

export interface Measure {
  name: string
  aggregate: Aggregate
  type: 'BIGINT' | 'INTEGER' | 'DOUBLE'
  /** SQL over an event row of the unified event relation (see {@link eventsRelation}). */
  expr: string
  /** Also kept per day for the recent window (sums only). */
  recent?: boolean
}

export const MEASURES: readonly Measure[] = [
  { name: 'total_events', type: 'BIGINT', aggregate: 'sum', expr: '1', recent: true },
  { name: 'billing_events', type: 'BIGINT', aggregate: 'sum', expr: "(source = 'billing')::BIGINT" },
  { name: 'network_events', type: 'BIGINT', aggregate: 'sum', expr: "(source = 'network')::BIGINT", recent: true },
  { name: 'device_events', type: 'BIGINT', aggregate: 'sum', expr: "(source = 'device')::BIGINT", recent: true },
  { name: 'quality_sum', type: 'DOUBLE', aggregate: 'sum', expr: 'quality_score' },
  { name: 'first_event_ms', type: 'BIGINT', aggregate: 'min', expr: 'event_time_ms' },
  { name: 'last_event_ms', type: 'BIGINT', aggregate: 'max', expr: 'event_time_ms' },
  { name: 'bill_sum', type: 'DOUBLE', aggregate: 'sum', expr: 'bill_amount' },
  { name: 'data_used_sum', type: 'DOUBLE', aggregate: 'sum', expr: 'data_used_mb' },
  { name: 'max_days_overdue', type: 'INTEGER', aggregate: 'max', expr: 'days_overdue' },
  { name: 'overdue_count', type: 'BIGINT', aggregate: 'sum', expr: "(payment_status = 'OVERDUE')::BIGINT" },
  { name: 'failed_payment_count', type: 'BIGINT', aggregate: 'sum', expr: "(payment_status = 'FAILED')::BIGINT" },
  { name: 'signal_sum', type: 'DOUBLE', aggregate: 'sum', expr: 'signal_dbm', recent: true },
  { name: 'latency_sum', type: 'DOUBLE', aggregate: 'sum', expr: 'latency_ms', recent: true },
  { name: 'packet_loss_sum', type: 'DOUBLE', aggregate: 'sum', expr: 'packet_loss_pct', recent: true },
  { name: 'throughput_sum', type: 'DOUBLE', aggregate: 'sum', expr: 'throughput_mbps' },
  { name: 'dropped_calls_sum', type: 'BIGINT', aggregate: 'sum', expr: 'dropped_calls::BIGINT', recent: true },
  { name: 'battery_sum', type: 'DOUBLE', aggregate: 'sum', expr: 'battery_pct' },
  { name: 'active_minutes_sum', type: 'DOUBLE', aggregate: 'sum', expr: 'active_minutes', recent: true }
]

export const RECENT_MEASURES = MEASURES.filter(m => m.recent === true)

export type FeatureType = 'double' | 'long'

/**
 * A feature expression, rendered two ways from one tree: to SQL (for the recompute and the
 * point-in-time features) and to a JavaScript evaluation over a subscriber's in-memory state (for
 * the live refresh). NULL in SQL is NaN in JavaScript; every node propagates it the way SQL does.
 */
export interface Expr {
  /** SQL over the measures `s.<name>` and the recent window `r.<name>`. */
  readonly sql: string
  /** The same over `s` (measures, MEASURES order) and `r` (recent sums, RECENT_MEASURES order). */
  readonly eval: (s: Float64Array, r: ArrayLike<number>) => number
}

function measureIndex (name: string, within: readonly Measure[]): number {
  const index = within.findIndex(m => m.name === name)
  if (index < 0) throw new Error(`feature definition: no measure ${name}`)
  return index
}

/** A measure's running value (sums are never NULL; minima and maxima are NULL until an event). */
const total = (name: string): Expr => {
  const i = measureIndex(name, MEASURES)
  return { sql: `s.${name}`, eval: s => s[i] as number }
}
/** A recent measure's sum over the recent window, 0 when the window holds none. */
const recent = (name: string): Expr => {
  const i = measureIndex(name, RECENT_MEASURES)
  return { sql: `coalesce(r.${name}, 0)`, eval: (_s, r) => { const v = r[i] as number; return Number.isNaN(v) ? 0 : v } }
}
/** `a / nullif(b, 0)`: NULL when b is 0 or NULL. */
const ratio = (a: Expr, b: Expr): Expr => ({
  sql: `(${a.sql} / nullif(${b.sql}, 0))`,
  eval: (s, r) => { const d = b.eval(s, r); return d === 0 || Number.isNaN(d) ? Number.NaN : a.eval(s, r) / d }
})
const minus = (a: Expr, b: Expr): Expr => ({ sql: `(${a.sql} - ${b.sql})`, eval: (s, r) => a.eval(s, r) - b.eval(s, r) })
const over = (a: Expr, divisor: number): Expr => ({ sql: `(${a.sql} / ${divisor}.0)`, eval: (s, r) => a.eval(s, r) / divisor })

const longAvg = (sum: string, count: string): Expr => ratio(total(sum), total(count))
const recentAvg = (sum: string, count: string): Expr => ratio(recent(sum), recent(count))

export interface Feature {
  name: string
  type: FeatureType
  expr: Expr
  doc: string
}

/** Gold's features, in column order. Every one may be NULL (no events of that kind yet). */
export const FEATURES: readonly Feature[] = [
  { name: 'total_events', type: 'long', expr: total('total_events'), doc: 'Billing, network and device events in Silver.' },
  { name: 'billing_events', type: 'long', expr: total('billing_events'), doc: 'Billing events.' },
  { name: 'network_events', type: 'long', expr: total('network_events'), doc: 'Network events.' },
  { name: 'device_events', type: 'long', expr: total('device_events'), doc: 'Device events.' },
  { name: 'avg_signal_dbm', type: 'double', expr: longAvg('signal_sum', 'network_events'), doc: 'Mean signal, dBm.' },
  { name: 'avg_latency_ms', type: 'double', expr: longAvg('latency_sum', 'network_events'), doc: 'Mean latency, ms.' },
  { name: 'avg_packet_loss_pct', type: 'double', expr: longAvg('packet_loss_sum', 'network_events'), doc: 'Mean packet loss, %.' },
  { name: 'avg_throughput_mbps', type: 'double', expr: longAvg('throughput_sum', 'network_events'), doc: 'Mean downlink throughput, Mbit/s.' },
  { name: 'dropped_calls', type: 'long', expr: total('dropped_calls_sum'), doc: 'Calls dropped.' },
  { name: 'avg_bill_amount', type: 'double', expr: longAvg('bill_sum', 'billing_events'), doc: 'Mean bill.' },
  { name: 'avg_data_used_mb', type: 'double', expr: longAvg('data_used_sum', 'billing_events'), doc: 'Mean data used per bill, MB.' },
  { name: 'max_days_overdue', type: 'long', expr: total('max_days_overdue'), doc: 'Most days overdue on any bill.' },
  { name: 'overdue_count', type: 'long', expr: total('overdue_count'), doc: 'Bills with payment status OVERDUE.' },
  { name: 'failed_payment_count', type: 'long', expr: total('failed_payment_count'), doc: 'Bills with payment status FAILED.' },
  { name: 'avg_battery_pct', type: 'double', expr: longAvg('battery_sum', 'device_events'), doc: 'Mean battery, %.' },
  { name: 'avg_active_minutes', type: 'double', expr: longAvg('active_minutes_sum', 'device_events'), doc: 'Mean device use per heartbeat, minutes.' },
  { name: 'avg_quality_score', type: 'double', expr: longAvg('quality_sum', 'total_events'), doc: 'Mean source quality score of the events that passed the gate.' },
  { name: 'recent_events', type: 'long', expr: recent('total_events'), doc: `Events in the last ${RECENT_DAYS} days of activity.` },
  { name: 'recent_avg_signal_dbm', type: 'double', expr: recentAvg('signal_sum', 'network_events'), doc: `Mean signal in the last ${RECENT_DAYS} days of activity, dBm.` },
  { name: 'recent_avg_latency_ms', type: 'double', expr: recentAvg('latency_sum', 'network_events'), doc: `Mean latency in the last ${RECENT_DAYS} days of activity, ms.` },
  { name: 'recent_avg_packet_loss_pct', type: 'double', expr: recentAvg('packet_loss_sum', 'network_events'), doc: `Mean packet loss in the last ${RECENT_DAYS} days of activity, %.` },
  { name: 'recent_dropped_calls', type: 'long', expr: recent('dropped_calls_sum'), doc: `Calls dropped in the last ${RECENT_DAYS} days of activity.` },
  { name: 'signal_trend_dbm', type: 'double', expr: minus(recentAvg('signal_sum', 'network_events'), longAvg('signal_sum', 'network_events')), doc: 'Recent minus long-run mean signal; negative when the signal is getting worse.' },
  { name: 'latency_trend_ms', type: 'double', expr: minus(recentAvg('latency_sum', 'network_events'), longAvg('latency_sum', 'network_events')), doc: 'Recent minus long-run mean latency; positive when it is getting worse.' },
  { name: 'packet_loss_trend_pct', type: 'double', expr: minus(recentAvg('packet_loss_sum', 'network_events'), longAvg('packet_loss_sum', 'network_events')), doc: 'Recent minus long-run mean packet loss.' },
  { name: 'device_use_trend', type: 'double', expr: ratio(recentAvg('active_minutes_sum', 'device_events'), longAvg('active_minutes_sum', 'device_events')), doc: 'Recent over long-run device use per heartbeat; below 1 when use is fading.' },
  { name: 'tenure_days', type: 'double', expr: over(minus(total('last_event_ms'), total('first_event_ms')), DAY_MS), doc: 'Days between the first and the latest event seen.' }
]

/** The features a model reads: Gold's, plus days since last activity at the reference time. */
export const DAYS_SINCE_LAST_ACTIVITY = 'days_since_last_activity'
export const MODEL_FEATURES: readonly string[] = [...FEATURES.map(f => f.name), DAYS_SINCE_LAST_ACTIVITY]

/** SQL for days since last activity, given SQL for the reference time and the last event time. */
export function daysSinceLastActivitySql (referenceMs: string, lastEventMs: string): string {
  return `(${referenceMs} - ${lastEventMs}) / ${DAY_MS}.0`
}

/** The same, for the scorer: it must equal the SQL above (a unit test checks). */
export function daysSinceLastActivity (referenceMs: number, lastEventMs: number): number {
  return (referenceMs - lastEventMs) / DAY_MS
}

/** `agg(expr) AS name` for each measure; sums of nothing are 0 so merging never meets NULL. */
function measureSelect (measures: readonly Measure[]): string {
  return measures.map(m => m.aggregate === 'sum'
    ? `coalesce(sum(${m.expr}), 0) AS ${m.name}`
    : `${m.aggregate}(${m.expr}) AS ${m.name}`).join(',\n  ')
}

/**
 * The unified event relation: each feature source's Silver rows projected to one shape (missing
 * columns NULL), with `source` and `day`. `where` filters every source table (e.g. a batch id);
 * `sources` limits the rows to some of them (a batch that has rows of only some).
 */
export function eventsRelation (where = 'true', sources: readonly string[] = FEATURE_SOURCES): string {
  // Every source stays in the union (it supplies its columns to the others' rows as NULLs); one
  // left out reads nothing.
  return FEATURE_SOURCES.map(source =>
    `SELECT '${source}' AS source, (event_time_ms // ${DAY_MS}) AS day, * EXCLUDE (batch_id) FROM silver_${source} WHERE ${sources.includes(source) ? where : 'false'}`
  ).join('\nUNION ALL BY NAME\n')
}

function featureSelect (): string {
  return FEATURES.map(f => `${f.type === 'long' ? `(${f.expr.sql})::BIGINT` : `(${f.expr.sql})::DOUBLE`} AS ${f.name}`).join(',\n  ')
}

/**
 * DDL of the Gold tables. Both are append-only logs (see `state.ts` for why): `gold_state_log`
 * holds each committed version of a subscriber's mergeable state, `gold_features_log` each
 * version of its features; `gold_features` is the current row per subscriber. Compaction drops
 * superseded versions.
 */
export function goldDdl (): string[] {
  const features = FEATURES.map(f => `${f.name} ${f.type === 'long' ? 'BIGINT' : 'DOUBLE'}`).join(', ')
  return [
    'CREATE TABLE IF NOT EXISTS gold_state_log (subscriber_id VARCHAR NOT NULL, version BIGINT NOT NULL, batch_id BIGINT NOT NULL, state BLOB NOT NULL)',
    `CREATE TABLE IF NOT EXISTS gold_features_log (subscriber_id VARCHAR NOT NULL, ${features}, first_event_ms BIGINT, last_event_ms BIGINT, version BIGINT NOT NULL, updated_at_ms BIGINT NOT NULL, batch_id BIGINT NOT NULL)`,
    `CREATE OR REPLACE VIEW gold_features AS SELECT * EXCLUDE (batch_id) FROM gold_features_log
      QUALIFY row_number() OVER (PARTITION BY subscriber_id ORDER BY version DESC) = 1`
  ]
}

/** The per-(subscriber, day) measures of the Silver rows matching `where` (a batch, or all). */
export function deltaSql (where: string, sources: readonly string[] = FEATURE_SOURCES): string {
  // Every measure as DOUBLE (exact for these counts and times), so it is read without conversion.
  return `SELECT subscriber_id, day::DOUBLE AS day, ${MEASURES.map(m => `(${m.aggregate === 'sum' ? `coalesce(sum(${m.expr}), 0)` : `${m.aggregate}(${m.expr})`})::DOUBLE AS ${m.name}`).join(',\n  ')}
FROM (${eventsRelation(where, sources)})
GROUP BY subscriber_id, day
ORDER BY subscriber_id, day`
}

/** A fingerprint of the state layout: stored states from another layout are rebuilt from Silver. */
export function stateLayoutFingerprint (): string {
  return JSON.stringify({ measures: MEASURES.map(m => [m.name, m.aggregate, m.expr, m.recent === true]), recentDays: RECENT_DAYS })
}

/**
 * Gold computed from Silver in one query, by the same definition (no version or freshness
 * columns). The invariant tests compare it with the incrementally maintained `gold_features`.
 */
export function recomputeSql (): string {
  return `WITH ev AS (${eventsRelation()}),
st AS (SELECT subscriber_id, ${measureSelect(MEASURES)} FROM ev GROUP BY subscriber_id),
r AS (
  SELECT ev.subscriber_id, ${measureSelect(RECENT_MEASURES)}
  FROM ev JOIN st USING (subscriber_id)
  WHERE ev.day >= st.last_event_ms // ${DAY_MS} - ${RECENT_DAYS - 1}
  GROUP BY ev.subscriber_id
)
SELECT s.subscriber_id,
  ${featureSelect()},
  s.first_event_ms, s.last_event_ms
FROM st s LEFT JOIN r USING (subscriber_id)`
}

/**
 * Features as of a point in time per label: `labels` is a relation with `label_id`,
 * `subscriber_id` and `as_of_ms`; only events with event time before `as_of_ms` contribute, and the
 * recent window and days since last activity are relative to that. The labels' other columns
 * (the outcome) come along. Labels whose subscriber has no event before their time have no
 * features and are left out.
 */
export function asOfSql (labels: string): string {
  return `WITH lb AS (${labels}),
ev AS (
  SELECT lb.label_id, lb.as_of_ms, e.* FROM lb
  JOIN (${eventsRelation()}) e ON e.subscriber_id = lb.subscriber_id AND e.event_time_ms < lb.as_of_ms
),
st AS (SELECT label_id, any_value(subscriber_id) AS subscriber_id, any_value(as_of_ms) AS as_of_ms, ${measureSelect(MEASURES)} FROM ev GROUP BY label_id),
r AS (
  SELECT ev.label_id, ${measureSelect(RECENT_MEASURES)}
  FROM ev JOIN st USING (label_id)
  WHERE ev.day >= st.last_event_ms // ${DAY_MS} - ${RECENT_DAYS - 1}
  GROUP BY ev.label_id
)
SELECT s.label_id, s.subscriber_id, s.as_of_ms, lb.* EXCLUDE (label_id, subscriber_id, as_of_ms),
  ${featureSelect()},
  ${daysSinceLastActivitySql('s.as_of_ms', 's.last_event_ms')} AS ${DAYS_SINCE_LAST_ACTIVITY},
  s.first_event_ms, s.last_event_ms
FROM st s LEFT JOIN r USING (label_id) JOIN lb USING (label_id)`
}
