/**
 * The two ways to a training set.
 *
 * Lakehouse: the labels are the CRM churn outcomes in Silver, and each label's features are the
 * lakehouse's point-in-time definition evaluated as of the label's effective date (nothing after
 * it). Only when no outcome exists yet, and only when asked, the reference design's rule (more
 * than 30 days overdue, mean signal below -90 dBm, or mean latency above 150 ms) labels today's
 * Gold instead: a bootstrap, recorded as `rule-bootstrap` in the artifact so nobody mistakes its
 * perfect-looking AUC for judgement (the model relearns the rule from the rule's own inputs).
 *
 * Parquet export: the same SQL over the files `churn lakehouse export` (or `churn ingest
 * --export-every`) writes, for the roles that cannot open the lakehouse file while ingest holds it.
 *
 * CSV: a customer-profile table, encoded by `tabular.ts`.
 */
import { createHash } from 'node:crypto'
import type { Dirent } from 'node:fs'
import { tmpdir } from 'node:os'
import { readFile, readdir } from 'node:fs/promises'
import path from 'node:path'
import { DuckDBInstance } from '@duckdb/node-api'
import { DAY_MS, DAYS_SINCE_LAST_ACTIVITY, FEATURES, MODEL_FEATURES, asOfSql, daysSinceLastActivitySql, stateLayoutFingerprint } from '../lakehouse/features.ts'
import { EXPORT_MARKER } from '../lakehouse/lakehouse.ts'
import type { ExportMarker, Lakehouse } from '../lakehouse/lakehouse.ts'
import { SOURCE_STREAMS } from '../schemas/catalog.ts'
import type { FeatureSchema } from './artifact.ts'
import { featureHash } from './artifact.ts'
import { parseCsv } from './csv.ts'
import { TrainingError } from './errors.ts'
import { encodeTable, featureNames, inferEncoding, rowKeys } from './tabular.ts'
import type { TabularOptions } from './tabular.ts'
import type { TrainingSet } from './train.ts'

/** The lakehouse feature schema: the names a model reads and the definition that computes them. */
export function lakehouseFeatureSchema (): FeatureSchema {
  const definition = JSON.stringify({
    state: stateLayoutFingerprint(),
    features: FEATURES.map(f => [f.name, f.expr.sql]),
    [DAYS_SINCE_LAST_ACTIVITY]: daysSinceLastActivitySql('reference_ms', 'last_event_ms')
  })
  return { kind: 'lakehouse', names: [...MODEL_FEATURES], definition }
}

/** The hash a scorer of lakehouse features compares a model's with. */
export function lakehouseFeatureHash (): string {
  return featureHash(lakehouseFeatureSchema())
}

/**
 * Labels from CRM outcomes, each with the moment its features are taken: `horizonDays` before the
 * outcome took effect, so the model learns to see churn coming that far ahead. A retained outcome
 * is dated at the end of the observation (nobody knows it earlier); taking its features then would
 * give retained subscribers longer histories than churned ones, a leak a forest finds at once
 * (tenure and event counts would separate the classes). So a retained label is placed on a day
 * drawn, by a hash of its id, from the span of the churn dates: both classes are observed at the
 * same spread of moments, and a retained subscriber was still a customer `horizonDays` later.
 */
export function crmLabelsSql (horizonDays: number): string {
  return `WITH o AS (SELECT event_id, subscriber_id, outcome, effective_date FROM silver_crm),
span AS (SELECT min(effective_date) AS lo, max(effective_date) AS hi FROM o WHERE outcome = 'CHURNED')
SELECT o.event_id AS label_id, o.subscriber_id,
  ((CASE WHEN o.outcome = 'CHURNED' OR span.lo IS NULL THEN o.effective_date
    ELSE least(o.effective_date, span.lo + (md5_number(o.event_id) % (span.hi - span.lo + 1))::INTEGER) END)
    - DATE '1970-01-01' - ${horizonDays})::BIGINT * ${DAY_MS} AS as_of_ms,
  (o.outcome = 'CHURNED')::INTEGER AS churned
FROM o, span`
}

