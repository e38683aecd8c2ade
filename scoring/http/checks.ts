/** Readiness checks of real dependencies, for `buildApp`'s `checks`. */
import type { Redis } from 'ioredis'
import type { Admin } from 'kafkajs'
import type { ReadinessCheck } from './app.ts'

/** Redis answers PING. Give it a client that fails fast (`maxRetriesPerRequest` small). */
export function redisCheck (redis: Redis): ReadinessCheck {
  return async () => { await redis.ping() }
}

/**
 * Kafka answers a metadata request (`describeCluster`) with at least one broker. Give it an admin
 * of a client that fails fast (short connection and request timeouts, no retries): the
 * connection is made on the first check and made again after a failure.
 */
export function kafkaCheck (admin: Admin): ReadinessCheck {
  let connected: Promise<void> | undefined
  return async () => {
    try {
      connected ??= admin.connect()
      await connected
      const cluster = await admin.describeCluster()
      if (cluster.brokers.length === 0) throw new Error('the cluster reports no brokers')
    } catch (error) {
      connected = undefined
      await admin.disconnect().catch(() => {})
      throw error
    }
  }
}
