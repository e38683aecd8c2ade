/**
 * The Silver quality gate: the rules an event must pass to count, each with the reason a reject is
 * quarantined under. Rules are SQL predicates over a Bronze row (true means "reject"), evaluated
 * by DuckDB over the whole micro-batch at once; every failing rule's reason is recorded, not
 * only the first.
 *
 * Duplicates are not a rule here but a step of the landing (they need the Silver table): an event
 * whose id and event time are already in Silver, or earlier in the same batch, is quarantined as
 * `duplicate_event`. A source that re-sends an event re-sends it with its own time; the time in the
 * key lets DuckDB skip every row group outside the batch's time range.
 */
import type { SourceStream } from '../schemas/catalog.ts'
import type { SourceTable } from './columns.ts'

export interface GateRule {
  reason: string
  /** SQL over the Bronze row's columns; true rejects the row. NULL counts as passing. */
  rejectWhen: string
}

/** Quality below this is quarantined (the reference design's threshold). */
export const MIN_QUALITY_SCORE = 45
/** Event times later than ingestion by more than this are quarantined as in the future. */
export const FUTURE_TOLERANCE_MS = 5 * 60 * 1000
/** Event times before 2000-01-01 are not plausible for this product. */
export const EARLIEST_EVENT_MS = 946_684_800_000
/** What a subscriber id may look like: printable, no spaces or control characters, 1-64 long. */
export const SUBSCRIBER_ID_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$'
/**
 * Longest text any other source field may carry. Ids, codes and names are short; a longer value
 * (a valid Avro event with a 900 KB cell id fits under the broker's message limit) is junk or an
 * attack, and in Silver it would be copied into every export and training read. Bronze keeps it,
 * as it keeps every decodable message.
 */
export const MAX_TEXT_CHARS = 256
export const TEXT_TOO_LONG_REASON = 'text_too_long'

export const DUPLICATE_REASON = 'duplicate_event'

const COMMON_RULES: GateRule[] = [
  { reason: 'missing_envelope_field', rejectWhen: 'event_id IS NULL OR subscriber_id IS NULL OR event_time_ms IS NULL OR quality_score IS NULL' },
  { reason: 'quality_below_45', rejectWhen: `quality_score < ${MIN_QUALITY_SCORE} OR quality_score > 100 OR isnan(quality_score)` },
  { reason: 'invalid_subscriber_id', rejectWhen: `NOT regexp_full_match(subscriber_id, '${SUBSCRIBER_ID_PATTERN}')` },
  { reason: 'missing_event_id', rejectWhen: 'length(event_id) = 0 OR length(event_id) > 128' },
  { reason: 'event_time_in_future', rejectWhen: `event_time_ms > ingested_at_ms + ${FUTURE_TOLERANCE_MS}` },
  { reason: 'event_time_before_2000', rejectWhen: `event_time_ms < ${EARLIEST_EVENT_MS}` }
]

const range = (column: string, low: number | null, high: number | null, reason = `${column}_out_of_range`): GateRule => ({
  reason,
  rejectWhen: [low === null ? null : `${column} < ${low}`, high === null ? null : `${column} > ${high}`].filter(Boolean).join(' OR ')
})

/** Rules specific to each source, beyond the common ones and the finite-number check. */
const SOURCE_RULES: Record<SourceStream, GateRule[]> = {
  billing: [
    range('bill_amount', 0, null, 'negative_bill_amount'),
    range('data_used_mb', 0, null, 'negative_data_used'),
    range('voice_minutes', 0, null, 'negative_voice_minutes'),
    range('sms_count', 0, null, 'negative_sms_count'),
    range('days_overdue', 0, 3650, 'days_overdue_out_of_range'),
    range('top_up_amount', 0, null, 'negative_top_up_amount')
  ],
  network: [
    { reason: 'signal_above_0_dbm', rejectWhen: 'signal_dbm > 0' },
    { reason: 'signal_below_minus_150_dbm', rejectWhen: 'signal_dbm < -150' },
    range('latency_ms', 0, 60_000, 'latency_out_of_range'),
    range('packet_loss_pct', 0, 100, 'packet_loss_out_of_range'),
    range('throughput_mbps', 0, 100_000, 'throughput_out_of_range'),
    range('dropped_calls', 0, null, 'negative_dropped_calls'),
    range('session_minutes', 0, null, 'negative_session_minutes')
  ],
  device: [
    range('battery_pct', 0, 100, 'battery_out_of_range'),
    range('storage_free_pct', 0, 100, 'storage_free_out_of_range'),
    range('app_sessions', 0, null, 'negative_app_sessions'),
    range('active_minutes', 0, null, 'negative_active_minutes')
  ],
  crm: []
}

/** Every rule for a source table: common, source-specific, and "finite" for each DOUBLE column. */
export function gateRules (table: SourceTable): GateRule[] {
  const finite = table.columns
    .filter(column => column.type === 'DOUBLE' && column.name !== 'quality_score')
    .map(column => ({ reason: `non_finite_${column.name}`, rejectWhen: `NOT isfinite(${column.name})` }))
  // Event and subscriber ids have rules of their own (length included).
  const texts = table.columns.filter(column => column.type === 'VARCHAR' && column.name !== 'event_id' && column.name !== 'subscriber_id')
  const long: GateRule[] = texts.length === 0 ? [] : [{ reason: TEXT_TOO_LONG_REASON, rejectWhen: texts.map(column => `length(${column.name}) > ${MAX_TEXT_CHARS}`).join(' OR ') }]
  return [...COMMON_RULES, ...finite, ...long, ...SOURCE_RULES[table.stream]]
}

/** A SQL expression for the list of reasons a row fails (empty when it passes). */
export function reasonsExpression (rules: readonly GateRule[]): string {
  const cases = rules.map(rule => `CASE WHEN ${rule.rejectWhen} THEN '${rule.reason}' END`)
  return `list_filter([${cases.join(', ')}]::VARCHAR[], x -> x IS NOT NULL)`
}
