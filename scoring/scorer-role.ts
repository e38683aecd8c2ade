/**
 * The scorer role wired from configuration (`churn score`, the main job): schemas and topics
 * ensured, the promoted model held current, the online store and the campaign queues opened, the
 * consumer group run until stopped (or until it has caught up, for tests and the main job).
 */
import { setTimeout as sleep } from 'node:timers/promises'
import type { Registry } from 'prom-client'
import type { Config } from '../config/index.ts'
import { valueWithin } from '../core/deadline.ts'
import type { Logger } from '../core/logger.ts'
import { createRedis } from '../core/redis.ts'
import { AvroCodec } from '../schemas/codec.ts'
import { registerDerivedSchemas } from '../schemas/register.ts'
import { createSchemaRegistry } from '../schemas/registry.ts'
import { createKafka } from '../streams/kafka.ts'
import { STOP_LAG_MS } from '../streams/lag.ts'
import { ensureProjectTopics } from '../streams/topics.ts'
import { ModelRegistry } from '../training/registry.ts'
import { lakehouseFeatureHash } from '../training/sets.ts'
import { ScorerMetrics } from './metrics.ts'
import { ModelHolder } from './model-holder.ts'
import { campaignQueues } from './queues.ts'
import { ScorerService } from './scorer.ts'
import type { ScorerStats } from './scorer.ts'
import { OnlineStore } from './store.ts'

export interface RunScorerOptions {
  config: Config
  logger: Logger
  signal?: AbortSignal
  /** Stop once the group has no lag on the changelog (checked after the first batch). */
  untilCaughtUp?: boolean
  /** Rescore everyone in the online store with the serving model, then stop (no consuming). */
  rescore?: boolean
  /** Where the scorer's metrics go (the HTTP role's registry when they share a process). */
  metricsRegistry?: Registry
  /** Called once the scorer consumes, with the service (readiness, drift, stats). */
  onStarted?: (service: ScorerService) => void
  onBatch?: (stats: ScorerStats) => void
  /** @defaultValue 10000 */
  progressEveryMs?: number
}

export interface ScorerRunSummary extends ScorerStats {
  ms: number
  lag: number
  modelVersion: number | undefined
  /** With `rescore`: the subscribers rescored. */
  rescored?: number
}

export async function runScorer (options: RunScorerOptions): Promise<ScorerRunSummary> {
  const { config, logger } = options
  const started = Date.now()
  const registry = createSchemaRegistry({ url: config.registry.url })
  const derived = await registerDerivedSchemas({ registry, url: config.registry.url, topics: config.topics })
  const riskSchemaId = derived.find(d => d.name === 'churn-risk')?.latestId ?? -1
  const kafka = createKafka({ brokers: config.kafka.brokers, clientId: `${config.kafka.clientId}-scorer`, logger })
  await ensureProjectTopics(kafka, config.topics)

  // Request/response commands fail fast when Redis is down, so the batch retries and the role
  // reports not ready instead of hanging; the queues' own connection waits through reconnects.
  const storeRedis = createRedis({ url: config.redis.url, maxRetriesPerRequest: 2, logger, name: 'online-store' })
  const campaign = campaignQueues(config, logger)
  const models = new ModelHolder({ registry: new ModelRegistry(config.model.dir), name: config.serving.modelName, pollMs: config.serving.modelPollMs, logger, expectedFeatureHash: lakehouseFeatureHash() })
  const service = new ScorerService({
    kafka,
    codec: new AvroCodec({ registryUrl: config.registry.url }),
    store: new OnlineStore(storeRedis, config.redis.prefix),
    models,
    queues: campaign.queues,
    topics: config.topics,
    groupId: config.scorer.groupId,
    riskSchemaId,
    policy: config.risk,
    staleMs: config.scorer.staleMs,
    campaign: { prefix: config.redis.prefix, ...config.campaign },
    drift: config.scorer.drift,
    logger,
    sessionTimeoutMs: config.kafka.sessionTimeoutMs,
    ...(options.metricsRegistry === undefined ? {} : { metrics: new ScorerMetrics(options.metricsRegistry) }),
    ...(options.onBatch === undefined ? {} : { onBatch: options.onBatch })
  })
  let lag = -1
  let rescored: number | undefined
  try {
    await models.start()
    if (options.rescore === true) {
      rescored = (await service.rescoreAll()).subscribers
      return { ...service.stats, ms: Date.now() - started, lag, modelVersion: models.current?.version, rescored }
    }
    await service.start(options.signal)
    options.onStarted?.(service)
    const every = options.progressEveryMs ?? 10_000
    let lastLog = Date.now()
    while (options.signal?.aborted !== true) {
      await sleep(options.untilCaughtUp === true ? 200 : 1000, undefined, { signal: options.signal }).catch(() => {})
      if (Date.now() - lastLog >= every) {
        lastLog = Date.now()
        logger.info({ ...service.stats, lag: await service.lag().catch(() => -1), model: models.status }, 'scorer progress')
      }
      if (options.untilCaughtUp === true && service.stats.failing === 0 && await service.lag() === 0) break
    }
  } finally {
    await service.stop()
    models.stop()
    lag = await valueWithin(service.lag(), STOP_LAG_MS, -1)
    await campaign.close()
    storeRedis.disconnect()
  }
  return { ...service.stats, ms: Date.now() - started, lag, modelVersion: models.current?.version }
}
