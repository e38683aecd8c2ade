/**
 * The DuckDB lakehouse: Bronze (every decodable event, with its Kafka provenance), Silver (what
 * passed the quality gate, once per event), quarantine (what did not, with every reason), Gold
 * (one row per subscriber, refreshed incrementally), and the ingest bookkeeping that makes
 * landing exactly-once: a micro-batch's rows, its dead-letter records, its Kafka offsets and its
 * new Gold versions commit in one transaction. Gold's mergeable state lives in memory (see
 * `state.ts`) and is applied only after its transaction commits.
 *
 * One process opens the file (DuckDB allows one writer, and other processes cannot even read it
 * meanwhile); see DESIGN.md. All writes run on one connection, one at a time; the quality report
 * reads on a second one.
 */
import { mkdir } from 'node:fs/promises'
import path from 'node:path'
import { BIGINT, DOUBLE, DuckDBInstance, VARCHAR, listValue } from '@duckdb/node-api'
import type { DuckDBConnection, DuckDBMaterializedResult, DuckDBPreparedStatement, DuckDBType, DuckDBVector } from '@duckdb/node-api'
import { describeError } from '../core/errors.ts'
import type { SourceStream } from '../schemas/catalog.ts'
import { PROVENANCE_COLUMNS, duckType, sourceTables, toVectorItem } from './columns.ts'
import type { SourceColumn, SourceTable } from './columns.ts'
import { LakehouseError } from './errors.ts'
import { appendChunked } from './chunks.ts'
import { DAY_MS, FEATURES, MEASURES, asOfSql, deltaSql, goldDdl, recomputeSql, stateLayoutFingerprint } from './features.ts'
import { DUPLICATE_REASON, gateRules, reasonsExpression } from './gate.ts'
import { DAY_RECORD, FIRST_EVENT, LAST_EVENT, decodeState, emptyState, encodeState, featureValues, mergeDays, mergeTotals, writeDayRecord } from './state.ts'
import type { SubscriberState } from './state.ts'

/** A decoded event with where it came from. */
export interface LandedEvent {
  topic: string
  partition: number
  offset: bigint
  schemaId: number
  /** The record as avsc decoded it (Avro field names). */
  value: Record<string, unknown>
}

/** An undecodable message, already written to its dead-letter topic. */
export interface DeadLetterRecord {
  topic: string
  partition: number
  offset: bigint
  code: string
  reason: string
}

export interface PartitionOffset {
  topic: string
  partition: number
  /** The offset to read next: one past the last message of the batch on that partition. */
  nextOffset: bigint
}

export interface BatchInput {
  events: Partial<Record<SourceStream, readonly LandedEvent[]>>
  deadLetters?: readonly DeadLetterRecord[]
  offsets: readonly PartitionOffset[]
  /** The changelog is published through this batch (recorded with this batch). */
  publishedThroughBatch?: number
  /** Ingestion time, epoch ms (the future-event rule and freshness use it). @defaultValue Date.now() */
  now?: number
}

export interface BatchResult {
  batchId: number
  bronze: number
  silver: number
  quarantined: number
  deadLettered: number
  /** Subscribers whose Gold row changed. */
  touched: number
  /**
   * Their new Gold rows, committed and not yet published: the caller publishes them to the
   * changelog (and reports it with a later batch's `publishedThroughBatch`). Rows left unpublished
   * by a crash are found again by {@link Lakehouse.pendingChangelog}.
   */
  changed: GoldRow[]
  /** Milliseconds spent appending Bronze, gating into Silver, refreshing Gold, snapshotting Gold's state (some batches), and committing. */
  ms: { bronze: number, silver: number, gold: number, snapshot: number, commit: number }
}

/** A Gold row with its version and freshness, as the changelog publishes it. */
export interface GoldRow {
  subscriberId: string
  version: number
  firstEventMs: number
  lastEventMs: number
  updatedAtMs: number
  features: Record<string, number | null>
}

export interface QualityReport {
  pipeline: { bronze_total: number, silver_total: number, quarantined: number, dead_lettered: number, pass_rate: number }
  quality_scores: { avg_bronze: number, excellent_gte80: number, good_60_79: number, fair_45_59: number, poor_lt45: number }
  quarantine_reasons: Record<string, number>
  by_source: Record<string, { bronze: number, silver: number, quarantined: number }>
  gold: { subscribers: number, freshest_feature_ms: number | null, last_batch_committed_ms: number | null }
}

/** The file a Parquet export writes last, naming what it covers. */
export const EXPORT_MARKER = 'export.json'

/** The content of `export.json`. */
/** One tag of `duckdb_memory()`. */
export interface DuckDBMemory {
  tag: string
  memoryBytes: number
  temporaryBytes: number
}

export interface ExportMarker {
  exportedAtMs: number
  /** The next offset of each source partition: the export holds every message before it. */
  offsets: Array<{ topic: string, partition: number, nextOffset: string }>
  tables: Array<{ table: string, rows: number }>
}

export interface OpenLakehouseOptions {
  /** A file path, or `:memory:`. */
  path: string
  /** DuckDB settings (memory_limit, threads...), over {@link DEFAULT_SETTINGS}. */
  settings?: Record<string, string>
  /**
   * Gold's state is snapshotted every this many batches (or sooner when many subscribers
   * changed); a restart replays the Silver batches since. @defaultValue 50
   */
  snapshotEveryBatches?: number
}

/**
 * A bigger write-ahead log before DuckDB checkpoints (16 MB by default) spares a checkpoint every
 * few micro-batches; recovery replays at most this much after a crash.
 */
export const DEFAULT_SETTINGS: Readonly<Record<string, string>> = { checkpoint_threshold: '256MB' }

