/**
 * The ingest role: a consumer group over the source topics that lands micro-batches in the
 * lakehouse exactly once and publishes the Gold rows each batch changed.
 *
 * How exactly-once works. The lakehouse is the truth for offsets: a micro-batch's rows and the
 * next offset of every partition it read commit in one DuckDB transaction. On joining the group
 * the consumer seeks every assigned partition to its stored offset (or to the earliest retained
 * offset when the lakehouse has none), and while running it drops any message below the
 * partition's position, so a redelivery after a crash, a restart or a rebalance is never landed
 * twice. Kafka's own committed offsets are written only after the DuckDB commit, for lag
 * monitoring; they never lead the lakehouse.
 *
 * Micro-batches are bounded by count and by wait time. kafkajs keeps fetching while a batch is
 * landed (up to a buffer bound; beyond it the fetch loop waits, heartbeating). An undecodable
 * message goes to its topic's dead-letter topic with its original key, value and headers and the
 * reason in headers, before the batch that covers its offset commits; it is counted in the
 * lakehouse and never stalls the group. A registry outage is not a reason to dead-letter: the
 * batch waits and is retried with backoff, and the role reports itself not ready meanwhile.
 *
 * After each commit the changed Gold rows go to the compacted changelog topic while the next batch
 * is landed; the next batch's transaction records that they are out, so a crash between commit
 * and publication republishes them (versions make that harmless) and loses none.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import type { Type } from 'avsc'
import { CachedKeyPartitioner } from './partitioner.ts'
import type { Consumer, EachBatchPayload, IHeaders, Kafka, KafkaMessage, Producer } from 'kafkajs'
import type { Config } from '../config/index.ts'
import { describeError, errorCode } from '../core/errors.ts'
import type { Logger } from '../core/logger.ts'
import type { BatchResult, DeadLetterRecord, GoldRow, Lakehouse, LandedEvent, PartitionOffset } from '../lakehouse/lakehouse.ts'
import { SOURCE_STREAMS, latestSchema } from '../schemas/catalog.ts'
import type { SourceStream } from '../schemas/catalog.ts'
import { avroType, frameSchemaId } from '../schemas/codec.ts'
import type { AvroCodec } from '../schemas/codec.ts'
import { changelogMessages, featureChangeType } from './changelog.ts'
import { ConsumerContact } from './consumer-contact.ts'
import { StreamError } from './errors.ts'

/** Header names on a dead-lettered message. */
export const DLQ_HEADERS = {
  reason: 'churn.dlq.reason',
  code: 'churn.dlq.code',
  topic: 'churn.dlq.topic',
  partition: 'churn.dlq.partition',
  offset: 'churn.dlq.offset',
  schemaId: 'churn.dlq.schema-id',
  timestamp: 'churn.dlq.timestamp'
} as const

export const POISON_CODES: ReadonlySet<string> = new Set(['CHURN_AVRO_BAD_FRAME', 'CHURN_AVRO_UNKNOWN_SCHEMA', 'CHURN_AVRO_WRONG_SCHEMA', 'CHURN_AVRO_CORRUPT'])

export interface IngestOptions {
  kafka: Kafka
  lakehouse: Lakehouse
  codec: AvroCodec
  topics: Config['topics']
  logger: Logger
  /** Consumer group id. */
  groupId: string
  /** Schema id the changelog is written with (registered by the caller). */
  changelogSchemaId: number
  /** A micro-batch closes at this many messages... @defaultValue 20000 */
  maxBatchMessages?: number
  /** ...or this long after its first message. @defaultValue 250 */
  maxBatchWaitMs?: number
  /** Messages buffered before the fetch loop waits for a batch to land. @defaultValue 4 × maxBatchMessages */
  maxBufferedMessages?: number
  /**
   * How long the group waits for a member that stopped heartbeating (a crash) before handing its
   * partitions to the others; heartbeats go every third of it, at most every 3 s.
   * @defaultValue 30000
   */
  sessionTimeoutMs?: number
  /** Longest pause between retries of a failing batch. @defaultValue 30000 */
  maxRetryDelayMs?: number
  /** Called after each committed batch (metrics, tests, progress). */
  onBatch?: (result: BatchResult, stats: IngestStats) => void
}

