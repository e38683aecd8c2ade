/**
 * `/metrics`: the process's Prometheus registry in the text format, public (see `auth.ts`).
 *
 * The API's own figures: request latency by method, route pattern and status (the pattern, never
 * the raw URL, so ids in paths do not grow the series without bound), requests refused by cause,
 * predictions by tier and the served model version. The other roles' figures, read on each scrape
 * so the API process shows them while ingest and the scorer run elsewhere: consumer-group lag and
 * dead-letter topic sizes from Kafka, campaign queue depths from Redis. Each such read is bounded
 * by a timeout: a dead Kafka or Redis leaves its series out of that scrape (and counts
 * `churn_api_scrape_errors_total`) rather than hanging it. Roles in the same process add their
 * own metrics to the same registry: `ScorerMetrics`, and `registerIngestMetrics` below.
 */
import type { Queue } from 'bullmq'
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { Admin } from 'kafkajs'
import { Counter, Gauge, Histogram, collectDefaultMetrics } from 'prom-client'
import type { Registry } from 'prom-client'
import type { Config } from '../../config/index.ts'
import type { BatchResult, DuckDBMemory } from '../../lakehouse/lakehouse.ts'
import type { IngestStats } from '../../streams/ingest.ts'
import { consumerGroupLag } from '../../streams/lag.ts'
import { sourceTopics } from '../../streams/topics.ts'
import type { ModelHolder } from '../model-holder.ts'
import { authFailures } from './auth.ts'

/** Why a 4xx was answered, as counted in `churn_api_requests_rejected_total{reason}`. */
export type RejectionReason = 'auth' | 'rate_limit' | 'validation' | 'malformed' | 'not_found' | 'too_large' | 'unsupported_media_type' | 'other'

/** What the consumer-group lag and dead-letter series are read from on each scrape. */
export interface KafkaFigures {
  /** Messages behind, by consumer group. */
  lag: Readonly<Record<string, number>>
  /** Messages held, by dead-letter topic. */
  deadLetters: Readonly<Record<string, number>>
}

export interface HttpMetricsOptions {
  registry: Registry
  models?: Pick<ModelHolder, 'current'> | undefined
  /** Queues whose job counts by state are shown (the campaign queues). */
  queues: readonly Queue[]
  kafka?: (() => Promise<KafkaFigures>) | undefined
  /**
   * Longest a scrape waits for Kafka or Redis figures.
   * @defaultValue 1000
   */
  collectTimeoutMs?: number
}

/** Counts predictions; decorated on the app as `apiMetrics`, called by the prediction routes. */
export interface ApiMetrics {
  recordPredictions: (tier: string, count?: number) => void
}

declare module 'fastify' {
  interface FastifyInstance {
    apiMetrics: ApiMetrics
  }
}

/** Counts `count` predictions of `tier` on the app's registry. */
export function recordPrediction (app: FastifyInstance, tier: string, count = 1): void {
  app.apiMetrics.recordPredictions(tier, count)
}

const QUEUE_STATES = ['waiting', 'prioritized', 'active', 'delayed', 'completed', 'failed'] as const

/**
 * Registers the API's metrics on `options.registry`, the hooks that feed them (at the root, so
 * every route and the not-found handler is measured) and `GET /metrics`. Metrics of the same
 * names already there (an app rebuilt in the same process) are replaced.
 */
