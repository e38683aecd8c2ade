/** The one place Redis connections are built, for the online store, BullMQ and health checks. */
import { Redis } from 'ioredis'
import type { RedisOptions } from 'ioredis'

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
}

export function createRedis (options: RedisClientOptions): Redis {
  const redisOptions: RedisOptions = {
    maxRetriesPerRequest: options.maxRetriesPerRequest ?? null,
    connectTimeout: options.connectTimeoutMs ?? 3000,
    lazyConnect: options.lazyConnect ?? false,
    enableOfflineQueue: options.noReconnect !== true
  }
  if (options.noReconnect === true) redisOptions.retryStrategy = () => null
  return new Redis(options.url, redisOptions)
}
