/**
 * The ingest role wired from configuration: topics and schemas ensured, the lakehouse opened, the
 * consumer group run until stopped, or only until it has caught up with the source topics (the
 * init container and the main job use that).
 */
import { setTimeout as sleep } from 'node:timers/promises'
import type { Config } from '../config/index.ts'
import { valueWithin } from '../core/deadline.ts'
import { describeError } from '../core/errors.ts'
import type { Logger } from '../core/logger.ts'
import { Lakehouse } from '../lakehouse/lakehouse.ts'
import type { BatchResult } from '../lakehouse/lakehouse.ts'
import { AvroCodec } from '../schemas/codec.ts'
import { registerDerivedSchemas, registerSourceSchemas } from '../schemas/register.ts'
import { createSchemaRegistry } from '../schemas/registry.ts'
import { IngestService } from './ingest.ts'
import type { IngestStats } from './ingest.ts'
import { createKafka } from './kafka.ts'
import { STOP_LAG_MS } from './lag.ts'
import { ensureProjectTopics, sourceTopics } from './topics.ts'
import { QualityPublisher } from './quality-publisher.ts'
import type { QualityPublisherOptions } from './quality-publisher.ts'

export interface RunIngestOptions {
  config: Config
  logger: Logger
  /** Stop once every message on the source topics at the time of the check is landed. */
  untilCaughtUp?: boolean
  /** Stops the role cleanly (finish the batch, commit, publish, close). */
  signal?: AbortSignal
  onBatch?: (result: BatchResult, stats: IngestStats) => void
  /** Called once the consumer group runs, with the service (live `stats`, `ready`) and the lakehouse it lands in. */
  onStarted?: (service: IngestService, lakehouse: Lakehouse) => void
  /** How often the role logs its progress. @defaultValue 10000 */
  progressEveryMs?: number
  /**
   * Publish the data-quality report to Redis (`<prefix>:quality`) for the HTTP API, which cannot
   * open the lakehouse: at start, after batches at most every `everyMs`, and at stop. Without
   * it nothing is published.
   */
  publishQuality?: QualityPublisherOptions
  /**
   * Export Silver and Gold as Parquet to `dir` (with `export.json`, the offsets it covers) once at
   * start, then every `everyMs` when batches landed since, and at stop: what the retraining job and the
   * API's init container train from, since no other process can open the lakehouse file. A failed
   * export is logged and tried again later; it never stops ingest.
   */
  exportParquet?: { dir: string, everyMs: number }
}

export interface IngestRunSummary extends IngestStats {
  ms: number
  lag: number
}

export async function runIngest (options: RunIngestOptions): Promise<IngestRunSummary> {
  const { config, logger } = options
  const started = Date.now()
  const registry = createSchemaRegistry({ url: config.registry.url })
  const schemaOptions = { registry, url: config.registry.url, topics: config.topics }
  await registerSourceSchemas(schemaOptions)
  const [changelog] = await registerDerivedSchemas(schemaOptions)
  const kafka = createKafka({ brokers: config.kafka.brokers, clientId: `${config.kafka.clientId}-ingest`, logger })
  await ensureProjectTopics(kafka, config.topics)

  const lakehouse = await Lakehouse.open(config.lakehouse)
  const service = new IngestService({
    kafka,
    lakehouse,
    codec: new AvroCodec({ registryUrl: config.registry.url }),
    topics: config.topics,
    logger,
    groupId: config.ingest.groupId,
    changelogSchemaId: changelog?.latestId ?? -1,
    maxBatchMessages: config.ingest.batchMessages,
    maxBatchWaitMs: config.ingest.batchWaitMs,
    sessionTimeoutMs: config.kafka.sessionTimeoutMs,
    ...(options.onBatch === undefined ? {} : { onBatch: options.onBatch })
  })
  let lag = -1
  const quality = options.publishQuality === undefined ? undefined : new QualityPublisher(options.publishQuality)
  const publishQuality = async (): Promise<void> => {
    await quality?.publish(service.stats.batches, async () => await lakehouse.qualityReport(), error => {
      logger.warn({ err: error }, `data-quality report not published to Redis: ${describeError(error)}`)
    })
  }
  let exportedBatches = -1
  let exportedAt = Number.NEGATIVE_INFINITY
  const exportIfDue = async (final = false): Promise<void> => {
    const target = options.exportParquet
    if (target === undefined || service.stats.batches === exportedBatches || (!final && Date.now() - exportedAt < target.everyMs)) return
    exportedAt = Date.now()
    const batches = service.stats.batches
    try {
      const written = await lakehouse.exportParquet(target.dir)
      exportedBatches = batches
      logger.info({ dir: target.dir, rows: written.reduce((sum, w) => sum + w.rows, 0), ms: Date.now() - exportedAt }, 'Parquet export written')
    } catch (error) {
      logger.warn({ err: error }, `Parquet export not written: ${describeError(error)}`)
    }
  }
  try {
    // The report and the export read on DuckDB connections of their own, snapshots of committed batches.
    await publishQuality()
    await exportIfDue()
    await service.start()
    options.onStarted?.(service, lakehouse)
    const every = options.progressEveryMs ?? 10_000
    let lastLog = Date.now()
    while (options.signal?.aborted !== true) {
      await sleep(options.untilCaughtUp === true ? 200 : 1000, undefined, { signal: options.signal }).catch(() => {})
      if (quality?.due(service.stats.batches) === true) await publishQuality()
      await exportIfDue()
      if (Date.now() - lastLog >= every) {
        lastLog = Date.now()
        logger.info({ ...service.stats, lag: await service.lag().catch(() => -1) }, 'ingest progress')
      }
      if (options.untilCaughtUp === true && service.stats.failing === 0 && await service.lag() === 0) break
    }
  } finally {
    await service.stop()
    // The last batches too: a stopped ingest leaves an export of everything it landed.
    await exportIfDue(true)
    if (quality !== undefined) await publishQuality()
    const stored = await lakehouse.storedOffsets().catch(() => undefined)
    lakehouse.close()
    if (stored !== undefined) lag = await valueWithin(lagAfterStop(kafka, config, stored), STOP_LAG_MS, -1)
  }
  return { ...service.stats, ms: Date.now() - started, lag }
}

/** Lag from the lakehouse's stored offsets, after the service has stopped. */
async function lagAfterStop (kafka: ReturnType<typeof createKafka>, config: Config, offsets: Awaited<ReturnType<Lakehouse['storedOffsets']>>): Promise<number> {
  const stored = new Map(offsets.map(o => [`${o.topic}:${o.partition}`, o.nextOffset]))
  const admin = kafka.admin()
  await admin.connect()
  try {
    let lag = 0n
    for (const topic of sourceTopics(config.topics)) {
      for (const o of await admin.fetchTopicOffsets(topic)) {
        const behind = BigInt(o.high) - (stored.get(`${topic}:${o.partition}`) ?? BigInt(o.low))
        if (behind > 0n) lag += behind
      }
    }
    return Number(lag)
  } finally {
    await admin.disconnect()
  }
}
