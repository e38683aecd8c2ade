/**
 * The HTTP app over real campaign queues in Redis and an isolated configuration with API keys,
 * closed and cleaned up after the test.
 */
import type { TestContext } from 'node:test'
import type { FastifyInstance } from 'fastify'
import type { Config } from '../../config/index.ts'
import { createRedis } from '../../core/redis.ts'
import { buildApp } from '../../scoring/http/app.ts'
import type { AppDeps } from '../../scoring/http/app.ts'
import { redisCheck } from '../../scoring/http/checks.ts'
import { campaignQueues } from '../../scoring/queues.ts'
import { isolatedConfig, logger } from './context.ts'

/** Keys `httpApp` configures unless told otherwise. */
export const API_KEY = 'test-key-alpha-0123456789'
export const OTHER_API_KEY = 'test-key-bravo-0123456789'

export interface HttpAppOptions {
  /** Environment overrides (API_KEYS, API_RATE_LIMIT_PER_MINUTE...). */
  env?: Record<string, string>
  /** Dependencies beyond logger, config, checks and queues. */
  deps?: Partial<AppDeps>
  /** Called before the app is ready: add test-only routes here. */
  extend?: (app: FastifyInstance) => void
}

export async function httpApp (t: TestContext, options: HttpAppOptions = {}): Promise<{ app: FastifyInstance, config: Config }> {
  const isolated = await isolatedConfig({ API_KEYS: `${API_KEY},${OTHER_API_KEY}`, ...options.env }, 'http')
  const redis = createRedis({ url: isolated.config.redis.url, maxRetriesPerRequest: 1 })
  const queues = campaignQueues(isolated.config)
  const app = await buildApp({ logger, config: isolated.config, checks: { redis: redisCheck(redis) }, queues: Object.values(queues.queues), ...options.deps })
  t.after(async () => {
    await app.close()
    await queues.close()
    redis.disconnect()
    await isolated.cleanup()
  })
  options.extend?.(app)
  await app.ready()
  return { app, config: isolated.config }
}
