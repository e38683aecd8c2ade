/**
 * The churn-risk topic as a live feed for the web page's server-sent events
 * (`routes/events.ts`): one Kafka consumer per API process, shared by every connected client.
 *
 * Why these choices:
 * - A group of its own per process (`<clientId>-risk-feed-<uuid>`): every API replica must see
 *   every event (a shared group would split the partitions between replicas, and each page
 *   would show a fraction of the feed). It never commits offsets, so a new group starts at the
 *   latest offset and leaves nothing behind in Kafka once the process stops (a group without
 *   committed offsets is forgotten when its last member leaves).
 * - Started on the first subscriber, not at boot: an API nobody watches costs no consumer.
 *   Stopped by `close()` (the events route calls it when the app closes).
 * - Decoded through the registry with reader-vs-writer resolution (the writer's schema id is in
 *   each frame), as every consumer of the project does. A record that does not decode is counted
 *   and skipped: this is a viewer, not the topic's owner, so it dead-letters nothing.
 * - Listeners are called synchronously and must not block (the route buffers per client).
 */
import { randomUUID } from 'node:crypto'
import type { Consumer, Kafka } from 'kafkajs'
import type { Type } from 'avsc'
import { describeError, errorCode } from '../../core/errors.ts'
import type { Logger } from '../../core/logger.ts'
import { AvroCodec, avroType, latestSchema } from '../../schemas/index.ts'
import type { ChurnRiskEvent } from '../../schemas/types.generated.ts'

/** Whether the feed is receiving events, and why not when it is not. */
export interface RiskFeedStatus {
  /** True once the consumer has joined and fetched: events produced from now on arrive. */
  live: boolean
  problem?: string
}

export type RiskFeedMessage =
  | { type: 'event', event: ChurnRiskEvent }
  | { type: 'status', status: RiskFeedStatus }

export type RiskFeedListener = (message: RiskFeedMessage) => void

/** What the events route needs: subscribe (starting the feed if needed), and stop it. */
export interface RiskFeed {
  /** Adds a listener; it is told the current status at once. Returns the unsubscribe function. */
  subscribe: (listener: RiskFeedListener) => () => void
  readonly status: RiskFeedStatus
  /** Stops the consumer; later subscribers get nothing. */
  close: () => Promise<void>
}

export interface KafkaRiskFeedOptions {
  kafka: Kafka
  /** The churn-risk topic. */
  topic: string
  /** The schema registry's Confluent-compatible API. */
  registryUrl: string
  logger: Logger
  /** Prefix of the per-process group id (`KAFKA_CLIENT_ID`). */
  groupPrefix: string
  /**
   * Wait before starting again after the consumer could not start or crashed for good.
   * @defaultValue 5000
   */
  retryMs?: number
}

/** The churn-risk topic read by one consumer of this process's own group, fanned out to listeners. */
export class KafkaRiskFeed implements RiskFeed {
  readonly #options: KafkaRiskFeedOptions
  readonly #logger: Logger
  readonly #listeners = new Set<RiskFeedListener>()
  #consumer: Consumer | undefined
  #starting: Promise<void> | undefined
  #retry: NodeJS.Timeout | undefined
  #status: RiskFeedStatus = { live: false, problem: 'not started' }
  #closed = false
  /** Codes of undecodable records already logged (one line per code, then only counted). */
  readonly #logged = new Set<string>()
  /** Records skipped because they did not decode. */
  undecodable = 0

  constructor (options: KafkaRiskFeedOptions) {
    this.#options = options
    this.#logger = options.logger.child({ component: 'risk-feed' })
  }

  get status (): RiskFeedStatus {
    return this.#status
  }

