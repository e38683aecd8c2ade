/**
 * Every role in one process, as the main job runs them after bootstrapping: ingest, the scorer,
 * the campaign workers and the HTTP server, while the producer streams live traffic for a
 * bounded time (or until interrupted). Once the traffic stops, the job waits for ingest and the
 * scorer to catch up, then stops every role cleanly and reports. Campaign jobs still waiting
 * then are not lost: they stay in Redis for the next `work` (the channels' rate limits, not the
 * job, decide how fast they drain).
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { Registry } from 'prom-client'
import type { Config } from '../config/index.ts'
import { describeError } from '../core/errors.ts'
import { createRedis } from '../core/redis.ts'
import type { Logger } from '../core/logger.ts'
import type { ScorerRunSummary } from '../scoring/scorer-role.ts'
import { runScorer } from '../scoring/scorer-role.ts'
import type { ScorerService } from '../scoring/scorer.ts'
import { campaignQueues } from '../scoring/queues.ts'
import type { QueueCounts } from '../scoring/queues.ts'
import type { Channel } from '../scoring/campaign.ts'
import { registerIngestMetrics } from '../scoring/http/metrics.ts'
import { serve } from '../scoring/http/server.ts'
import { runCampaignWorkers } from '../scoring/workers.ts'
import type { CampaignCounters } from '../scoring/workers.ts'
import type { IngestStats } from '../streams/ingest.ts'
import { runIngest } from '../streams/ingest-role.ts'
import type { IngestRunSummary } from '../streams/ingest-role.ts'
import { createKafka } from '../streams/kafka.ts'
import { consumerGroupLag } from '../streams/lag.ts'
import { produceTraffic } from '../streams/producer.ts'
import type { ProduceSummary } from '../streams/producer.ts'
import { sourceTopics } from '../streams/topics.ts'

export interface LiveOptions {
  config: Config
  logger: Logger
  subscribers: number
  seed: number
  /** Live events per second. */
  rate: number
  /** How long the traffic flows; undefined: until `signal` aborts. */
  durationMs: number | undefined
  /** Stops everything (SIGINT/SIGTERM). */
  signal: AbortSignal
  /** How long to wait for lag zero after the traffic. @defaultValue 60000 */
  settleMs?: number
  onProgress?: (line: string) => void
}

export interface LiveSummary {
  produced: ProduceSummary
  ingest: IngestRunSummary
  scorer: ScorerRunSummary
  workers: Readonly<Record<Channel, Readonly<CampaignCounters>>>
  queues: Record<Channel, QueueCounts>
  /** Whether ingest and the scorer reached lag zero before stopping. */
  settled: boolean
  ms: number
}

export async function runLive (options: LiveOptions): Promise<LiveSummary> {
  const { config, logger } = options
  const started = Date.now()
  const stop = new AbortController()
  const onOuterAbort = (): void => { stop.abort() }
  options.signal.addEventListener('abort', onOuterAbort, { once: true })
  let failure: unknown
  const guard = <T>(what: string, promise: Promise<T>): Promise<T | undefined> => promise.catch((error: unknown) => {
    logger.error({ err: error, role: what }, 'a role failed; stopping the others')
    failure ??= error
    stop.abort()
    return undefined
  })

  // One Prometheus registry for the process: /metrics shows ingest's and the scorer's figures too.
  const metrics = new Registry()
  let ingestStats: Readonly<IngestStats> | undefined
  const ingestMetrics = registerIngestMetrics(metrics, () => ingestStats)
  let scorer: ScorerService | undefined
  // Ingest publishes its data-quality report to Redis for the HTTP role (the page's pass rate).
  const qualityRedis = createRedis({ url: config.redis.url, maxRetriesPerRequest: 1, logger, name: 'quality-publisher' })
  const ingesting = guard('ingest', runIngest({
    config, logger, signal: stop.signal, progressEveryMs: 30_000,
    publishQuality: { redis: qualityRedis, prefix: config.redis.prefix },
    onBatch: (result, stats) => { ingestStats = stats; ingestMetrics.observeBatch(result) }
  }))
  const scoring = guard('score', runScorer({ config, logger, signal: stop.signal, progressEveryMs: 30_000, metricsRegistry: metrics, onStarted: s => { scorer = s } }))
  const working = guard('work', runCampaignWorkers({ config, logger, signal: stop.signal }))
  const serving = guard('serve', serve({
    config,
    logger,
    signal: stop.signal,
    metrics,
    drift: () => scorer?.driftReport(),
    checks: {
      scorer: async () => {
        const readiness = scorer?.readiness
        if (readiness === undefined) return await Promise.reject(new Error('the scorer has not started'))
        if (!readiness.ready) return await Promise.reject(new Error(readiness.problems.join('; ')))
      }
    }
  }))

  const kafka = createKafka({ brokers: config.kafka.brokers, clientId: `${config.kafka.clientId}-main`, logger })
  const admin = kafka.admin()
  await admin.connect()
  const queues = campaignQueues(config)
  let settled = false
  let produced: ProduceSummary | undefined
  try {
    const trafficStop = new AbortController()
    const onStop = (): void => { trafficStop.abort() }
    stop.signal.addEventListener('abort', onStop, { once: true })
    produced = await guard('produce', produceTraffic({
      config, logger, subscribers: options.subscribers, seed: options.seed, rate: options.rate, signal: trafficStop.signal,
      ...(options.durationMs === undefined ? {} : { durationMs: options.durationMs }),
      onProgress: p => { options.onProgress?.(`live traffic: ${p.sent.toLocaleString('en-US')} events in ${(p.ms / 1000).toFixed(0)} s`) }
    }))
    // Settle: ingest and then the scorer at lag zero (twice in a row: ingest publishes the
    // changelog of its last batch just after committing it).
    const deadline = Date.now() + (options.settleMs ?? 60_000)
    let quiet = 0
    while (!stop.signal.aborted && Date.now() < deadline) {
      const ingestLag = await consumerGroupLag(admin, config.ingest.groupId, sourceTopics(config.topics))
      const scorerLag = await consumerGroupLag(admin, config.scorer.groupId, [config.topics.features])
      quiet = ingestLag === 0 && scorerLag === 0 && scorer !== undefined ? quiet + 1 : 0
      if (quiet >= 2) {
        settled = true
        break
      }
      await sleep(500)
    }
  } finally {
    stop.abort()
    options.signal.removeEventListener('abort', onOuterAbort)
    await admin.disconnect()
  }
  const [ingest, scored, workers] = await Promise.all([ingesting, scoring, working, serving])
  qualityRedis.disconnect()
  const counts = await queues.counts()
  await queues.close()
  if (failure !== undefined) throw failure instanceof Error ? failure : new Error(describeError(failure))
  if (produced === undefined || ingest === undefined || scored === undefined || workers === undefined) throw new Error('a role stopped without a summary')
  return { produced, ingest, scorer: scored, workers, queues: counts, settled, ms: Date.now() - started }
}
