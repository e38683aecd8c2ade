/** Readiness checks of real dependencies, for `buildApp`'s `checks`. */
import type { Redis } from 'ioredis'
import type { ReadinessCheck } from './app.ts'

/** Redis answers PING. Give it a client that fails fast (`maxRetriesPerRequest` small). */
export function redisCheck (redis: Redis): ReadinessCheck {
  return async () => { await redis.ping() }
}