/** Column types of `gold_features_log`, in its column order (see `goldDdl`). */
const GOLD_LOG_TYPES = [VARCHAR, ...FEATURES.map(f => f.type === 'long' ? BIGINT : DOUBLE), BIGINT, BIGINT, BIGINT, BIGINT, BIGINT]
const FEATURE_TEMPLATE: Readonly<Record<string, number | null>> = Object.fromEntries(FEATURES.map(f => [f.name, null]))

/** A snapshot is also taken when this many subscribers changed since the last one. */
const SNAPSHOT_DIRTY_LIMIT = 200_000

const META_DDL = [
  `CREATE TABLE IF NOT EXISTS quarantine (
    source VARCHAR NOT NULL, event_id VARCHAR, subscriber_id VARCHAR, event_time_ms BIGINT, quality_score DOUBLE,
    reasons VARCHAR[] NOT NULL, kafka_topic VARCHAR, kafka_partition INTEGER, kafka_offset BIGINT,
    batch_id BIGINT NOT NULL, quarantined_at_ms BIGINT NOT NULL, record JSON)`,
  `CREATE TABLE IF NOT EXISTS ingest_dead_letters (
    kafka_topic VARCHAR NOT NULL, kafka_partition INTEGER NOT NULL, kafka_offset BIGINT NOT NULL,
    code VARCHAR NOT NULL, reason VARCHAR NOT NULL, batch_id BIGINT NOT NULL, dead_lettered_at_ms BIGINT NOT NULL)`,
  `CREATE TABLE IF NOT EXISTS ingest_offsets (
    kafka_topic VARCHAR, kafka_partition INTEGER, next_offset BIGINT NOT NULL, batch_id BIGINT NOT NULL,
    PRIMARY KEY (kafka_topic, kafka_partition))`,
  `CREATE TABLE IF NOT EXISTS ingest_batches (
    batch_id BIGINT PRIMARY KEY, committed_at_ms BIGINT NOT NULL, bronze INTEGER NOT NULL, silver INTEGER NOT NULL,
    quarantined INTEGER NOT NULL, dead_lettered INTEGER NOT NULL, touched INTEGER NOT NULL)`,
  'CREATE TABLE IF NOT EXISTS lakehouse_meta (name VARCHAR PRIMARY KEY, value VARCHAR NOT NULL)'
]

function num (value: unknown): number {
  return typeof value === 'bigint' ? Number(value) : (value as number)
}

function numOrNull (value: unknown): number | null {
  return value === null || value === undefined ? null : num(value)
}

export class Lakehouse {
  readonly #instance: DuckDBInstance
  readonly #connection: DuckDBConnection
  /** A second connection for reports while batches land (opened on first use). */
  #reader: DuckDBConnection | undefined
  /** A third for the memory figures a metrics scrape asks for, never queued behind a report. */
  #probe: DuckDBConnection | undefined
  readonly #tables: ReadonlyMap<SourceStream, SourceTable>
  readonly #gateSql: ReadonlyMap<SourceStream, string>
  /** Column types of each Bronze table, in column order, for its data chunks. */
  readonly #bronzeTypes: ReadonlyMap<SourceStream, DuckDBType[]>
  /** The batch delta query, prepared once per set of sources a batch has feature rows of. */
  readonly #deltaStatements = new Map<string, DuckDBPreparedStatement>()
  /** Gold's mergeable state per subscriber, as of the last committed batch. */
  readonly #state = new Map<string, SubscriberState>()
  /** Subscribers whose state changed since the last snapshot. */
  readonly #dirty = new Set<string>()
  /** The batch the last snapshot was taken in. */
  #snapshotBatch = 0
  readonly #snapshotEvery: number
  /** Rows in the Gold logs, to know when to compact them. */
  #goldLogRows = 0
  #nextBatchId: number
  #closed = false

  private constructor (instance: DuckDBInstance, connection: DuckDBConnection, tables: SourceTable[], nextBatchId: number, snapshotEvery: number) {
    this.#snapshotEvery = snapshotEvery
    this.#instance = instance
    this.#connection = connection
    this.#tables = new Map(tables.map(t => [t.stream, t]))
    this.#gateSql = new Map(tables.map(t => [t.stream, gateSql(t)]))
    this.#bronzeTypes = new Map(tables.map(t => [t.stream, [...t.columns, ...PROVENANCE_COLUMNS].map(column => duckType(column.type))]))
    this.#nextBatchId = nextBatchId
  }

  /** Opens (creating if needed) the lakehouse file and brings its tables up to the current schemas. */
  static async open (options: OpenLakehouseOptions): Promise<Lakehouse> {
    if (options.path !== ':memory:') await mkdir(path.dirname(path.resolve(options.path)), { recursive: true })
    let instance: DuckDBInstance
    try {
      instance = await DuckDBInstance.create(options.path, { ...DEFAULT_SETTINGS, ...options.settings })
    } catch (error) {
      const message = describeError(error)
      if (/lock/i.test(message)) {
        throw new LakehouseError('CHURN_LAKEHOUSE_LOCKED', `${options.path} is open in another process (only the ingest role may open it): ${message}`, { cause: error, retriable: true })
      }
      throw new LakehouseError('CHURN_LAKEHOUSE_OPEN_FAILED', `Cannot open the lakehouse ${options.path}: ${message}`, { cause: error })
    }
    const connection = await instance.connect()
    try {
      const tables = await sourceTables()
      await connection.run('BEGIN TRANSACTION')
      await migrate(connection, tables)
      await connection.run('COMMIT')
      const reader = await connection.runAndReadAll('SELECT coalesce(max(batch_id), 0) FROM ingest_batches')
      const lastBatch = num(reader.getRows()[0]?.[0] ?? 0)
      const lakehouse = new Lakehouse(instance, connection, tables, lastBatch + 1, options.snapshotEveryBatches ?? 50)
      await lakehouse.#loadGoldState()
      return lakehouse
    } catch (error) {
      connection.closeSync()
      instance.closeSync()
      if (error instanceof LakehouseError) throw error
      throw new LakehouseError('CHURN_LAKEHOUSE_OPEN_FAILED', `Cannot prepare the lakehouse tables in ${options.path}: ${describeError(error)}`, { cause: error })
    }
  }

