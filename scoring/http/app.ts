/**
 * The HTTP app: health, readiness and the campaign queue dashboard. `buildApp` returns the
 * Fastify instance without listening, so tests drive it with `app.inject()`; `server.ts` listens.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { createBullBoard } from '@bull-board/api'
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter'
import { FastifyAdapter } from '@bull-board/fastify'
import type { Queue } from 'bullmq'
import { fastify } from 'fastify'
import type { FastifyBaseLogger, FastifyInstance } from 'fastify'
import { describeError } from '../../core/errors.ts'
import type { Registry } from 'prom-client'
import type { Config } from '../../config/index.ts'
import type { Logger } from '../../core/logger.ts'
import type { ModelHolder } from '../model-holder.ts'
import type { OnlineStore } from '../store.ts'

/** Resolves when a dependency answers; rejects (or outlasts the timeout) when it does not. */
export type ReadinessCheck = () => Promise<void>

export interface AppDeps {
  logger: Logger
  /** API settings (keys, rate limit, batch and body limits), the risk tiers, the served model's name. */
  config?: Pick<Config, 'api' | 'risk' | 'serving'>
  /** The serving model, kept current by its holder (a promoted version is picked up without a restart). */
  models?: ModelHolder
  /** Online features and latest scores by subscriber (the scorer keeps them). */
  store?: OnlineStore
  /** The process's Prometheus registry, served at /metrics; the roles in the process register on it. */
  metrics?: Registry
  /** What `/api/v1/ready` checks, by name (for now `redis`). */
  checks: Readonly<Record<string, ReadinessCheck>>
  /** The queues `/queues` shows (the campaign queues). */
  queues: readonly Queue[]
  /**
   * A check that has not answered within this has failed: a probe must answer before the
   * orchestrator's own timeout.
   * @defaultValue 2000
   */
  checkTimeoutMs?: number
}

/** Where the dashboard is mounted. */
export const DASHBOARD_PATH = '/queues'

const healthSchema = {
  type: 'object',
  required: ['status'],
  additionalProperties: false,
  properties: { status: { type: 'string', enum: ['ok'] } }
} as const

const readySchema = {
  type: 'object',
  required: ['ready', 'checks'],
  additionalProperties: false,
  properties: {
    ready: { type: 'boolean' },
    checks: { type: 'object', additionalProperties: { type: 'string', enum: ['ok', 'failed'] } }
  }
} as const

export interface ReadyBody {
  ready: boolean
  checks: Record<string, 'ok' | 'failed'>
}

export async function buildApp (deps: AppDeps): Promise<FastifyInstance> {
  const { checkTimeoutMs = 2000 } = deps
  // Typed as Fastify's logger interface so the instance is a plain `FastifyInstance` to callers.
  const logger: FastifyBaseLogger = deps.logger.child({ component: 'http' })
  const app = fastify({ loggerInstance: logger })

  // Probes come every few seconds: log them only when something is wrong.
  app.get('/api/v1/health', { logLevel: 'warn', schema: { response: { 200: healthSchema } } }, () => ({ status: 'ok' as const }))

  app.get('/api/v1/ready', { logLevel: 'warn', schema: { response: { 200: readySchema, 503: readySchema } } }, async (_request, reply) => {
    const results = await Promise.all(Object.entries(deps.checks).map(async ([name, check]) => {
      const ok = await passes(check, checkTimeoutMs).catch((error: unknown) => {
        // The process logger, not the request's: the route's quieter level is for Fastify's request lines.
        logger.warn({ check: name, err: error }, `readiness check ${name} failed: ${describeError(error)}`)
        return false
      })
      return [name, ok ? 'ok' : 'failed'] as const
    }))
    const body: ReadyBody = { ready: results.every(([, state]) => state === 'ok'), checks: Object.fromEntries(results) }
    return await reply.code(body.ready ? 200 : 503).send(body)
  })

  // No authentication yet (the API issue adds it), so the dashboard is read-only: it shows jobs
  // but cannot retry, remove or add them.
  const board = new FastifyAdapter()
  board.setBasePath(DASHBOARD_PATH)
  createBullBoard({ queues: deps.queues.map(queue => new BullMQAdapter(queue, { readOnlyMode: true })), serverAdapter: board })
  await app.register(board.registerPlugin(), { prefix: DASHBOARD_PATH, logLevel: 'warn' })

  return app
}

/** Resolves true when the check answers in time; rejects with why it did not. */
async function passes (check: ReadinessCheck, timeoutMs: number): Promise<true> {
  const timer = new AbortController()
  try {
    await Promise.race([
      check(),
      sleep(timeoutMs, undefined, { signal: timer.signal }).then(() => { throw new Error(`no answer within ${timeoutMs} ms`) })
    ])
    return true
  } finally {
    timer.abort()
  }
}
