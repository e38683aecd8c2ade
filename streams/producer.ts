/**
 * The synthetic traffic producer: billing, network and device events and CRM outcomes from
 * {@link TrafficGenerator}, keyed by subscriber id, framed in the Confluent wire format with the
 * registry's ids for this build's schemas, sent by an idempotent producer with acks from every
 * in-sync replica.
 *
 * Two modes:
 * - a count (`events`): the events are spread over a window of `days` ending now, sent as fast as
 *   the broker takes them; with the same seed and `nowMs` the same events (ids included) are sent
 *   again, which the lakehouse lands once;
 * - a rate (`rate` per second): events carry the wall clock's time, a cohort's window is
 *   `horizonMs` long, and when it ends its outcomes are sent and a new cohort of subscribers
 *   begins. It runs for `durationMs` or until the signal aborts.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { CachedKeyPartitioner } from './partitioner.ts'
import type { Kafka, Message, Producer, TopicMessages } from 'kafkajs'
import type { Type } from 'avsc'
import type { Config } from '../config/index.ts'
import { describeError } from '../core/errors.ts'
import type { Logger } from '../core/logger.ts'
import { DAY_MS } from '../lakehouse/features.ts'
import { SOURCE_STREAMS, latestSchema } from '../schemas/catalog.ts'
import type { SourceStream } from '../schemas/catalog.ts'
import { avroType, encodeFramed } from '../schemas/codec.ts'
import { registerSourceSchemas } from '../schemas/register.ts'
import { createSchemaRegistry } from '../schemas/registry.ts'
import { StreamError } from './errors.ts'
import { TrafficGenerator } from './generator.ts'
import type { GeneratedEvent, GeneratorOptions } from './generator.ts'
import { createKafka } from './kafka.ts'
import { ensureProjectTopics } from './topics.ts'

export interface ProduceOptions {
  config: Config
  logger: Logger
  subscribers: number
  seed: number
  /** Count mode: this many billing, network and device events (CRM outcomes come on top). */
  events?: number
  /** Rate mode: events per second. */
  rate?: number
  /** Rate mode: stop after this long; without it, run until `signal` aborts. */
  durationMs?: number
  /** Count mode: the window the events are spread over, ending at `nowMs`. @defaultValue 30 */
  days?: number
  /** Rate mode: the length of a cohort's observation window. @defaultValue 3600000 (one hour) */
  horizonMs?: number
  /** Send CRM outcomes (the labels). @defaultValue true */
  outcomes?: boolean
  /** Messages per send. @defaultValue 5000 */
  batchSize?: number
  /** Dirty data shares, as in {@link GeneratorOptions}. */
  dirty?: Pick<GeneratorOptions, 'lowQualityFraction' | 'impossibleFraction' | 'lateFraction'>
  /** The clock; count mode's window ends at its value when the run starts. @defaultValue Date.now */
  clock?: () => number
  signal?: AbortSignal
  onProgress?: (progress: ProduceProgress) => void
}

export interface ProduceProgress {
  sent: number
  /** What count mode will send in all (outcomes included), when known. */
  target?: number
  ms: number
}

export interface ProduceSummary {
  /** Messages sent, outcomes included. */
  sent: number
  byStream: Record<SourceStream, number>
  churned: number
  retained: number
  cohorts: number
  ms: number
}

interface Encoder { topic: string, schemaId: number, type: Type }

export async function produceTraffic (options: ProduceOptions): Promise<ProduceSummary> {
  const { config, logger } = options
  if ((options.events === undefined) === (options.rate === undefined)) throw new RangeError('give either events (a count) or rate (events per second)')
  const clock = options.clock ?? Date.now
  const started = performance.now()
  const kafka = createKafka({ brokers: config.kafka.brokers, clientId: `${config.kafka.clientId}-producer`, logger })
  const encoders = await prepare(config, kafka)
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: CachedKeyPartitioner })
  await producer.connect()
  const summary: ProduceSummary = { sent: 0, byStream: { billing: 0, network: 0, device: 0, crm: 0 }, churned: 0, retained: 0, cohorts: 0, ms: 0 }
  const outbox = new Outbox(producer, encoders, options.batchSize ?? 5000, summary)
  const withOutcomes = options.outcomes !== false
  const report = (target?: number): void => options.onProgress?.({ sent: summary.sent, ms: performance.now() - started, ...(target === undefined ? {} : { target }) })
  try {
    if (options.events !== undefined) {
      const endMs = clock()
      const startMs = endMs - (options.days ?? 30) * DAY_MS
      const generator = new TrafficGenerator({ subscribers: options.subscribers, seed: options.seed, startMs, endMs, ...options.dirty })
      summary.cohorts = 1
      const target = options.events + (withOutcomes ? options.subscribers : 0)
      const step = (endMs - startMs) / options.events
      for (let i = 0; i < options.events && options.signal?.aborted !== true; i++) {
        const time = Math.floor(startMs + step * i)
        await outbox.add(generator.eventAt(time), () => { report(target) })
        if (withOutcomes && i % 1000 === 999) for (const outcome of generator.outcomesDue(time)) await outbox.add(outcome)
      }
      if (withOutcomes && options.signal?.aborted !== true) for (const outcome of generator.outcomesDue(endMs)) await outbox.add(outcome)
    } else {
      await produceAtRate(options, clock, outbox, summary, withOutcomes, () => { report() })
    }
    await outbox.flush()
    report()
  } catch (error) {
    throw error instanceof StreamError ? error : new StreamError('CHURN_PRODUCE_FAILED', `producing synthetic traffic failed after ${summary.sent} messages: ${describeError(error)}`, { cause: error })
  } finally {
    await producer.disconnect()
  }
  summary.ms = performance.now() - started
  return summary
}