  get connection (): DuckDBConnection {
    return this.#connection
  }

  /** The stored offset to resume each partition from. */
  async storedOffsets (): Promise<PartitionOffset[]> {
    const reader = await this.#connection.runAndReadAll('SELECT kafka_topic, kafka_partition, next_offset FROM ingest_offsets ORDER BY 1, 2')
    return reader.getRows().map(([topic, partition, next]) => ({ topic: String(topic), partition: num(partition), nextOffset: BigInt(next as bigint) }))
  }

  /**
   * Lands one micro-batch in one transaction: Bronze rows, the Silver gate with quarantine, the
   * Gold refresh of the subscribers it touched, dead-letter records, offsets and changelog
   * outbox entries. On any failure the transaction rolls back and nothing of the batch is stored.
   */
  async landBatch (input: BatchInput): Promise<BatchResult> {
    const now = input.now ?? Date.now()
    const batchId = this.#nextBatchId
    const c = this.#connection
    const ms = { bronze: 0, silver: 0, gold: 0, snapshot: 0, commit: 0 }
    let bronze = 0
    let silver = 0
    let quarantined = 0
    let touched = 0
    let changed: GoldRow[] = []
    const deadLetters = input.deadLetters ?? []
    await c.run('BEGIN TRANSACTION')
    try {
      let started = performance.now()
      const landed: Array<{ table: SourceTable, minTime: number, maxTime: number }> = []
      for (const [stream, events] of Object.entries(input.events) as Array<[SourceStream, readonly LandedEvent[] | undefined]>) {
        if (events === undefined || events.length === 0) continue
        const table = this.#tables.get(stream)
        if (table === undefined) throw new LakehouseError('CHURN_LAKEHOUSE_BATCH_FAILED', `no table for stream ${stream}`)
        const { minTime, maxTime } = await this.#appendBronze(table, events, batchId, now)
        landed.push({ table, minTime, maxTime })
        bronze += events.length
      }
      ms.bronze = performance.now() - started

      started = performance.now()
      const featureSources: string[] = []
      for (const { table, minTime, maxTime } of landed) {
        const params = { batchId: BigInt(batchId), minTime: BigInt(minTime), maxTime: BigInt(maxTime) }
        await c.run(this.#gateSql.get(table.stream) ?? '', params)
        const passed = await c.run(`INSERT INTO ${table.silver} BY NAME SELECT ${table.columns.map(col => col.name).join(', ')}, batch_id FROM gate_batch WHERE len(reasons) = 0`)
        const rejected = await c.run(`INSERT INTO quarantine
          SELECT '${table.stream}', event_id, subscriber_id, event_time_ms, quality_score, reasons, kafka_topic, kafka_partition, kafka_offset, batch_id, $now,
            to_json(struct_pack(${table.columns.map(col => col.name).join(', ')}))
          FROM gate_batch WHERE len(reasons) > 0`, { now: BigInt(now) })
        silver += passed.rowsChanged
        quarantined += rejected.rowsChanged
        if (table.stream !== 'crm' && passed.rowsChanged > 0) featureSources.push(table.stream)
      }
      ms.silver = performance.now() - started

      started = performance.now()
      let merged: Map<string, SubscriberState> | undefined
      if (featureSources.length > 0) {
        merged = this.#merge(await this.#delta(featureSources, batchId))
        changed = await this.#writeGold(merged, batchId, now)
        touched = merged.size
      }
      ms.gold = performance.now() - started
      let snapshot = 0
      if (merged !== undefined && (batchId - this.#snapshotBatch >= this.#snapshotEvery || this.#dirty.size + merged.size >= SNAPSHOT_DIRTY_LIMIT)) {
        started = performance.now()
        snapshot = await this.#writeSnapshot(merged, batchId)
        ms.snapshot = performance.now() - started
      }

      started = performance.now()
      if (deadLetters.length > 0) {
        const appender = await c.createAppender('ingest_dead_letters')
        for (const d of deadLetters) {
          appender.appendVarchar(d.topic)
          appender.appendInteger(d.partition)
          appender.appendBigInt(d.offset)
          appender.appendVarchar(d.code)
          appender.appendVarchar(d.reason)
          appender.appendBigInt(BigInt(batchId))
          appender.appendBigInt(BigInt(now))
          appender.endRow()
        }
        appender.closeSync()
      }
      if (input.publishedThroughBatch !== undefined) await this.#recordPublished(input.publishedThroughBatch)
      if (input.offsets.length > 0) {
        await c.run(`INSERT INTO ingest_offsets
          SELECT unnest($topics::VARCHAR[]), unnest($partitions::INTEGER[]), unnest($offsets::BIGINT[]), $batchId
          ON CONFLICT (kafka_topic, kafka_partition) DO UPDATE SET next_offset = greatest(ingest_offsets.next_offset, EXCLUDED.next_offset), batch_id = EXCLUDED.batch_id`, {
          topics: listValue(input.offsets.map(o => o.topic)),
          partitions: listValue(input.offsets.map(o => o.partition)),
          offsets: listValue(input.offsets.map(o => o.nextOffset)),
          batchId: BigInt(batchId)
        })
      }
      await c.run('INSERT INTO ingest_batches VALUES ($batchId, $now, $bronze, $silver, $quarantined, $deadLettered, $touched)', {
        batchId: BigInt(batchId), now: BigInt(now), bronze, silver, quarantined, deadLettered: deadLetters.length, touched
      })
      await c.run('COMMIT')
      ms.commit = performance.now() - started
      // Only now does the merged state become the state.
      if (merged !== undefined) {
        for (const [subscriber, state] of merged) this.#state.set(subscriber, state)
        if (snapshot > 0) {
          this.#dirty.clear()
          this.#snapshotBatch = batchId
        } else {
          for (const subscriber of merged.keys()) this.#dirty.add(subscriber)
        }
        this.#goldLogRows += touched + snapshot
      }
    } catch (error) {
      await c.run('ROLLBACK').catch(() => {})
      throw new LakehouseError('CHURN_LAKEHOUSE_BATCH_FAILED', `Micro-batch ${batchId} was rolled back: ${describeError(error)}`, { cause: error, retriable: true, context: { batchId } })
    }
    this.#nextBatchId = batchId + 1
    if (this.#goldLogRows > 4 * Math.max(this.#state.size, 25_000)) await this.compactGold()
    return { batchId, bronze, silver, quarantined, deadLettered: deadLetters.length, touched, changed, ms }
  }

  /** A batch's per-(subscriber, day) measures, from the Silver tables of `sources` only. */
  async #delta (sources: readonly string[], batchId: number): Promise<DuckDBMaterializedResult> {
    const key = sources.join(',')
    let statement = this.#deltaStatements.get(key)
    if (statement === undefined) {
      statement = await this.#connection.prepare(deltaSql('batch_id = $batchId', sources))
      this.#deltaStatements.set(key, statement)
    }
    statement.bind({ batchId: BigInt(batchId) })
    return await statement.run()
  }

  async #appendBronze (table: SourceTable, events: readonly LandedEvent[], batchId: number, now: number): Promise<{ minTime: number, maxTime: number }> {
    const appender = await this.#connection.createAppender(table.bronze)
    const columns = table.columns
    const types = this.#bronzeTypes.get(table.stream) ?? []
    const batch = BigInt(batchId)
    const ingestedAt = BigInt(now)
    let minTime = Number.POSITIVE_INFINITY
    let maxTime = Number.NEGATIVE_INFINITY
    try {
      appendChunked(appender, types, events.length, (vectors, start, size) => {
        for (let c = 0; c < columns.length; c++) {
          const column = columns[c] as SourceColumn
          const vector = vectors[c] as DuckDBVector
          for (let i = 0; i < size; i++) vector.setItem(i, toVectorItem(column, (events[start + i] as LandedEvent).value[column.field]))
        }
        const [topic, partition, offset, schemaId, batchVector, ingestedVector] = vectors.slice(columns.length)
        for (let i = 0; i < size; i++) {
          const event = events[start + i] as LandedEvent
          const time = event.value.eventTime as number
          if (time < minTime) minTime = time
          if (time > maxTime) maxTime = time
          topic?.setItem(i, event.topic)
          partition?.setItem(i, event.partition)
          offset?.setItem(i, event.offset)
          schemaId?.setItem(i, event.schemaId)
          batchVector?.setItem(i, batch)
          ingestedVector?.setItem(i, ingestedAt)
        }
      })
      appender.flushSync()
    } finally {
      appender.closeSync()
    }
    return { minTime, maxTime }
  }

  /**
   * Merges per-(subscriber, day) measures (ordered by subscriber and day, as {@link deltaSql}
   * gives them) into copies of the subscribers' states. Reads the result chunk by chunk, column
   * vector by column vector: no row objects, no value conversion.
   */
  #merge (result: DuckDBMaterializedResult): Map<string, SubscriberState> {
    const merged = new Map<string, SubscriberState>()
    const measureCount = MEASURES.length
    const row = new Float64Array(measureCount)
    // A subscriber's day records, reused across subscribers; grows when one has many days.
    let days = new Float64Array(64 * DAY_RECORD)
    let dayCount = 0
    let subscriber: string | undefined
    let values: Float64Array | undefined
    const finish = (): void => {
      if (subscriber === undefined || values === undefined) return
      mergeDays(values, days, dayCount)
      merged.set(subscriber, { version: (this.#state.get(subscriber)?.version ?? 0) + 1, values })
    }
    for (let c = 0; c < result.chunkCount; c++) {
      const chunk = result.getChunk(c)
      const ids = chunk.getColumnVector(0)
      const dayVector = chunk.getColumnVector(1)
      const vectors = Array.from({ length: measureCount }, (_, m) => chunk.getColumnVector(2 + m))
      for (let r = 0; r < chunk.rowCount; r++) {
        const id = ids.getItem(r) as string
        if (id !== subscriber) {
          finish()
          subscriber = id
          values = this.#state.get(id)?.values.slice() ?? emptyState()
          dayCount = 0
        }
        for (let m = 0; m < measureCount; m++) row[m] = ((vectors[m] as DuckDBVector).getItem(r) as number | null) ?? Number.NaN
        mergeTotals(values as Float64Array, row)
        if ((dayCount + 1) * DAY_RECORD > days.length) {
          const grown = new Float64Array(days.length * 2)
          grown.set(days)
          days = grown
        }
        writeDayRecord(days, dayCount * DAY_RECORD, dayVector.getItem(r) as number, row)
        dayCount++
      }
    }
    finish()
    return merged
  }

  /**
   * Appends the new Gold rows of the merged subscribers to `gold_features_log`, their features
   * evaluated from the state by the shared feature definition, and returns them for the changelog.
   */
  async #writeGold (merged: ReadonlyMap<string, SubscriberState>, batchId: number, now: number): Promise<GoldRow[]> {
    const entries = [...merged]
    const rows: GoldRow[] = []
    const features = new Float64Array(FEATURES.length)
    const batch = BigInt(batchId)
    const updatedAt = BigInt(now)
    const appender = await this.#connection.createAppender('gold_features_log')
    try {
      appendChunked(appender, GOLD_LOG_TYPES, entries.length, (vectors, start, size) => {
        for (let i = 0; i < size; i++) {
          const [subscriberId, { version, values }] = entries[start + i] as [string, SubscriberState]
          featureValues(values, features)
          // A copy of a fixed-shape template: every row object shares one hidden class.
          const record: Record<string, number | null> = { ...FEATURE_TEMPLATE }
          let column = 0
          ;(vectors[column++] as DuckDBVector).setItem(i, subscriberId)
          for (let f = 0; f < FEATURES.length; f++) {
            const v = features[f] as number
            const feature = FEATURES[f] as (typeof FEATURES)[number]
            const missing = Number.isNaN(v)
            record[feature.name] = missing ? null : v
            ;(vectors[column++] as DuckDBVector).setItem(i, missing ? null : feature.type === 'long' ? BigInt(v) : v)
          }
          const first = values[FIRST_EVENT] as number
          const last = values[LAST_EVENT] as number
          ;(vectors[column++] as DuckDBVector).setItem(i, Number.isNaN(first) ? null : BigInt(first))
          ;(vectors[column++] as DuckDBVector).setItem(i, Number.isNaN(last) ? null : BigInt(last))
          ;(vectors[column++] as DuckDBVector).setItem(i, BigInt(version))
          ;(vectors[column++] as DuckDBVector).setItem(i, updatedAt)
          ;(vectors[column++] as DuckDBVector).setItem(i, batch)
          rows.push({ subscriberId, version, firstEventMs: first, lastEventMs: last, updatedAtMs: now, features: record })
        }
      })
      appender.flushSync()
    } finally {
      appender.closeSync()
    }
    return rows
  }

  /**
   * Writes a snapshot of every state changed since the last one (inside the caller's
   * transaction). A restart loads the snapshots and replays only the Silver batches after them.
   */
  async #writeSnapshot (pending: ReadonlyMap<string, SubscriberState>, batchId: number): Promise<number> {
    const c = this.#connection
    const log = await c.createAppender('gold_state_log')
    const batch = BigInt(batchId)
    let written = 0
    try {
      for (const subscriber of new Set([...this.#dirty, ...pending.keys()])) {
        const state = pending.get(subscriber) ?? this.#state.get(subscriber)
        if (state === undefined) continue
        log.appendVarchar(subscriber)
        log.appendBigInt(BigInt(state.version))
        log.appendBigInt(batch)
        log.appendBlob(encodeState(state.values))
        log.endRow()
        written++
      }
      log.flushSync()
    } finally {
      log.closeSync()
    }
    await c.run("INSERT OR REPLACE INTO lakehouse_meta VALUES ('gold_snapshot_batch', $batch)", { batch: String(batchId) })
    return written
  }

  /**
   * Loads the committed state: the latest snapshot of each subscriber, then the Silver batches
   * committed after the snapshot, merged the same way a batch is. When the stored states were laid
   * out for other measures (the feature definition changed), Gold is rebuilt from Silver.
   */
  async #loadGoldState (): Promise<void> {
    const c = this.#connection
    const meta = new Map((await c.runAndReadAll('SELECT name, value FROM lakehouse_meta')).getRows().map(([name, value]) => [String(name), String(value)]))
    if (meta.get('gold_layout') !== stateLayoutFingerprint()) {
      await this.rebuildGold()
      return
    }
    const snapshots = await c.runAndReadAll(`SELECT subscriber_id, version, state FROM gold_state_log
      QUALIFY row_number() OVER (PARTITION BY subscriber_id ORDER BY version DESC) = 1`)
    for (const [subscriber, version, state] of snapshots.getRows()) {
      this.#state.set(String(subscriber), { version: num(version), values: decodeState((state as { bytes: Uint8Array }).bytes) })
    }
    const snapshotBatch = Number(meta.get('gold_snapshot_batch') ?? '0')
    const replayed = this.#merge(await c.run(deltaSql(`batch_id > ${snapshotBatch}`)))
    const versions = await this.#committedVersions()
    for (const [subscriber, state] of replayed) {
      state.version = versions.get(subscriber) ?? state.version
      this.#state.set(subscriber, state)
      this.#dirty.add(subscriber)
    }
    this.#snapshotBatch = snapshotBatch
    this.#goldLogRows = num((await c.runAndReadAll('SELECT (SELECT count(*) FROM gold_state_log) + (SELECT count(*) FROM gold_features_log)')).getRows()[0]?.[0])
  }

  /** The newest committed Gold version of each subscriber. */
  async #committedVersions (): Promise<Map<string, number>> {
    const reader = await this.#connection.runAndReadAll('SELECT subscriber_id, max(version) FROM gold_features_log GROUP BY 1')
    return new Map(reader.getRows().map(([subscriber, version]) => [String(subscriber), num(version)]))
  }

  /**
   * Rebuilds Gold's state and rows from Silver by the same merge as a batch (the incremental path
   * run over everything). Versions continue from the stored ones.
   */
  async rebuildGold (): Promise<void> {
    const c = this.#connection
    const now = Date.now()
    await c.run('BEGIN TRANSACTION')
    try {
      const versions = await this.#committedVersions()
      await c.run('DELETE FROM gold_state_log')
      await c.run('DELETE FROM gold_features_log')
      this.#state.clear()
      this.#dirty.clear()
      const merged = this.#merge(await c.run(deltaSql('true')))
      for (const [subscriber, state] of merged) state.version = (versions.get(subscriber) ?? 0) + 1
      const batchId = this.#nextBatchId - 1
      await this.#writeGold(merged, batchId, now)
      await this.#writeSnapshot(merged, batchId)
      await c.run("INSERT OR REPLACE INTO lakehouse_meta VALUES ('gold_layout', $fingerprint)", { fingerprint: stateLayoutFingerprint() })
      await c.run('COMMIT')
      for (const [subscriber, state] of merged) this.#state.set(subscriber, state)
      this.#snapshotBatch = batchId
      this.#goldLogRows = 2 * merged.size
    } catch (error) {
      await c.run('ROLLBACK').catch(() => {})
      this.#state.clear()
      throw error
    }
  }

  /** Drops superseded versions from the Gold logs (in its own transaction, between batches). */
  async compactGold (): Promise<void> {
    const c = this.#connection
    await c.run('BEGIN TRANSACTION')
    try {
      for (const table of ['gold_state_log', 'gold_features_log']) {
        await c.run(`CREATE TABLE ${table}_compacted AS SELECT * FROM ${table} QUALIFY row_number() OVER (PARTITION BY subscriber_id ORDER BY version DESC) = 1 ORDER BY batch_id`)
        if (table === 'gold_features_log') await c.run('DROP VIEW gold_features')
        await c.run(`DROP TABLE ${table}`)
        await c.run(`ALTER TABLE ${table}_compacted RENAME TO ${table}`)
      }
      for (const ddl of goldDdl()) await c.run(ddl)
      await c.run('COMMIT')
      this.#goldLogRows = (await this.counts()).gold_features ?? 0
    } catch (error) {
      await c.run('ROLLBACK').catch(() => {})
      throw new LakehouseError('CHURN_LAKEHOUSE_BATCH_FAILED', `Compacting the Gold logs failed (nothing changed): ${describeError(error)}`, { cause: error, retriable: true })
    }
  }

  /**
   * Gold rows committed but not yet published to the changelog (the newest version of each
   * subscriber), and the batch they run through.
   */
  async pendingChangelog (): Promise<{ rows: GoldRow[], throughBatch: number }> {
    const c = this.#connection
    const published = await this.#publishedThrough()
    const reader = await c.runAndReadAll(`SELECT * FROM gold_features_log WHERE batch_id > $published
      QUALIFY row_number() OVER (PARTITION BY subscriber_id ORDER BY version DESC) = 1
      ORDER BY batch_id, subscriber_id`, { published: BigInt(published) })
    const rows = reader.getRowObjectsJS()
    const throughBatch = rows.reduce((max, row) => Math.max(max, num(row.batch_id)), published)
    return { rows: rows.map(goldRow), throughBatch }
  }

  /** Records that the changelog is published through `batchId` (outside a batch). */
  async markPublished (batchId: number): Promise<void> {
    await this.#recordPublished(batchId)
  }

  async #publishedThrough (): Promise<number> {
    const value = (await this.#connection.runAndReadAll("SELECT value FROM lakehouse_meta WHERE name = 'changelog_published_batch'")).getRows()[0]?.[0]
    return value === undefined ? 0 : Number(value)
  }

  async #recordPublished (batchId: number): Promise<void> {
    await this.#connection.run(`INSERT INTO lakehouse_meta VALUES ('changelog_published_batch', $value)
      ON CONFLICT (name) DO UPDATE SET value = greatest(lakehouse_meta.value::BIGINT, EXCLUDED.value::BIGINT)::VARCHAR`, { value: String(batchId) })
  }

  /** The Gold row of one subscriber, or undefined. */
  async goldRow (subscriberId: string): Promise<GoldRow | undefined> {
    const reader = await this.#connection.runAndReadAll('SELECT * FROM gold_features WHERE subscriber_id = $id', { id: subscriberId })
    const row = reader.getRowObjectsJS()[0]
    return row === undefined ? undefined : goldRow(row)
  }

  /**
   * Compares the incrementally maintained Gold with Gold recomputed from Silver in one query.
   * Sums added in a different order may differ in the last bits, so doubles are compared with a
   * relative tolerance. Returns the differing rows (at most `limit`), empty when they agree.
   */
  async goldDifferences (options: { tolerance?: number, limit?: number } = {}): Promise<Array<Record<string, unknown>>> {
    const tolerance = options.tolerance ?? 1e-9
    const columns = [...FEATURES.map(f => ({ name: f.name, double: f.type === 'double' })), { name: 'first_event_ms', double: false }, { name: 'last_event_ms', double: false }]
    const differs = columns.map(({ name, double }) => double
      ? `(g.${name} IS DISTINCT FROM r.${name} AND NOT (abs(g.${name} - r.${name}) <= ${tolerance} * greatest(1, abs(r.${name}))))`
      : `g.${name} IS DISTINCT FROM r.${name}`)
    const reader = await this.#connection.runAndReadAll(`WITH r AS (${recomputeSql()})
      SELECT coalesce(g.subscriber_id, r.subscriber_id) AS subscriber_id, g.subscriber_id IS NULL AS missing_in_gold, r.subscriber_id IS NULL AS missing_in_recompute,
        ${columns.map(({ name }) => `g.${name} AS gold_${name}, r.${name} AS recomputed_${name}`).join(', ')}
      FROM gold_features g FULL OUTER JOIN r USING (subscriber_id)
      WHERE g.subscriber_id IS NULL OR r.subscriber_id IS NULL OR ${differs.join(' OR ')}
      LIMIT ${options.limit ?? 20}`)
    return reader.getRowObjectsJS()
  }

  /**
   * Recomputes Gold from Silver into a temporary table, as the reference design rebuilds its Gold
   * table, and returns its row count (the benchmark's reference for the incremental refresh).
   */
  async recomputeGoldTable (): Promise<number> {
    const c = this.#connection
    await c.run(`CREATE OR REPLACE TEMP TABLE gold_recomputed AS ${recomputeSql()}`)
    const count = num((await c.runAndReadAll('SELECT count(*) FROM gold_recomputed')).getRows()[0]?.[0])
    await c.run('DROP TABLE gold_recomputed')
    return count
  }


  /**
   * Point-in-time features for labelled subscribers: `labelsSql` yields `label_id`,
   * `subscriber_id`, `as_of_ms`. With no argument, the CRM outcomes in Silver are the labels, each
   * as of the start of its effective date.
   */
  async featuresAsOf (labelsSql = CRM_LABELS_SQL): Promise<Array<Record<string, unknown>>> {
    const reader = await this.#connection.runAndReadAll(`${asOfSql(labelsSql)} ORDER BY as_of_ms, label_id`)
    return reader.getRowObjectsJS()
  }

  /**
   * The data-quality report (the reference's `/api/v1/analytics/quality`, extended). It reads on a connection of its own inside one transaction: a
   * consistent snapshot of committed batches, never a query interleaved with (or inside) the
   * transaction of a batch being landed on the main connection.
   */
  async qualityReport (): Promise<QualityReport> {
    this.#reader ??= await this.#instance.connect()
    const c = this.#reader
    await c.run('BEGIN TRANSACTION')
    try {
      return await this.#qualityReport(c)
    } finally {
      await c.run('COMMIT')
    }
  }

  async #qualityReport (c: DuckDBConnection): Promise<QualityReport> {
    const sources = [...this.#tables.values()]
    const bronzeUnion = sources.map(t => `SELECT '${t.stream}' AS source, quality_score FROM ${t.bronze}`).join(' UNION ALL ')
    const [scores] = (await c.runAndReadAll(`SELECT count(*), avg(quality_score),
        count(*) FILTER (WHERE quality_score >= 80), count(*) FILTER (WHERE quality_score >= 60 AND quality_score < 80),
        count(*) FILTER (WHERE quality_score >= 45 AND quality_score < 60), count(*) FILTER (WHERE quality_score < 45)
      FROM (${bronzeUnion})`)).getRows()
    const bySource: QualityReport['by_source'] = {}
    let silverTotal = 0
    for (const t of sources) {
      const [row] = (await c.runAndReadAll(`SELECT (SELECT count(*) FROM ${t.bronze}), (SELECT count(*) FROM ${t.silver}), (SELECT count(*) FROM quarantine WHERE source = '${t.stream}')`)).getRows()
      bySource[t.stream] = { bronze: num(row?.[0]), silver: num(row?.[1]), quarantined: num(row?.[2]) }
      silverTotal += num(row?.[1])
    }
    const reasons: Record<string, number> = {}
    for (const [reason, count] of (await c.runAndReadAll('SELECT reason, count(*) FROM (SELECT unnest(reasons) AS reason FROM quarantine) GROUP BY 1 ORDER BY 2 DESC, 1')).getRows()) {
      reasons[String(reason)] = num(count)
    }
    const [meta] = (await c.runAndReadAll(`SELECT (SELECT count(*) FROM quarantine), (SELECT count(*) FROM ingest_dead_letters),
      (SELECT count(*) FROM gold_features), (SELECT max(last_event_ms) FROM gold_features), (SELECT max(committed_at_ms) FROM ingest_batches)`)).getRows()
    const bronzeTotal = num(scores?.[0])
    const avgBronze = numOrNull(scores?.[1])
    return {
      pipeline: {
        bronze_total: bronzeTotal,
        silver_total: silverTotal,
        quarantined: num(meta?.[0]),
        dead_lettered: num(meta?.[1]),
        pass_rate: bronzeTotal === 0 ? 0 : Math.round(silverTotal / bronzeTotal * 1000) / 10
      },
      quality_scores: {
        avg_bronze: avgBronze === null ? 0 : Math.round(avgBronze * 10) / 10,
        excellent_gte80: num(scores?.[2]),
        good_60_79: num(scores?.[3]),
        fair_45_59: num(scores?.[4]),
        poor_lt45: num(scores?.[5])
      },
      quarantine_reasons: reasons,
      by_source: bySource,
      gold: { subscribers: num(meta?.[2]), freshest_feature_ms: numOrNull(meta?.[3]), last_batch_committed_ms: numOrNull(meta?.[4]) }
    }
  }

  /**
   * Writes Silver (one file per source) and Gold as Parquet under `dir`, for training and
   * analysts, and then `export.json`: when, and the source offsets the files cover (what a reader
   * waits on to know the export holds everything up to a point). All files are one snapshot of
   * committed batches, read on a connection of their own, so ingest may go on landing batches
   * meanwhile (`ingest --export-every`). Files are written next to their final names and renamed
   * into place, so a reader never sees a half-written file.
   */
  async exportParquet (dir: string): Promise<Array<{ table: string, file: string, rows: number }>> {
    const { rename, writeFile } = await import('node:fs/promises')
    await mkdir(dir, { recursive: true })
    const tables = [...[...this.#tables.values()].map(t => t.silver), 'gold_features']
    const written: Array<{ table: string, file: string, rows: number }> = []
    const c = await this.#instance.connect()
    try {
      await c.run('BEGIN TRANSACTION')
      try {
        for (const table of tables) {
          const file = path.join(dir, `${table}.parquet`)
          const partial = `${file}.partial`
          const result = await c.run(`COPY (SELECT * FROM ${table}) TO '${partial.replaceAll("'", "''")}' (FORMAT parquet, COMPRESSION zstd)`)
          await rename(partial, file)
          written.push({ table, file, rows: result.rowsChanged })
        }
        const offsets = (await c.runAndReadAll('SELECT kafka_topic, kafka_partition, next_offset FROM ingest_offsets ORDER BY 1, 2')).getRows()
          .map(([topic, partition, next]) => ({ topic: String(topic), partition: num(partition), nextOffset: String(next) }))
        const marker: ExportMarker = { exportedAtMs: Date.now(), offsets, tables: written.map(w => ({ table: w.table, rows: w.rows })) }
        const file = path.join(dir, EXPORT_MARKER)
        await writeFile(`${file}.partial`, `${JSON.stringify(marker, null, 2)}\n`)
        await rename(`${file}.partial`, file)
      } finally {
        await c.run('COMMIT')
      }
    } catch (error) {
      throw new LakehouseError('CHURN_LAKEHOUSE_EXPORT_FAILED', `Parquet export to ${dir} failed: ${describeError(error)}`, { cause: error, retriable: true })
    } finally {
      c.closeSync()
    }
    return written
  }

  /** Row counts of the main tables (tests and progress). */
  async counts (): Promise<Record<string, number>> {
    const names = [...[...this.#tables.values()].flatMap(t => [t.bronze, t.silver]), 'quarantine', 'gold_features', 'ingest_dead_letters']
    const reader = await this.#connection.runAndReadAll(`SELECT ${names.map(n => `(SELECT count(*) FROM ${n}) AS ${n}`).join(', ')},
      (SELECT count(DISTINCT subscriber_id) FROM gold_features_log WHERE batch_id > coalesce((SELECT value::BIGINT FROM lakehouse_meta WHERE name = 'changelog_published_batch'), 0)) AS changelog_pending`)
    const row = reader.getRowObjectsJS()[0] ?? {}
    return Object.fromEntries([...names, 'changelog_pending'].map(n => [n, num(row[n])]))
  }

  /** Checkpoints and closes the file. */
  /**
   * DuckDB's own account of its memory by tag (`duckdb_memory()`): what its buffer manager holds,
   * up to DUCKDB_MEMORY_LIMIT, and what it spilled to temporary files. What the process holds
   * beyond it and the V8 heap is the allocator's and the addon's.
   */
  async memory (): Promise<DuckDBMemory[]> {
    if (this.#closed) return []
    this.#probe ??= await this.#instance.connect()
    const rows = (await this.#probe.runAndReadAll('SELECT tag, memory_usage_bytes, temporary_storage_bytes FROM duckdb_memory()')).getRowObjects()
    return rows.map(row => ({ tag: String(row.tag), memoryBytes: num(row.memory_usage_bytes), temporaryBytes: num(row.temporary_storage_bytes) }))
  }

  close (): void {
    if (this.#closed) return
    this.#closed = true
    this.#probe?.closeSync()
    this.#reader?.closeSync()
    this.#connection.closeSync()
    this.#instance.closeSync()
  }
}

/** CRM outcomes in Silver as labels: each as of the start of its effective date. */
export const CRM_LABELS_SQL = `SELECT event_id AS label_id, subscriber_id, (effective_date - DATE '1970-01-01')::BIGINT * ${DAY_MS} AS as_of_ms,
  (outcome = 'CHURNED')::INTEGER AS churned FROM silver_crm`

function goldRow (row: Record<string, unknown>): GoldRow {
  const features: Record<string, number | null> = {}
  for (const f of FEATURES) features[f.name] = numOrNull(row[f.name])
  return {
    subscriberId: String(row.subscriber_id),
    version: num(row.version),
    firstEventMs: num(row.first_event_ms),
    lastEventMs: num(row.last_event_ms),
    updatedAtMs: num(row.updated_at_ms),
    features
  }
}

/** The gate of one source: every Bronze row of the batch with the reasons it fails (empty: passes). */
function gateSql (table: SourceTable): string {
  return `CREATE OR REPLACE TEMP TABLE gate_batch AS
SELECT b.* EXCLUDE (duplicate), ${reasonsExpression(gateRules(table))} || CASE WHEN duplicate THEN ['${DUPLICATE_REASON}'] ELSE []::VARCHAR[] END AS reasons
FROM (
  SELECT b.*, (
    row_number() OVER (PARTITION BY b.event_id, b.event_time_ms ORDER BY b.kafka_topic, b.kafka_partition, b.kafka_offset) > 1
    OR EXISTS (SELECT 1 FROM ${table.silver} s WHERE s.event_time_ms BETWEEN $minTime AND $maxTime AND s.event_id = b.event_id AND s.event_time_ms = b.event_time_ms)
  ) AS duplicate
  FROM ${table.bronze} b WHERE b.batch_id = $batchId
) b`
}

async function migrate (connection: DuckDBConnection, tables: readonly SourceTable[]): Promise<void> {
  for (const table of tables) {
    const columns = table.columns.map(c => `${c.name} ${c.type}`)
    await connection.run(`CREATE TABLE IF NOT EXISTS ${table.bronze} (${[...columns, ...PROVENANCE_COLUMNS.map(c => `${c.name} ${c.type}`)].join(', ')})`)
    await connection.run(`CREATE TABLE IF NOT EXISTS ${table.silver} (${[...columns, 'batch_id BIGINT'].join(', ')})`)
    // A field added by a newer schema version becomes a nullable column of the existing tables.
    // The appender fills Bronze by position with the provenance columns last, so Bronze is
    // rebuilt with the new column in place; Silver is written by name and only gains a column.
    for (const name of [table.bronze, table.silver]) {
      const reader = await connection.runAndReadAll('SELECT column_name FROM duckdb_columns() WHERE table_name = $name AND schema_name = \'main\'', { name })
      const existing = new Set(reader.getRows().map(([column]) => String(column)))
      const missing = table.columns.filter(c => !existing.has(c.name))
      if (missing.length === 0) continue
      if (name === table.bronze) {
        const all = [...table.columns.map(c => c.name), ...PROVENANCE_COLUMNS.map(c => c.name)]
        await connection.run(`CREATE TABLE ${name}_migrated (${[...columns, ...PROVENANCE_COLUMNS.map(c => `${c.name} ${c.type}`)].join(', ')})`)
        await connection.run(`INSERT INTO ${name}_migrated BY NAME SELECT ${all.filter(c => existing.has(c)).join(', ')} FROM ${name}`)
        await connection.run(`DROP TABLE ${name}`)
        await connection.run(`ALTER TABLE ${name}_migrated RENAME TO ${name}`)
      } else {
        for (const column of missing) await connection.run(`ALTER TABLE ${name} ADD COLUMN ${column.name} ${column.type}`)
      }
    }
  }
  for (const ddl of [...goldDdl(), ...META_DDL]) await connection.run(ddl)
}
