/** The one place Redis connections are built, for the online store, BullMQ and health checks. */
import { Redis } from 'ioredis'
import type { RedisOptions } from 'ioredis'
import { ChurnError, describeError } from './errors.ts'
import type { CoreErrorCode } from './errors.ts'
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

/** Redis's answers that mean "not yet" rather than "no": loading its data, busy, a replica without its primary. */
const NOT_YET_REPLIES = /^(LOADING|BUSY|MASTERDOWN|TRYAGAIN|CLUSTERDOWN)\b/

/**
 * One connection attempt and a PING, then the connection is closed: whether Redis answers now.
 * @throws ChurnError `CHURN_REDIS_UNAVAILABLE` (retriable) when it cannot be reached, does not
 *   answer within `timeoutMs`, or is still loading; `CHURN_REDIS_REFUSED` when it answers with a
 *   refusal (a wrong password, a missing permission): configuration, not worth waiting for.
 */
export async function pingRedis (url: string, timeoutMs = 3000): Promise<void> {
  // disconnectTimeout: ioredis otherwise keeps a 2 s timer for a socket that never opened, holding up a stop.
  const redis = new Redis(url, { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0, enableOfflineQueue: false, connectTimeout: timeoutMs, commandTimeout: timeoutMs, disconnectTimeout: 100 })
  let first: unknown
  redis.on('error', (error: unknown) => { first ??= error })
  try {
    await redis.connect()
    await redis.ping()
  } catch (caught) {
    // ioredis rejects with "Connection is closed."; the connection's own error says why.
    const error = first ?? caught
    const message = describeError(error)
    if (error instanceof Error && error.name === 'ReplyError' && !NOT_YET_REPLIES.test(message)) {
      throw new ChurnError<CoreErrorCode>('CHURN_REDIS_REFUSED', `Redis refused the connection: ${message}; check REDIS_URL`, { cause: error })
    }
    throw new ChurnError<CoreErrorCode>('CHURN_REDIS_UNAVAILABLE', `Redis did not answer: ${message}`, { cause: error, retriable: true })
  } finally {
    redis.disconnect()
  }
}
