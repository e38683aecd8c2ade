/**
 * The `serve` role: builds the app with its real dependencies, listens on HTTP_HOST:HTTP_PORT,
 * and on stop closes with a grace period (in-flight requests finish; after the grace period the
 * remaining connections are cut) before releasing Redis.
 */
import { once } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Config } from '../../config/index.ts'
import type { Logger } from '../../core/logger.ts'
import { createRedis } from '../../core/redis.ts'
import { campaignQueues } from '../queues.ts'
import { buildApp } from './app.ts'
import type { ReadinessCheck } from './app.ts'
import { redisCheck } from './checks.ts'

export interface ServeOptions {
  config: Pick<Config, 'redis' | 'http'>
  logger: Logger
  /** Aborting it stops the server gracefully. */
  signal: AbortSignal
  /** Readiness checks beyond Redis: the roles sharing this process (the main job's scorer, ingest). */
  checks?: Readonly<Record<string, ReadinessCheck>>
  /**
   * How long in-flight requests get to finish once stopping.
   * @defaultValue 10000
   */
  graceMs?: number
}

export async function serve (options: ServeOptions): Promise<void> {
  const { config, logger, signal, graceMs = 10_000 } = options
  const stopped = signal.aborted ? Promise.resolve() : once(signal, 'abort')
  // Its own client for the probe: one retry and a short connect timeout, so a dead Redis fails
  // the check instead of queueing the PING behind reconnects.
  const probe = createRedis({ url: config.redis.url, maxRetriesPerRequest: 1, connectTimeoutMs: 1000 })
  probe.on('error', (error: unknown) => { logger.debug({ err: error }, 'redis probe connection error') })
  const queues = campaignQueues(config, logger)
  const app = await buildApp({ logger, checks: { redis: redisCheck(probe), ...options.checks }, queues: Object.values(queues.queues) })
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
    await queues.close()
    probe.disconnect()
  }
}