/** The reference design's heuristic, for the bootstrap only. */
export const RULE_LABEL_SQL = `SELECT subscriber_id AS label_id, subscriber_id, last_event_ms + 1 AS as_of_ms,
  (coalesce(max_days_overdue, 0) > 30 OR coalesce(avg_signal_dbm, 0) < -90 OR coalesce(avg_latency_ms, 0) > 150)::INTEGER AS churned
FROM gold_features WHERE total_events >= 2`

function toNumber (value: unknown): number {
  if (value === null || value === undefined) return Number.NaN
  const n = typeof value === 'bigint' ? Number(value) : Number(value)
  return Number.isFinite(n) ? n : Number.NaN
}

export interface LakehouseSetOptions {
  bootstrapLabels?: boolean
  horizonDays: number
  /** Recorded in the artifact as the training source. */
  path: string
}

export async function lakehouseTrainingSet (lakehouse: Lakehouse, options: LakehouseSetOptions): Promise<TrainingSet> {
  return await pointInTimeSet(async labelsSql => await lakehouse.featuresAsOf(labelsSql), options)
}

/** The tables a Parquet export holds (`<table>.parquet` each) and the training SQL reads. */
export const EXPORT_TABLES: readonly string[] = [...SOURCE_STREAMS.map(s => `silver_${s.stream}`), 'gold_features']

/**
 * The Parquet files of `table` under `dir`: `dir/<table>.parquet`, and `dir/<shard>/<table>.parquet`
 * for exports of several lakehouses (one per partition group) side by side.
 */
async function exportFiles (dir: string, table: string): Promise<string[]> {
  let entries: Dirent[]
  try {
    entries = await readdir(dir, { withFileTypes: true })
  } catch (error) {
    throw new TrainingError('CHURN_TRAIN_BAD_INPUT', `cannot read the export folder ${dir}: ${(error as Error).message}`, { cause: error })
  }
  const name = `${table}.parquet`
  const files = entries.some(e => e.isFile() && e.name === name) ? [path.join(dir, name)] : []
  for (const shard of entries.filter(e => e.isDirectory()).map(e => e.name).sort()) {
    const inShard: string[] = await readdir(path.join(dir, shard)).catch(() => [])
    if (inShard.includes(name)) files.push(path.join(dir, shard, name))
  }
  return files
}

/**
 * A training set from a Parquet export: an in-memory DuckDB with one view per exported table,
 * named as in the lakehouse, so the labels and the point-in-time features are the very SQL the
 * lakehouse path runs, and the set is the same row for row.
 */
export async function exportTrainingSet (dir: string, options: Omit<LakehouseSetOptions, 'path'> & { settings?: Record<string, string> }): Promise<TrainingSet> {
  const tables: Array<[string, string[]]> = []
  for (const table of EXPORT_TABLES) {
    const files = await exportFiles(dir, table)
    if (files.length === 0) throw new TrainingError('CHURN_TRAIN_BAD_INPUT', `${dir} holds no ${table}.parquet (nor <shard>/${table}.parquet); write one with \`churn lakehouse export --dir ${dir}\` or \`churn ingest --export-every\``)
    tables.push([table, files])
  }
  // Spills (past memory_limit) go to the temporary folder: the working directory of a container
  // with a read-only root file system is not writable.
  const instance = await DuckDBInstance.create(':memory:', { temp_directory: path.join(tmpdir(), 'churn-duckdb'), ...options.settings })
  const connection = await instance.connect()
  try {
    for (const [table, files] of tables) {
      const list = files.map(f => `'${f.replaceAll("'", "''")}'`).join(', ')
      await connection.run(`CREATE VIEW ${table} AS SELECT * FROM read_parquet([${list}], union_by_name = true)`)
    }
    // The same statement as Lakehouse.featuresAsOf, ordering included.
    const featuresAsOf = async (labelsSql: string): Promise<Array<Record<string, unknown>>> =>
      (await connection.runAndReadAll(`${asOfSql(labelsSql)} ORDER BY as_of_ms, label_id`)).getRowObjectsJS()
    return await pointInTimeSet(featuresAsOf, { ...options, path: path.resolve(dir) })
  } finally {
    connection.closeSync()
    instance.closeSync()
  }
}