async function produceAtRate (options: ProduceOptions, clock: () => number, outbox: Outbox, summary: ProduceSummary, withOutcomes: boolean, report: () => void): Promise<void> {
  const rate = options.rate ?? 1
  const horizonMs = options.horizonMs ?? 3_600_000
  const runStart = clock()
  const stopAt = options.durationMs === undefined ? Number.POSITIVE_INFINITY : runStart + options.durationMs
  let cohortStart = runStart
  let generator = cohort(options, summary, cohortStart, horizonMs)
  let due = 0
  let last = runStart
  while (options.signal?.aborted !== true) {
    const now = Math.min(clock(), stopAt)
    if (now >= cohortStart + horizonMs) {
      if (withOutcomes) for (const outcome of generator.outcomesDue(cohortStart + horizonMs)) await outbox.add(outcome)
      cohortStart += horizonMs
      generator = cohort(options, summary, cohortStart, horizonMs)
      continue
    }
    due += ((now - last) / 1000) * rate
    last = now
    for (; due >= 1; due--) await outbox.add(generator.eventAt(now))
    if (withOutcomes) for (const outcome of generator.outcomesDue(now)) await outbox.add(outcome)
    // Events are not held back waiting for a full batch: a live stream is sent as it happens.
    await outbox.flush()
    report()
    if (now >= stopAt) break
    await sleep(Math.min(100, Math.max(10, 1000 / rate)), undefined, { signal: options.signal }).catch(() => {})
  }
}

function cohort (options: ProduceOptions, summary: ProduceSummary, startMs: number, horizonMs: number): TrafficGenerator {
  const index = summary.cohorts++
  return new TrafficGenerator({
    subscribers: options.subscribers,
    seed: options.seed + index,
    startMs,
    endMs: startMs + horizonMs,
    idPrefix: index === 0 ? 'SUB-' : `SUB-C${index}-`,
    ...options.dirty
  })
}

/** Topics created, schemas registered, and an encoder per source stream with its latest id. */
async function prepare (config: Config, kafka: Kafka): Promise<Map<SourceStream, Encoder>> {
  const registry = createSchemaRegistry({ url: config.registry.url })
  const registered = await registerSourceSchemas({ registry, url: config.registry.url, topics: config.topics })
  await ensureProjectTopics(kafka, config.topics)
  const encoders = new Map<SourceStream, Encoder>()
  for (const source of SOURCE_STREAMS) {
    const subject = registered.find(r => r.name === source.subject)
    if (subject === undefined) throw new StreamError('CHURN_PRODUCE_FAILED', `subject ${source.subject} was not registered`)
    encoders.set(source.stream, { topic: subject.topic, schemaId: subject.latestId, type: avroType((await latestSchema(source.subject)).schema) })
  }
  return encoders
}

/** Encodes events as they come and sends them a batch at a time. */
class Outbox {
  readonly #producer: Producer
  readonly #encoders: Map<SourceStream, Encoder>
  readonly #batchSize: number
  readonly #summary: ProduceSummary
  #pending = new Map<string, Message[]>()
  #count = 0

  constructor (producer: Producer, encoders: Map<SourceStream, Encoder>, batchSize: number, summary: ProduceSummary) {
    this.#producer = producer
    this.#encoders = encoders
    this.#batchSize = batchSize
    this.#summary = summary
  }

  async add (event: GeneratedEvent, onFlush?: () => void): Promise<void> {
    const encoder = this.#encoders.get(event.stream) as Encoder
    let messages = this.#pending.get(encoder.topic)
    if (messages === undefined) {
      messages = []
      this.#pending.set(encoder.topic, messages)
    }
    messages.push({ key: event.key, value: encodeFramed(encoder.schemaId, encoder.type, event.value) })
    this.#summary.byStream[event.stream]++
    if (event.stream === 'crm') {
      if ((event.value as { outcome: string }).outcome === 'CHURNED') this.#summary.churned++
      else this.#summary.retained++
    }
    if (++this.#count >= this.#batchSize) {
      await this.flush()
      onFlush?.()
    }
  }

  async flush (): Promise<void> {
    if (this.#count === 0) return
    const topicMessages: TopicMessages[] = [...this.#pending].map(([topic, messages]) => ({ topic, messages }))
    const count = this.#count
    this.#pending = new Map()
    this.#count = 0
    await this.#producer.sendBatch({ topicMessages, acks: -1 })
    this.#summary.sent += count
  }
}