  subscribe (listener: RiskFeedListener): () => void {
    this.#listeners.add(listener)
    listener({ type: 'status', status: this.#status })
    if (!this.#closed && this.#consumer === undefined && this.#starting === undefined && this.#retry === undefined) this.#start()
    return () => { this.#listeners.delete(listener) }
  }

  async close (): Promise<void> {
    this.#closed = true
    this.#listeners.clear()
    if (this.#retry !== undefined) clearTimeout(this.#retry)
    await this.#starting
    await this.#stopConsumer()
  }

  #emit (message: RiskFeedMessage): void {
    for (const listener of this.#listeners) listener(message)
  }

  #setStatus (status: RiskFeedStatus): void {
    this.#status = status
    this.#emit({ type: 'status', status })
  }

  #start (): void {
    this.#starting = this.#run().catch(async (error: unknown) => {
      this.#logger.warn({ err: error, topic: this.#options.topic }, `the churn-risk feed could not start: ${describeError(error)}`)
      this.#setStatus({ live: false, problem: `cannot read ${this.#options.topic}: ${describeError(error)}` })
      await this.#stopConsumer()
      this.#scheduleRetry()
    }).finally(() => { this.#starting = undefined })
  }

  #scheduleRetry (): void {
    if (this.#closed) return
    this.#retry = setTimeout(() => {
      this.#retry = undefined
      if (!this.#closed) this.#start()
    }, this.#options.retryMs ?? 5000)
    this.#retry.unref()
  }

  async #run (): Promise<void> {
    const { kafka, topic, registryUrl, groupPrefix } = this.#options
    const reader = avroType((await latestSchema('churn-risk')).schema)
    const codec = new AvroCodec({ registryUrl })
    const consumer = kafka.consumer({ groupId: `${groupPrefix}-risk-feed-${randomUUID()}`, allowAutoTopicCreation: false })
    this.#consumer = consumer
    let joined = false
    consumer.on(consumer.events.GROUP_JOIN, () => { joined = true })
    // The first fetch after joining has resolved the partitions' offsets (latest, for a new
    // group): from then on nothing produced is missed, so clients are told the feed is live.
    consumer.on(consumer.events.FETCH, () => {
      if (joined && !this.#status.live) this.#setStatus({ live: true })
    })
    consumer.on(consumer.events.CRASH, event => {
      const { error, restart } = event.payload
      this.#setStatus({ live: false, problem: `reading ${topic} failed: ${describeError(error)}` })
      if (!restart && !this.#closed) {
        this.#logger.warn({ err: error, topic }, 'the churn-risk feed stopped; starting again shortly')
        void this.#stopConsumer().then(() => { this.#scheduleRetry() })
      }
    })
    await consumer.connect()
    await consumer.subscribe({ topic, fromBeginning: false })
    await consumer.run({
      autoCommit: false,
      eachBatch: async ({ batch }) => { await this.#deliver(codec, reader, batch.messages) }
    })
  }

  async #deliver (codec: AvroCodec, reader: Type, messages: ReadonlyArray<{ value: Buffer | null, offset: string }>): Promise<void> {
    const ids = messages.flatMap(m => m.value !== null && m.value.length >= 5 && m.value[0] === 0 ? [m.value.readInt32BE(1)] : [])
    // A registry outage leaves the writers unknown: those records count as undecodable below.
    await codec.loadWriters(ids).catch((error: unknown) => { this.#logger.debug({ err: error }, 'registry lookup failed') })
    for (const message of messages) {
      try {
        this.#emit({ type: 'event', event: codec.decode<ChurnRiskEvent>(message.value, reader).value })
      } catch (error) {
        this.undecodable++
        const code = errorCode(error) ?? 'unknown'
        if (!this.#logged.has(code)) {
          this.#logged.add(code)
          this.#logger.warn({ err: error, code, topic: this.#options.topic, offset: message.offset }, 'a churn-risk record does not decode; skipping it (counted, logged once per code)')
        }
      }
    }
  }

  async #stopConsumer (): Promise<void> {
    const consumer = this.#consumer
    this.#consumer = undefined
    if (consumer === undefined) return
    if (this.#status.live) this.#setStatus({ live: false, problem: 'stopped' })
    await consumer.disconnect().catch(() => {})
  }
}
