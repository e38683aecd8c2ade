/**
 * The `serve` role: builds the app with its real dependencies (the promoted model, kept current
 * by a ModelHolder; the online store in Redis; readiness checks of Redis, Kafka and the model),
 * listens on HTTP_HOST:HTTP_PORT, and on stop closes with a grace period (in-flight requests
 * finish; after the grace period the remaining connections are cut) before releasing its clients.
 */
import { once } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Registry } from 'prom-client'
import type { Config } from '../../config/index.ts'
import type { Logger } from '../../core/logger.ts'
import { createRedis } from '../../core/redis.ts'
import { createKafka } from '../../streams/kafka.ts'
import type { ModelArtifact } from '../../training/artifact.ts'
import { ModelRegistry } from '../../training/registry.ts'
import { lakehouseFeatureHash } from '../../training/sets.ts'
import type { DriftReport } from '../drift.ts'
import { ModelHolder } from '../model-holder.ts'
import { campaignQueues } from '../queues.ts'
import { OnlineStore } from '../store.ts'
import { buildApp } from './app.ts'
import type { ReadinessCheck } from './app.ts'
import { kafkaCheck, redisCheck } from './checks.ts'
import { KafkaRiskFeed } from './risk-feed.ts'
import { readQuality } from '../../streams/quality-publisher.ts'
import { kafkaFigures } from './metrics.ts'

export interface ServeOptions {
  config: Pick<Config, 'redis' | 'http' | 'kafka' | 'model' | 'serving' | 'api' | 'risk' | 'scorer' | 'topics' | 'ingest' | 'registry'>
  logger: Logger
  /** Aborting it stops the server gracefully. */
  signal: AbortSignal
  /** Readiness checks beyond Redis, Kafka and the model: the roles sharing this process (the main job's scorer, ingest). */
  checks?: Readonly<Record<string, ReadinessCheck>>
  /**
   * The serving model's holder, when the process already keeps one (it is neither started nor
   * stopped here). By default the role keeps its own on `MODEL_DIR`, polling every `MODEL_POLL_MS`.
   */
  models?: ModelHolder
  /** The process's Prometheus registry, when other roles in it register on it too (the main job). */
  metrics?: Registry
  /** The scorer's drift report, for the model card (the main job passes `() => scorer?.driftReport()`). */
  drift?: () => DriftReport | undefined
  /**
   * How long in-flight requests get to finish once stopping.
   * @defaultValue 10000
   */
  graceMs?: number
}

/**
 * The feature hash a served model must have: the lakehouse one for a lakehouse model (the store's
 * features are computed by this code); none for a tabular model, whose raw profiles the API
 * encodes with the model's own encoding, so a Telco model served by name is not refused.
 */
export function servedFeatureHash (artifact: ModelArtifact): string | undefined {
  return artifact.features.kind === 'lakehouse' ? lakehouseFeatureHash() : undefined
}

export async function serve (options: ServeOptions): Promise<void> {
  const { config, logger, signal, graceMs = 10_000 } = options
  const stopped = signal.aborted ? Promise.resolve() : once(signal, 'abort')
  // One retry and a short connect timeout: a dead Redis fails the probe and a subscriber lookup
  // at once (503) instead of queueing them behind reconnects. The probe and the store share it.
  const redis = createRedis({ url: config.redis.url, maxRetriesPerRequest: 1, connectTimeoutMs: 1000 })
  redis.on('error', (error: unknown) => { logger.debug({ err: error }, 'redis connection error') })
  // The readiness probe's own Kafka client: short timeouts and no retries, so it answers within the check timeout.
  const admin = createKafka({ brokers: config.kafka.brokers, clientId: `${config.kafka.clientId}-http`, logger, connectionTimeoutMs: 1000, requestTimeoutMs: 1500, retry: { retries: 0 } }).admin()
  const own = options.models === undefined
  const models = options.models ?? new ModelHolder({
    registry: new ModelRegistry(config.model.dir),
    name: config.serving.modelName,
    pollMs: config.serving.modelPollMs,
    logger,
    expectedFeatureHash: servedFeatureHash
  })
  // A missing or refused model does not stop the role: readiness reports it until one loads.
  if (own) await models.start()
  const queues = campaignQueues(config, logger)
  try {
    const app = await buildApp({
      logger,
      config,
      models,
      store: new OnlineStore(redis, config.redis.prefix),
      ...(options.drift === undefined ? {} : { drift: options.drift }),
      checks: { redis: redisCheck(redis), kafka: kafkaCheck(admin), ...options.checks },
      // The web page's live feed (its consumer starts on the first client; the app closes it)
      // and the quality report ingest publishes to Redis.
      riskFeed: new KafkaRiskFeed({ kafka: createKafka({ brokers: config.kafka.brokers, clientId: `${config.kafka.clientId}-risk-feed`, logger }), topic: config.topics.churnRisk, registryUrl: config.registry.url, logger, groupPrefix: config.kafka.clientId }),
      quality: async () => await readQuality(redis, config.redis.prefix),
      // Consumer lag and dead-letter counts for /metrics, read from Kafka when scraped.
      kafka: kafkaFigures(admin, config),
      ...(options.metrics === undefined ? {} : { metrics: options.metrics }),
      queues: Object.values(queues.queues)
    })
    try {
      await app.listen({ host: config.http.host, port: config.http.port })
      await stopped
    } finally {
      const closing = app.close()
      const grace = new AbortController()
      await Promise.race([closing, sleep(graceMs, undefined, { signal: grace.signal }).then(() => {
        logger.warn({ graceMs }, 'requests still open after the grace period; closing their connections')
        app.server.closeAllConnections()
      }, () => {})])
      grace.abort()
      await closing
    }
  } finally {
    if (own) models.stop()
    await queues.close()
    await admin.disconnect().catch(() => {})
    redis.disconnect()
  }
}