export interface IngestStats {
  batches: number
  messages: number
  bronze: number
  silver: number
  quarantined: number
  deadLettered: number
  changelogPublished: number
  /** Messages dropped because the lakehouse already holds their offset (redeliveries). */
  skippedRedelivered: number
  /** Consecutive failed attempts of the current batch (0 when healthy). */
  failing: number
  lastError: string | undefined
  lastBatchAtMs: number | undefined
}

interface Buffered {
  stream: SourceStream
  topic: string
  partition: number
  message: KafkaMessage
}

/** Bytes of changelog values per produce request; well under the broker's 1 MB per partition. */
const CHANGELOG_REQUEST_BYTES = 128 * 1024

const key = (topic: string, partition: number): string => `${topic}\u0000${partition}`

export class IngestService {
  readonly #options: Required<Omit<IngestOptions, 'onBatch'>> & Pick<IngestOptions, 'onBatch'>
  readonly #logger: Logger
  readonly #streamOf: ReadonlyMap<string, SourceStream>
  readonly #readers = new Map<SourceStream, Type>()
  #changelogType: Type | undefined
  #consumer: Consumer | undefined
  #producer: Producer | undefined
  /** Next offset to accept per partition: the lakehouse's, advanced as messages are buffered. */
  readonly #positions = new Map<string, bigint>()
  /** Next offset per partition as committed in the lakehouse. */
  readonly #committed = new Map<string, bigint>()
  #buffer: Buffered[] = []
  #bufferOpenedAt = 0
  /** A taken batch that failed to land, retried before anything else. */
  #retrying: { items: Buffered[], deadLettersSent: boolean } | undefined
  #flushing: Promise<void> | undefined
  /** The changelog publication of the last batch: resolves to the batch it runs through. */
  #publishing: Promise<number | undefined> | undefined
  /** Committed Gold rows not yet handed to a publication, newest per subscriber. */
  #unpublished = new Map<string, GoldRow>()
  /** The last batch whose rows are in {@link #unpublished} or were handed over. */
  #unpublishedThrough: number | undefined
  #timer: NodeJS.Timeout | undefined
  #admin: ReturnType<Kafka['admin']> | undefined
  #seeking: Promise<void> = Promise.resolve()
  #stopping = false
  #running = false
  /** Whether the consumer is in touch with Kafka (for readiness). */
  #contact: ConsumerContact
  readonly #stats: IngestStats = {
    batches: 0, messages: 0, bronze: 0, silver: 0, quarantined: 0, deadLettered: 0, changelogPublished: 0, skippedRedelivered: 0, failing: 0, lastError: undefined, lastBatchAtMs: undefined
  }

  constructor (options: IngestOptions) {
    const maxBatchMessages = options.maxBatchMessages ?? 20_000
    this.#options = {
      maxBatchMessages,
      maxBatchWaitMs: 250,
      maxBufferedMessages: 4 * maxBatchMessages,
      maxRetryDelayMs: 30_000,
      sessionTimeoutMs: 30_000,
      ...options
    }
    this.#logger = options.logger.child({ component: 'ingest' })
    this.#contact = new ConsumerContact(this.#options.sessionTimeoutMs)
    this.#streamOf = new Map(SOURCE_STREAMS.map(s => [options.topics[s.topicKey], s.stream]))
  }

  get stats (): Readonly<IngestStats> {
    return { ...this.#stats }
  }

  /** Ready when running, the last batch did not fail, and the consumer is in touch with Kafka. */
  get ready (): boolean {
    return this.#running && this.#stats.failing === 0 && this.consumerProblem === undefined
  }

  /**
   * Why the consumer is not consuming: its last crash (kafkajs restarts it with backoff), or no
   * fetch, heartbeat or join for a session timeout (the broker gone while its retries run).
   */
  get consumerProblem (): string | undefined {
    return this.#running ? this.#contact.problem : undefined
  }

  async start (): Promise<void> {
    const { kafka, lakehouse, topics, groupId } = this.#options
    for (const source of SOURCE_STREAMS) this.#readers.set(source.stream, avroType((await latestSchema(source.subject)).schema))
    this.#changelogType = await featureChangeType()
    for (const stored of await lakehouse.storedOffsets()) {
      this.#positions.set(key(stored.topic, stored.partition), stored.nextOffset)
      this.#committed.set(key(stored.topic, stored.partition), stored.nextOffset)
    }

    this.#producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: CachedKeyPartitioner })
    // A short fetch wait keeps shutdown and the first batch quick; a fetch returns as soon as data is there anyway.
    const sessionTimeout = this.#options.sessionTimeoutMs
    this.#consumer = kafka.consumer({ groupId, sessionTimeout, heartbeatInterval: Math.min(3000, Math.floor(sessionTimeout / 3)), maxBytesPerPartition: 4 * 1024 * 1024, maxBytes: 32 * 1024 * 1024, maxWaitTimeInMs: 500, allowAutoTopicCreation: false })
    await this.#producer.connect()
    await this.#consumer.connect()

    // Whatever a previous run committed but did not get to publish goes out first.
    await this.#publishPending()

    const admin = kafka.admin()
    this.#admin = admin
    await admin.connect()
    this.#consumer.on(this.#consumer.events.GROUP_JOIN, event => {
      // Batches wait for the seek, so nothing fetched from Kafka's committed offsets slips in.
      this.#seeking = this.#seekAssignedWithRetry(admin, event.payload.memberAssignment)
    })
    this.#contact.watch(this.#consumer, this.#logger)
    await this.#consumer.subscribe({ topics: [...this.#streamOf.keys()], fromBeginning: true })
    await this.#consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: true,
      eachBatch: async payload => { await this.#onBatch(payload) }
    })
    this.#contact.running()
    this.#running = true
    this.#timer = setInterval(() => { this.#maybeFlush(false) }, Math.max(10, Math.floor(this.#options.maxBatchWaitMs / 4)))
    this.#timer.unref()
    this.#logger.info({ groupId, topics: [...this.#streamOf.keys()], dlq: [...this.#streamOf.keys()].map(t => topics.deadLetter(t)) }, 'ingest started')
  }

  /**
   * Seeks with retries: right after topics are created their leaders may not be elected yet
   * (NOT_LEADER_OR_FOLLOWER). Without the seek the offset filter still keeps the lakehouse exact,
   * but a first consumption would start from Kafka's committed offsets instead of the stored ones.
   */
  async #seekAssignedWithRetry (admin: ReturnType<Kafka['admin']>, assignment: Record<string, number[]>): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await this.#seekAssigned(admin, assignment)
        return
      } catch (error) {
        if (attempt >= 8 || this.#stopping) {
          this.#logger.error({ err: error, attempts: attempt + 1 }, 'could not seek the assigned partitions to the lakehouse offsets')
          return
        }
        await sleep(100 * 2 ** attempt)
      }
    }
  }

  async #seekAssigned (admin: ReturnType<Kafka['admin']>, assignment: Record<string, number[]>): Promise<void> {
    for (const [topic, partitions] of Object.entries(assignment)) {
      const unknown = partitions.filter(p => !this.#positions.has(key(topic, p)))
      const watermarks = unknown.length > 0 ? await admin.fetchTopicOffsets(topic) : []
      for (const partition of partitions) {
        let offset = this.#positions.get(key(topic, partition))
        if (offset === undefined) {
          offset = BigInt(watermarks.find(o => o.partition === partition)?.low ?? '0')
          this.#positions.set(key(topic, partition), offset)
        }
        this.#consumer?.seek({ topic, partition, offset: offset.toString() })
      }
    }
  }

  async #onBatch (payload: EachBatchPayload): Promise<void> {
    const { batch } = payload
    const stream = this.#streamOf.get(batch.topic)
    if (stream === undefined) return
    await this.#seeking
    const k = key(batch.topic, batch.partition)
    for (const message of batch.messages) {
      if (!payload.isRunning() || payload.isStale()) return
      const offset = BigInt(message.offset)
      const position = this.#positions.get(k)
      if (position !== undefined && offset < position) {
        this.#stats.skippedRedelivered++
        continue
      }
      if (this.#buffer.length === 0) this.#bufferOpenedAt = Date.now()
      this.#buffer.push({ stream, topic: batch.topic, partition: batch.partition, message })
      this.#positions.set(k, offset + 1n)
    }
    if (this.#buffer.length >= this.#options.maxBatchMessages) this.#maybeFlush(true)
    // Backpressure: past the bound the fetch loop waits for landing, heartbeating meanwhile.
    while (this.#buffer.length >= this.#options.maxBufferedMessages && !this.#stopping) {
      const flushing = this.#flushing ?? Promise.resolve()
      await Promise.race([flushing, sleep(1000)])
      await payload.heartbeat().catch(() => {})
      this.#maybeFlush(true)
    }
  }

  /** Starts landing the buffer when it is due and nothing is landing already. */
  #maybeFlush (full: boolean): void {
    if (this.#flushing !== undefined) return
    const due = this.#retrying !== undefined ||
      (this.#buffer.length > 0 && (full || this.#buffer.length >= this.#options.maxBatchMessages || Date.now() - this.#bufferOpenedAt >= this.#options.maxBatchWaitMs))
    if (!due) return
    this.#flushing = this.#flush().finally(() => { this.#flushing = undefined })
  }

  async #flush (): Promise<void> {
    let attempt = this.#retrying
    if (attempt === undefined) {
      const items = this.#buffer.splice(0, this.#options.maxBatchMessages)
      if (this.#buffer.length > 0) this.#bufferOpenedAt = Date.now()
      attempt = { items, deadLettersSent: false }
    }
    try {
      await this.#land(attempt)
      this.#retrying = undefined
      this.#stats.failing = 0
    } catch (error) {
      this.#retrying = attempt
      this.#stats.failing++
      this.#stats.lastError = describeError(error)
      const delay = Math.min(this.#options.maxRetryDelayMs, 200 * 2 ** Math.min(this.#stats.failing, 10))
      this.#logger.warn({ err: error, code: errorCode(error), attempt: this.#stats.failing, retryInMs: delay, messages: attempt.items.length }, 'micro-batch not landed; retrying')
      await sleep(delay)
    }
  }

  async #land (attempt: { items: Buffered[], deadLettersSent: boolean }): Promise<void> {
    const { lakehouse, codec, topics } = this.#options
    const items = attempt.items
    const ids: number[] = []
    for (const item of items) {
      const value = item.message.value
      if (value !== null && value.length >= 5 && value[0] === 0) ids.push(value.readInt32BE(1))
    }
    // Throws CHURN_SCHEMA_REGISTRY_UNAVAILABLE (retriable) when the registry is down.
    await codec.loadWriters(ids)

    const events: Partial<Record<SourceStream, LandedEvent[]>> = {}
    const deadLetters: DeadLetterRecord[] = []
    const dlqMessages = new Map<string, Array<{ key: Buffer | null, value: Buffer | null, headers: IHeaders }>>()
    const next = new Map<string, PartitionOffset>()
    for (const item of items) {
      const offset = BigInt(item.message.offset)
      const k = key(item.topic, item.partition)
      const known = next.get(k)
      if (known === undefined || known.nextOffset <= offset) next.set(k, { topic: item.topic, partition: item.partition, nextOffset: offset + 1n })
      try {
        const reader = this.#readers.get(item.stream) as Type
        const { value, schemaId } = codec.decode<Record<string, unknown>>(item.message.value, reader)
        ;(events[item.stream] ??= []).push({ topic: item.topic, partition: item.partition, offset, schemaId, value })
      } catch (error) {
        const code = errorCode(error)
        if (code === undefined || !POISON_CODES.has(code)) throw error
        const reason = describeError(error)
        deadLetters.push({ topic: item.topic, partition: item.partition, offset, code, reason })
        const dlq = topics.deadLetter(item.topic)
        let list = dlqMessages.get(dlq)
        if (list === undefined) dlqMessages.set(dlq, list = [])
        list.push({ key: item.message.key, value: item.message.value, headers: deadLetterHeaders(item, code, reason) })
      }
    }
    if (deadLetters.length > 0 && !attempt.deadLettersSent) {
      try {
        await this.#producer?.sendBatch({ acks: -1, topicMessages: [...dlqMessages].map(([topic, messages]) => ({ topic, messages })) })
      } catch (error) {
        throw new StreamError('CHURN_INGEST_DEAD_LETTER_FAILED', `Could not write ${deadLetters.length} undecodable message(s) to their dead-letter topic: ${describeError(error)}`, { cause: error, retriable: true })
      }
      attempt.deadLettersSent = true
      const first = deadLetters[0]
      this.#logger.warn({ count: deadLetters.length, topic: first?.topic, partition: first?.partition, offset: first?.offset.toString(), code: first?.code }, 'dead-lettered undecodable messages')
    }

    // The previous batch's changelog must be out before the lakehouse records it as published.
    const published = await this.#awaitPublishing()
    const result = await lakehouse.landBatch({ events, deadLetters, offsets: [...next.values()], ...(published === undefined ? {} : { publishedThroughBatch: published }) })
    for (const o of next.values()) this.#committed.set(key(o.topic, o.partition), o.nextOffset)
    for (const row of result.changed) this.#unpublished.set(row.subscriberId, row)
    this.#unpublishedThrough = result.batchId
    this.#count(result, items.length)
    // One line per micro-batch (never per message), for whoever runs at debug level.
    if (this.#logger.isLevelEnabled('debug')) {
      this.#logger.debug({ batchId: result.batchId, messages: items.length, bronze: result.bronze, silver: result.silver, quarantined: result.quarantined, deadLettered: result.deadLettered, touched: result.touched, ms: result.ms }, 'micro-batch landed')
    }

    const offsets = [...next.values()].map(o => ({ topic: o.topic, partition: o.partition, offset: o.nextOffset.toString() }))
    this.#consumer?.commitOffsets(offsets).catch((error: unknown) => {
      this.#logger.debug({ err: error }, 'Kafka offset commit failed (the lakehouse holds the offsets; lag figures may trail)')
    })
    this.#startPublishing()
  }

  #count (result: BatchResult, messages: number): void {
    const s = this.#stats
    s.batches++
    s.messages += messages
    s.bronze += result.bronze
    s.silver += result.silver
    s.quarantined += result.quarantined
    s.deadLettered += result.deadLettered
    s.lastBatchAtMs = Date.now()
    this.#options.onBatch?.(result, this.stats)
  }

  async #awaitPublishing (): Promise<number | undefined> {
    const publishing = this.#publishing
    this.#publishing = undefined
    if (publishing === undefined) return undefined
    try {
      return await publishing
    } catch (error) {
      this.#logger.warn({ err: error, code: errorCode(error) }, 'feature changelog not published; the rows stay pending and go out with the next batch')
      return undefined
    }
  }

  /**
   * Publishes the Gold rows committed so far while the next batch lands. The rows come from the
   * batch results, not from the lakehouse; when a publication fails they go back into the
   * unpublished set (unless a newer version arrived meanwhile) and out with the next batch's.
   */
  #startPublishing (): void {
    const rows = [...this.#unpublished.values()]
    const through = this.#unpublishedThrough
    this.#unpublished = new Map()
    this.#publishing = this.#send(rows).then(() => through, (error: unknown) => {
      for (const row of rows) if (!this.#unpublished.has(row.subscriberId)) this.#unpublished.set(row.subscriberId, row)
      throw error
    })
    // Failures are reported when awaited; never an unhandled rejection.
    this.#publishing.catch(() => {})
  }

  async #send (rows: readonly GoldRow[]): Promise<void> {
    if (rows.length === 0) return
    try {
      // A batch touching tens of thousands of subscribers is megabytes of changelog; one request
      // that size is refused by the broker (message.max.bytes, 1 MB per partition by default),
      // so it goes out in requests of at most CHANGELOG_REQUEST_BYTES.
      const messages = changelogMessages(rows, this.#options.changelogSchemaId, this.#changelogType as Type)
      for (let start = 0; start < messages.length;) {
        let end = start
        let bytes = 0
        while (end < messages.length && (end === start || bytes < CHANGELOG_REQUEST_BYTES)) {
          const m = messages[end++]
          bytes += (m?.value)?.length ?? 0
        }
        await this.#producer?.send({ topic: this.#options.topics.features, acks: -1, messages: messages.slice(start, end) })
        start = end
      }
    } catch (error) {
      throw new StreamError('CHURN_INGEST_CHANGELOG_FAILED', `Could not publish ${rows.length} changed Gold row(s) to ${this.#options.topics.features}: ${describeError(error)}`, { cause: error, retriable: true })
    }
    this.#stats.changelogPublished += rows.length
  }

  /** Publishes every committed, unpublished Gold row (start-up, shutdown). */
  async #publishPending (): Promise<void> {
    const { lakehouse } = this.#options
    const { rows, throughBatch } = await lakehouse.pendingChangelog()
    await this.#send(rows)
    await lakehouse.markPublished(throughBatch)
  }

  /**
   * Messages on the source topics not yet committed to the lakehouse: the sum over partitions of
   * the high watermark minus the lakehouse's next offset (the earliest retained offset when the
   * lakehouse has none for a partition).
   */
  async lag (): Promise<number> {
    const admin = this.#admin
    if (admin === undefined) throw new StreamError('CHURN_INGEST_FAILED', 'ingest is not started')
    let lag = 0n
    for (const topic of this.#streamOf.keys()) {
      for (const o of await admin.fetchTopicOffsets(topic)) {
        const next = this.#committed.get(key(topic, o.partition)) ?? BigInt(o.low)
        const behind = BigInt(o.high) - next
        if (behind > 0n) lag += behind
      }
    }
    return Number(lag)
  }

  /**
   * Stops consuming, lands what is buffered (one last attempt if it was failing), publishes the
   * pending changelog rows, and disconnects. Whatever could not be landed is read again on the next start.
   */
  async stop (): Promise<void> {
    if (this.#stopping) return
    this.#stopping = true
    if (this.#timer !== undefined) clearInterval(this.#timer)
    await this.#consumer?.stop().catch(() => {})
    await this.#flushing
    if (this.#running) {
      while (this.#buffer.length > 0 || this.#retrying !== undefined) {
        const failing = this.#stats.failing
        this.#maybeFlush(true)
        await this.#flushing
        if (this.#stats.failing > failing) break
      }
      const published = await this.#awaitPublishing()
      if (published !== undefined) await this.#options.lakehouse.markPublished(published).catch(() => {})
      await this.#publishPending().catch((error: unknown) => { this.#logger.warn({ err: error }, 'changelog rows left for the next start') })
    }
    this.#running = false
    await this.#consumer?.disconnect().catch(() => {})
    await this.#producer?.disconnect().catch(() => {})
    await this.#admin?.disconnect().catch(() => {})
    this.#logger.info({ ...this.stats }, 'ingest stopped')
  }
}

/** Headers of a dead-lettered message: its own, plus where it came from and why it was refused. */
export function deadLetterHeaders (item: { topic: string, partition: number, message: KafkaMessage }, code: string, reason: string): IHeaders {
  const headers: IHeaders = { ...item.message.headers }
  headers[DLQ_HEADERS.reason] = reason
  headers[DLQ_HEADERS.code] = code
  headers[DLQ_HEADERS.topic] = item.topic
  headers[DLQ_HEADERS.partition] = String(item.partition)
  headers[DLQ_HEADERS.offset] = item.message.offset
  headers[DLQ_HEADERS.timestamp] = item.message.timestamp
  try {
    headers[DLQ_HEADERS.schemaId] = String(frameSchemaId(item.message.value))
  } catch {
    // No readable frame: no schema id to report.
  }
  return headers
}
