/**
 * The HTTP app: health, readiness and the campaign queue dashboard. `buildApp` returns the
 * Fastify instance without listening, so tests drive it with `app.inject()`; `server.ts` listens.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import type { Queue } from 'bullmq'
import { LogController, fastify } from 'fastify'
import type { FastifyBaseLogger, FastifyInstance } from 'fastify'
import { describeError } from '../../core/errors.ts'
import { Registry } from 'prom-client'
import type { Config } from '../../config/index.ts'
import type { Logger } from '../../core/logger.ts'
import type { ModelHolder } from '../model-holder.ts'
import type { OnlineStore } from '../store.ts'
import type { DriftReport } from '../drift.ts'
import { installErrorHandling } from './errors.ts'
import { registerServingRoutes } from './routes/index.ts'
import { pageRoutes } from './routes/page.ts'
import { analyticsRoutes } from './routes/analytics.ts'
import { eventsRoute } from './routes/events.ts'
import { sessionRoutes } from './routes/session.ts'
import type { RiskFeed } from './risk-feed.ts'
import type { PublishedQuality } from '../../streams/quality-publisher.ts'
import { registerAuth } from './auth.ts'
import { registerDashboard } from './dashboard.ts'
import { registerHttpMetrics } from './metrics.ts'
import type { KafkaFigures } from './metrics.ts'
import { registerOpenApi } from './openapi.ts'

/** Resolves when a dependency answers; rejects (or outlasts the timeout) when it does not. */
export type ReadinessCheck = () => Promise<void>

export interface AppDeps {
  logger: Logger
  /**
   * API settings (keys, rate limit, batch and body limits), the risk tiers, the served model's
   * name, feature staleness (`scorer.staleMs`). Without it the prediction and model routes are absent.
   */
  config?: Pick<Config, 'api' | 'risk' | 'serving' | 'scorer'>
  /** The serving model, kept current by its holder (a promoted version is picked up without a restart). */
  models?: ModelHolder
  /** Online features and latest scores by subscriber (the scorer keeps them). */
  store?: OnlineStore
  /** The process's Prometheus registry, served at /metrics; the roles in the process register on it. */
  metrics?: Registry
  /** The scorer's drift report (the main job passes its scorer's), shown on the model card. */
  drift?: () => DriftReport | undefined
  /** What `/api/v1/ready` checks, by name (`redis`, `kafka`...); with `models`, a `model` check is added. */
  checks: Readonly<Record<string, ReadinessCheck>>
  /** The queues `/queues` shows (the campaign queues). */
  queues: readonly Queue[]
  /**
   * A check that has not answered within this has failed: a probe must answer before the
   * orchestrator's own timeout.
   * @defaultValue 2000
   */
  checkTimeoutMs?: number
  /**
   * Consumer-group lag and dead-letter counts, read from Kafka on each `/metrics` scrape
   * (`kafkaFigures(admin, config)` in `metrics.ts`); without it those series are absent.
   */
  kafka?: () => Promise<KafkaFigures>
  /**
   * Longest a `/metrics` scrape waits for Kafka or Redis figures; past it they are left out.
   * @defaultValue 1000
   */
  collectTimeoutMs?: number
  /**
   * The churn-risk topic as a live feed (`KafkaRiskFeed`), served as server-sent events at
   * `/api/v1/events/stream`; closed with the app. Without it the stream route is absent.
   */
  riskFeed?: RiskFeed
  /**
   * The data-quality report the ingest role last published to Redis (`readQuality` in
   * `streams/quality-publisher.ts`), served at `/api/v1/analytics/quality`; without it that route is absent.
   */
  quality?: () => Promise<PublishedQuality | undefined>
}

export { DASHBOARD_PATH } from './dashboard.ts'

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
    checks: { type: 'object', additionalProperties: { type: 'string', enum: ['ok', 'failed'] } },
    problems: { type: 'object', description: 'Why each failed check failed.', additionalProperties: { type: 'string' } }
  }
} as const

export interface ReadyBody {
  ready: boolean
  checks: Record<string, 'ok' | 'failed'>
  /** Present when a check failed: its reason, by check name. */
  problems?: Record<string, string>
}