export function registerHttpMetrics (app: FastifyInstance, options: HttpMetricsOptions): void {
  const { registry, collectTimeoutMs = 1000 } = options
  for (const name of ['http_request_duration_seconds', 'churn_api_requests_rejected_total', 'churn_api_predictions_total', 'churn_api_model_version', 'churn_api_scrape_errors_total', 'churn_consumer_group_lag', 'churn_dead_letter_messages', 'churn_campaign_queue_jobs']) {
    registry.removeSingleMetric(name)
  }
  // Process figures (heap, event-loop lag, GC) once per registry: a second call would clash.
  if (registry.getSingleMetric('nodejs_eventloop_lag_seconds') === undefined) collectDefaultMetrics({ register: registry })
  const registers = [registry]

  const duration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP request latency by method, route pattern (`not_found` for no route) and status code.',
    labelNames: ['method', 'route', 'status_code'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers
  })
  const rejected = new Counter({ name: 'churn_api_requests_rejected_total', help: 'Requests answered with a 4xx, by cause: auth (missing or wrong key), rate_limit, validation (schema), malformed (unparsable body), not_found, too_large, unsupported_media_type, other.', labelNames: ['reason'], registers })
  const predictions = new Counter({ name: 'churn_api_predictions_total', help: 'Predictions the API served, by risk tier.', labelNames: ['tier'], registers })
  const scrapeErrors = new Counter({ name: 'churn_api_scrape_errors_total', help: 'Figures left out of a scrape because their source failed or outlasted the collect timeout, by source (kafka, queues).', labelNames: ['source'], registers })
  new Gauge({
    name: 'churn_api_model_version',
    help: 'Version of the model the API serves (0: none).',
    registers,
    collect () { this.set(options.models?.current?.version ?? 0) }
  })

  const bounded = async <T>(source: string, read: () => Promise<T>): Promise<T | undefined> => {
    try {
      return await withTimeout(read(), collectTimeoutMs, source)
    } catch {
      scrapeErrors.inc({ source })
      return undefined
    }
  }
  const kafka = options.kafka
  if (kafka !== undefined) {
    // Both gauges read one Kafka round per scrape.
    const figures = shared(async () => await bounded('kafka', kafka))
    new Gauge({
      name: 'churn_consumer_group_lag',
      help: 'Messages on its topics past each consumer group\'s committed offsets (ingest, scorer), read from Kafka at scrape time.',
      labelNames: ['group'],
      registers,
      async collect () {
        const read = await figures()
        this.reset()
        for (const [group, lag] of Object.entries(read?.lag ?? {})) this.set({ group }, lag)
      }
    })
    new Gauge({
      name: 'churn_dead_letter_messages',
      help: 'Messages held in each dead-letter topic (undecodable records of ingest and the scorer), read from Kafka at scrape time.',
      labelNames: ['topic'],
      registers,
      async collect () {
        const read = await figures()
        this.reset()
        for (const [topic, count] of Object.entries(read?.deadLetters ?? {})) this.set({ topic }, count)
      }
    })
  }
  if (options.queues.length > 0) {
    new Gauge({
      name: 'churn_campaign_queue_jobs',
      help: 'Campaign jobs by queue and state, read from Redis at scrape time.',
      labelNames: ['queue', 'state'],
      registers,
      async collect () {
        const counts = await bounded('queues', async () => await Promise.all(options.queues.map(async queue => [queue.name, await queue.getJobCounts(...QUEUE_STATES)] as const)))
        this.reset()
        for (const [queue, byState] of counts ?? []) {
          for (const state of QUEUE_STATES) this.set({ queue, state }, byState[state] ?? 0)
        }
      }
    })
  }

  const errors = new WeakMap<FastifyRequest, string>()
  app.addHook('onError', async (request: FastifyRequest, _reply: FastifyReply, error: FastifyError) => {
    if (typeof error.code === 'string') errors.set(request, error.code)
  })
  app.addHook('onResponse', async (request: FastifyRequest, reply: FastifyReply) => {
    const status = reply.statusCode
    const route = request.routeOptions.url ?? 'not_found'
    duration.observe({ method: request.method, route, status_code: status }, reply.elapsedTime / 1000)
    if (status >= 400 && status < 500) rejected.inc({ reason: rejectionReason(status, errors.get(request), authFailures.get(request)) })
  })

  app.decorate('apiMetrics', {
    recordPredictions: (tier: string, count = 1) => { predictions.inc({ tier }, count) }
  } satisfies ApiMetrics)

  app.get('/metrics', {
    logLevel: 'warn',
    schema: { tags: ['operations'], summary: 'Prometheus metrics (text exposition format)' }
  }, async (_request, reply) => {
    const body = await registry.metrics()
    return await reply.type(registry.contentType).send(body)
  })
}

/** The cause of a 4xx from its status and Fastify's (or our) error code. */
export function rejectionReason (status: number, code: string | undefined, refusedBy?: string): RejectionReason {
  if (refusedBy === 'rate_limited' || status === 429) return 'rate_limit'
  if (refusedBy !== undefined || status === 401 || status === 403) return 'auth'
  switch (status) {
    case 400:
      // Fastify's parser codes (FST_ERR_CTP_INVALID_JSON_BODY, _EMPTY_JSON_BODY, _INVALID_CONTENT_LENGTH...):
      // the body could not be read at all, as opposed to read and refused by the schema.
      return code?.startsWith('FST_ERR_CTP_') === true ? 'malformed' : 'validation'
    case 404: case 405: return 'not_found'
    case 413: return 'too_large'
    case 415: return 'unsupported_media_type'
    case 422: return 'validation'
    default: return 'other'
  }
}

/**
 * Lag of the ingest group (source topics) and the scorer group (the feature changelog), and the
 * size of every dead-letter topic the project creates, through one admin client. A topic that
 * does not exist yet is left out.
 */
export function kafkaFigures (admin: Admin, config: Pick<Config, 'topics' | 'ingest' | 'scorer'>): () => Promise<KafkaFigures> {
  const sources = sourceTopics(config.topics)
  const deadLetterTopics = [...sources, config.topics.features].map(topic => config.topics.deadLetter(topic))
  return async () => {
    const [ingest, scorer] = await Promise.all([
      consumerGroupLag(admin, config.ingest.groupId, sources),
      consumerGroupLag(admin, config.scorer.groupId, [config.topics.features])
    ])
    const deadLetters: Record<string, number> = {}
    await Promise.all(deadLetterTopics.map(async topic => {
      const offsets = await admin.fetchTopicOffsets(topic).catch(() => undefined)
      if (offsets !== undefined) deadLetters[topic] = offsets.reduce((sum, p) => sum + Number(BigInt(p.high) - BigInt(p.low)), 0)
    }))
    return { lag: { [config.ingest.groupId]: ingest, [config.scorer.groupId]: scorer }, deadLetters }
  }
}