async function pointInTimeSet (featuresAsOf: (labelsSql: string) => Promise<Array<Record<string, unknown>>>, options: LakehouseSetOptions): Promise<TrainingSet> {
  let labels: TrainingSet['labels'] = 'crm-outcomes'
  let rows = await featuresAsOf(crmLabelsSql(options.horizonDays))
  if (rows.length === 0) {
    if (options.bootstrapLabels !== true) {
      throw new TrainingError('CHURN_TRAIN_EMPTY', 'the lakehouse holds no CRM churn outcomes to learn from; ingest outcomes first, or pass --bootstrap-labels to label today\'s Gold with the reference rule (recorded as such)')
    }
    labels = 'rule-bootstrap'
    rows = await featuresAsOf(RULE_LABEL_SQL)
  }
  if (rows.length === 0) throw new TrainingError('CHURN_TRAIN_EMPTY', 'the lakehouse has no subscribers with features to train on')
  const schema = lakehouseFeatureSchema()
  const columns = schema.names.length
  const x = new Float64Array(rows.length * columns)
  const y = new Uint8Array(rows.length)
  // By subscriber, so all labels of one subscriber fall on the same side of the hold-out.
  const keys = rows.map(row => String(row.subscriber_id))
  let from = Number.POSITIVE_INFINITY
  let to = Number.NEGATIVE_INFINITY
  rows.forEach((row, r) => {
    schema.names.forEach((name, f) => { x[r * columns + f] = toNumber(row[name]) })
    y[r] = toNumber(row.churned) === 1 ? 1 : 0
    const at = toNumber(row.as_of_ms)
    from = Math.min(from, at)
    to = Math.max(to, at)
  })
  return {
    x,
    y,
    rows: rows.length,
    keys,
    schema,
    labels,
    source: { kind: 'lakehouse', path: options.path },
    window: { from: new Date(from).toISOString(), to: new Date(to).toISOString() }
  }
}

export async function csvTrainingSet (file: string, options: TabularOptions): Promise<TrainingSet> {
  let bytes: Buffer
  try {
    bytes = await readFile(file)
  } catch (error) {
    throw new TrainingError('CHURN_TRAIN_BAD_INPUT', `cannot read ${file}: ${(error as Error).message}`, { cause: error })
  }
  const table = parseCsv(bytes.toString('utf8'), path.basename(file))
  const encoding = inferEncoding(table, options)
  const encoded = encodeTable(table, encoding)
  return {
    x: encoded.x,
    y: encoded.y,
    rows: encoded.rows,
    keys: rowKeys(table, encoding),
    schema: { kind: 'tabular', names: featureNames(encoding), encoding },
    labels: 'csv',
    source: { kind: 'csv', file: path.resolve(file), sha256: createHash('sha256').update(bytes).digest('hex') },
    window: null
  }
}

/** Source offsets per `topic:partition`: a partition's next offset (high watermark or covered). */
export type PartitionOffsets = ReadonlyMap<string, bigint>

/**
 * What the exports under `dir` cover: the largest next offset per source partition over
 * `dir/export.json` and `dir/<shard>/export.json` (a missing or unreadable marker covers nothing).
 */
export async function exportCoverage (dir: string): Promise<Map<string, bigint>> {
  const markers = [path.join(dir, EXPORT_MARKER)]
  const entries: Dirent[] = await readdir(dir, { withFileTypes: true }).catch(() => [])
  for (const e of entries) if (e.isDirectory()) markers.push(path.join(dir, e.name, EXPORT_MARKER))
  const covered = new Map<string, bigint>()
  for (const file of markers) {
    let marker: ExportMarker
    try {
      marker = JSON.parse(await readFile(file, 'utf8')) as ExportMarker
    } catch {
      continue
    }
    for (const o of marker.offsets ?? []) {
      const key = `${o.topic}:${o.partition}`
      const next = BigInt(o.nextOffset)
      if (next > (covered.get(key) ?? -1n)) covered.set(key, next)
    }
  }
  return covered
}

/** Messages in `targets` (next offsets to reach) that `covered` does not hold yet. */
export function uncoveredMessages (targets: PartitionOffsets, low: PartitionOffsets, covered: PartitionOffsets): bigint {
  let missing = 0n
  for (const [key, high] of targets) {
    const from = covered.get(key) ?? low.get(key) ?? 0n
    if (high > from) missing += high - from
  }
  return missing
}