export async function buildApp (deps: AppDeps): Promise<FastifyInstance> {
  const { checkTimeoutMs = 2000 } = deps
  // Typed as Fastify's logger interface so the instance is a plain `FastifyInstance` to callers.
  const logger: FastifyBaseLogger = deps.logger.child({ component: 'http' })
  // No access log line per request (a hot path at thousands per second): latency and status are
  // in /metrics, and the error handler logs every refusal and failure with its request id.
  // No type coercion: Fastify's default reads a JSON body leniently where a number is declared
  // ("0x10" as 16, " 12 " as 12, "" as null, true as 1), so a feature sent as the wrong type was
  // scored as something the client never wrote. No route reads a typed query, params or headers.
  const app = fastify({
    loggerInstance: logger,
    // No per-request lines on the hot path: latency and status go to the /metrics histograms.
    logController: new LogController({ disableRequestLogging: true }),
    ajv: { customOptions: { coerceTypes: false } },
    ...(deps.config === undefined ? {} : { bodyLimit: deps.config.api.bodyLimitBytes })
  })
  // Before any route: swagger collects routes as they are added, and the hooks of auth and
  // metrics must cover every route. Without configuration no key is accepted (keyed routes 503).
  await registerOpenApi(app)
  registerHttpMetrics(app, { registry: deps.metrics ?? new Registry(), models: deps.models, queues: deps.queues, kafka: deps.kafka, collectTimeoutMs: deps.collectTimeoutMs })
  await registerAuth(app, { keys: deps.config?.api.keys ?? [], rateLimitPerMinute: deps.config?.api.rateLimitPerMinute ?? 6000 })

  // Probes come every few seconds: log them only when something is wrong.
  app.get('/api/v1/health', { logLevel: 'warn', schema: { response: { 200: healthSchema } } }, () => ({ status: 'ok' as const }))

  const checks: Readonly<Record<string, ReadinessCheck>> = deps.models === undefined ? deps.checks : { model: modelCheck(deps.models), ...deps.checks }
  app.get('/api/v1/ready', { logLevel: 'warn', schema: { response: { 200: readySchema, 503: readySchema } } }, async (_request, reply) => {
    const results = await Promise.all(Object.entries(checks).map(async ([name, check]) => {
      const problem = await passes(check, checkTimeoutMs).then(() => undefined, (error: unknown) => {
        // The process logger, not the request's: the route's quieter level is for Fastify's request lines.
        logger.warn({ check: name, err: error }, `readiness check ${name} failed: ${describeError(error)}`)
        return describeError(error)
      })
      return [name, problem] as const
    }))
    const failed = results.filter((r): r is readonly [string, string] => r[1] !== undefined)
    const body: ReadyBody = {
      ready: failed.length === 0,
      checks: Object.fromEntries(results.map(([name, problem]) => [name, problem === undefined ? 'ok' : 'failed'])),
      ...(failed.length === 0 ? {} : { problems: Object.fromEntries(failed) })
    }
    return await reply.code(body.ready ? 200 : 503).send(body)
  })

  // Before the next `await`: Fastify hands each route the error handler in force when it loads
  // the routes (at the next register), so this covers the routes above as well as the ones below.
  installErrorHandling(app)
  if (deps.config !== undefined) {
    registerServingRoutes(app, { config: deps.config, models: deps.models, store: deps.store, drift: deps.drift })
  }
  await pageRoutes(app, { models: deps.models, config: deps.config })
  analyticsRoutes(app, { store: deps.store, quality: deps.quality })
  if (deps.riskFeed !== undefined) eventsRoute(app, { feed: deps.riskFeed })
  sessionRoutes(app)

  await registerDashboard(app, { queues: deps.queues, logger })

  return app
}

/** Passes once a model is serving (a refused newer version still leaves one serving); fails with why not. */
function modelCheck (models: ModelHolder): ReadinessCheck {
  return async () => {
    if (models.current === undefined) await Promise.reject(new Error(models.status.problem ?? 'no model loaded'))
  }
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
