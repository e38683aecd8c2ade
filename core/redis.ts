/** The one place Redis connections are built, for the online store, BullMQ and health checks. */
import { Redis } from 'ioredis'
import type { RedisOptions } from 'ioredis'
import type { Logger } from './logger.ts'

export interface RedisClientOptions {
  url: string
  /**
   * BullMQ requires `null` (its blocking commands must wait through reconnects); request/response
   * users want a small number so a dead server fails fast.
   * @defaultValue null
   */
  maxRetriesPerRequest?: number | null
  /** @defaultValue 3000 */
  connectTimeoutMs?: number
  /** Give up instead of reconnecting (health checks). @defaultValue false */
  noReconnect?: boolean
  /** Connect on first command rather than at once. @defaultValue false */
  lazyConnect?: boolean
  /**
   * Where connection errors go: the first of an outage at warn, then nothing until the
   * connection is back (logged at info). Without it they are dropped: failing commands and
   * readiness report an outage; ioredis's own fallback would print every retry to stderr.
   */
  logger?: Logger
  /** Names the connection in those logs. */
  name?: string
}

export function createRedis (options: RedisClientOptions): Redis {
  const redisOptions: RedisOptions = {
    maxRetriesPerRequest: options.maxRetriesPerRequest ?? null,
    connectTimeout: options.connectTimeoutMs ?? 3000,
    lazyConnect: options.lazyConnect ?? false,
    enableOfflineQueue: options.noReconnect !== true
  }
  if (options.noReconnect === true) redisOptions.retryStrategy = () => null
  const redis = new Redis(options.url, redisOptions)
  let down = false
  redis.on('error', (error: unknown) => {
    if (down) return
    down = true
    options.logger?.warn({ err: error, redis: options.name }, 'redis connection lost; reconnecting with backoff')
  })
  redis.on('ready', () => {
    if (!down) return
    down = false
    options.logger?.info({ redis: options.name }, 'redis connection back')
  })
  return redis
}