/** Batch timing of an ingest running in this process; pass `observeBatch` as its `onBatch`. */
export interface IngestMetrics {
  observeBatch: (result: BatchResult) => void
}

/**
 * The ingest role's figures on `registry`, for a process that runs ingest itself (the main job):
 * counters read from `stats` at scrape time (undefined: ingest not started yet, zeros), and a
 * histogram of batch stage durations fed by `observeBatch`. Ingest in its own workload registers
 * them on its role server's registry (`churn ingest` with ROLE_HTTP_PORT); the API still sees its
 * lag and dead letters through Kafka (`kafkaFigures`).
 */
export function registerIngestMetrics (registry: Registry, stats: () => Readonly<IngestStats> | undefined, memory?: () => Promise<readonly DuckDBMemory[]> | undefined): IngestMetrics {
  const registers = [registry]
  // DuckDB's memory, read at each scrape (no series until the lakehouse is open).
  const readMemory = shared(async () => await withTimeout(memory?.() ?? Promise.resolve([]), 1000, 'DuckDB memory'))
  for (const [name, help, field] of [
    ['churn_duckdb_memory_bytes', 'Memory DuckDB\'s buffer manager holds, by tag (duckdb_memory()); bounded by DUCKDB_MEMORY_LIMIT.', 'memoryBytes'],
    ['churn_duckdb_temporary_bytes', 'Bytes DuckDB spilled to temporary files, by tag (duckdb_memory()).', 'temporaryBytes']
  ] as const) {
    registry.removeSingleMetric(name)
    new Gauge({
      name, help, labelNames: ['tag'], registers,
      async collect () {
        this.reset()
        for (const m of await readMemory().catch(() => [])) this.set({ tag: m.tag }, m[field])
      }
    })
  }
  const fromStats = (name: string, help: string, read: (s: Readonly<IngestStats>) => number): void => {
    registry.removeSingleMetric(name)
    new Counter({ name, help, registers, collect () { this.reset(); this.inc(read(stats() ?? EMPTY_STATS)) } })
  }
  fromStats('churn_ingest_batches_total', 'Micro-batches ingest committed to the lakehouse.', s => s.batches)
  fromStats('churn_ingest_messages_total', 'Source messages ingest consumed into committed batches.', s => s.messages)
  fromStats('churn_ingest_bronze_rows_total', 'Rows appended to Bronze.', s => s.bronze)
  fromStats('churn_ingest_silver_rows_total', 'Rows that passed the quality gate into Silver.', s => s.silver)
  fromStats('churn_ingest_quarantined_total', 'Rows the quality gate quarantined.', s => s.quarantined)
  fromStats('churn_ingest_dead_lettered_total', 'Undecodable messages sent to a dead-letter topic.', s => s.deadLettered)
  fromStats('churn_ingest_changelog_published_total', 'Gold rows published to the feature changelog.', s => s.changelogPublished)
  fromStats('churn_ingest_redelivered_skipped_total', 'Redelivered messages dropped because the lakehouse already held their offset.', s => s.skippedRedelivered)
  registry.removeSingleMetric('churn_ingest_failing_attempts')
  new Gauge({ name: 'churn_ingest_failing_attempts', help: 'Consecutive failed attempts of the current batch (0: healthy).', registers, collect () { this.set(stats()?.failing ?? 0) } })
  registry.removeSingleMetric('churn_ingest_batch_seconds')
  const seconds = new Histogram({
    name: 'churn_ingest_batch_seconds',
    help: 'Time of each stage of a committed ingest micro-batch (bronze, silver, gold, snapshot, commit).',
    labelNames: ['stage'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers
  })
  return {
    observeBatch: (result) => {
      for (const [stage, ms] of Object.entries(result.ms)) seconds.observe({ stage }, ms / 1000)
    }
  }
}

const EMPTY_STATS: Readonly<IngestStats> = { batches: 0, messages: 0, bronze: 0, silver: 0, quarantined: 0, deadLettered: 0, changelogPublished: 0, skippedRedelivered: 0, failing: 0, lastError: undefined, lastBatchAtMs: undefined }

async function withTimeout<T> (promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_resolve, reject) => { timer = setTimeout(() => { reject(new Error(`${what} did not answer within ${ms} ms`)) }, ms) })
    ])
  } finally {
    clearTimeout(timer)
  }
}

/** Calls made while one is in flight share its result. */
function shared<T> (read: () => Promise<T>): () => Promise<T> {
  let inFlight: Promise<T> | undefined
  return async () => {
    inFlight ??= read().finally(() => { inFlight = undefined })
    return await inFlight
  }
}
