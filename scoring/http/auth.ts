/**
 * API keys and the rate limit per key, applied to every route but the public ones.
 *
 * Threats and answers:
 * - Guessing a key by timing: the presented key and every configured key are hashed (SHA-256)
 *   and the digests compared with `timingSafeEqual`, so neither the position of the first wrong
 *   character nor the key's length shows in the time taken; every configured key is compared, so
 *   neither does which one matched.
 * - Running open by mistake: with no keys configured a keyed route answers 503, never 200.
 * - Brute force: one rate-limit bucket per key, and one per client address for requests whose key
 *   is missing or wrong, so trying keys is throttled too. Buckets are named by a digest of the key,
 *   never the key itself (they show in logs and, with a shared store, in Redis).
 * - Keys in logs and history: a key is read from headers (`x-api-key`, or
 *   `Authorization: Bearer <key>`), never from the query string, which Fastify logs as the URL and
 *   browsers keep. A browser cannot add headers to the bull-board dashboard's own requests, so
 *   `POST /api/v1/session` (keyed by header) sets the key as an HttpOnly, SameSite=Strict cookie
 *   scoped to `/queues`; the cookie is accepted there and nowhere else (the dashboard is
 *   read-only, and a cookie never authorises an API route, so there is nothing to forge).
 *
 * Public: liveness and readiness probes (the orchestrator sends no key), `/metrics` (Prometheus
 * scrapes inside the cluster; the figures carry no subscriber data) and `/docs` (the API's own
 * description, no data: a client needs it to learn how to authenticate, and the fuzzer reads it).
 *
 * The limit is kept in each process's memory: with N API replicas a key gets N times the
 * configured rate at most, and a restart forgets it. Good enough against a runaway client; a
 * shared limit would use @fastify/rate-limit's Redis store.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import rateLimit from '@fastify/rate-limit'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { ApiAccessErrorCode } from '../errors.ts'

/** Route patterns answered without a key (see the module comment for why). */
export const PUBLIC_ROUTES: ReadonlySet<string> = new Set([
  '/api/v1/health',
  '/api/v1/ready',
  '/metrics',
  '/v2/health/live',
  '/v2/health/ready',
  // The web page (routes/page.ts): a document without data; the person types the key into it.
  '/'
])

/** Where the OpenAPI document and its interactive page live; public. */
export const DOCS_PATH = '/docs'

/** Whether the route `pattern` (Fastify's `routeOptions.url`, not the raw URL) needs no key. */
export function isPublicRoute (pattern: string | undefined): boolean {
  if (pattern === undefined) return false
  return PUBLIC_ROUTES.has(pattern) || pattern === DOCS_PATH || pattern.startsWith(`${DOCS_PATH}/`)
}

export interface AuthOptions {
  /** Accepted keys (`API_KEYS`); none: every keyed route answers 503. */
  keys: readonly string[]
  /** Requests per minute per key, and per client address for requests without a valid key. */
  rateLimitPerMinute: number
}

/** Why a request was refused, for the rejection metric. */
export type AuthFailure = 'missing' | 'invalid' | 'unconfigured'

/** What the rate limiter throws when a bucket is spent. */
class RateLimited extends Error {}

const digest = (value: string): Buffer => createHash('sha256').update(value, 'utf8').digest()

/**
 * Compares two secrets in time independent of where they differ and of their lengths: both are
 * hashed to 32 bytes first, as `timingSafeEqual` requires equal lengths and would otherwise leak
 * the length by throwing.
 */
export function secretsEqual (presented: string, expected: string): boolean {
  return timingSafeEqual(digest(presented), digest(expected))
}

/** The dashboard's cookie (set by `POST /api/v1/session`), accepted under `/queues` only. */
export const DASHBOARD_COOKIE = 'churn_dashboard_key'

/** The key in the dashboard cookie, for a request under `/queues`; undefined otherwise. */
export function dashboardCookieKey (request: Pick<FastifyRequest, 'headers' | 'url'>): string | undefined {
  if (request.url !== '/queues' && !request.url.startsWith('/queues/') && !request.url.startsWith('/queues?')) return undefined
  const cookies = request.headers.cookie
  if (cookies === undefined) return undefined
  for (const part of cookies.split(';')) {
    const [name, ...value] = part.trim().split('=')
    if (name !== DASHBOARD_COOKIE) continue
    try {
      return decodeURIComponent(value.join('='))
    } catch {
      return undefined
    }
  }
  return undefined
}

/** The key a request presents: `x-api-key`, else `Authorization: Bearer <key>`; undefined when neither. */
export function presentedKey (request: Pick<FastifyRequest, 'headers'>): string | undefined {
  const header = request.headers['x-api-key']
  if (typeof header === 'string' && header !== '') return header
  const authorization = request.headers.authorization
  const bearer = authorization === undefined ? undefined : /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization)?.[1]
  return bearer
}

type Identity = { ok: true, bucket: string } | { ok: false, failure: AuthFailure }

/** Matches presented keys against the configured ones; the result is kept per request. */
export class ApiKeys {
  readonly #digests: readonly Buffer[]
  readonly #seen = new WeakMap<FastifyRequest, Identity>()

  constructor (keys: readonly string[]) {
    this.#digests = keys.map(digest)
  }

  get configured (): boolean {
    return this.#digests.length > 0
  }

  /** The index of the configured key equal to `presented`, or -1; compares against all of them. */
  match (presented: string): number {
    const candidate = digest(presented)
    let found = -1
    this.#digests.forEach((expected, index) => {
      if (timingSafeEqual(candidate, expected) && found < 0) found = index
    })
    return found
  }

  identify (request: FastifyRequest): Identity {
    const known = this.#seen.get(request)
    if (known !== undefined) return known
    const identity = this.#identify(request)
    this.#seen.set(request, identity)
    return identity
  }

  #identify (request: FastifyRequest): Identity {
    if (!this.configured) return { ok: false, failure: 'unconfigured' }
    const key = presentedKey(request) ?? dashboardCookieKey(request)
    if (key === undefined) return { ok: false, failure: 'missing' }
    if (this.match(key) < 0) return { ok: false, failure: 'invalid' }
    // A digest prefix names the bucket: enough to keep keys apart, useless to recover one.
    return { ok: true, bucket: `key:${digest(key).toString('hex').slice(0, 16)}` }
  }
}

/** Fastify's error body shape, as every other error of the API answers. */
export interface ErrorBody {
  statusCode: number
  code: ApiAccessErrorCode
  error: string
  message: string
}

const REFUSALS: Record<AuthFailure, ErrorBody> = {
  missing: { statusCode: 401, code: 'CHURN_API_KEY_MISSING', error: 'Unauthorized', message: 'missing API key: send it in the x-api-key header or as Authorization: Bearer <key>' },
  invalid: { statusCode: 401, code: 'CHURN_API_KEY_INVALID', error: 'Unauthorized', message: 'invalid API key' },
  unconfigured: { statusCode: 503, code: 'CHURN_API_NO_KEYS', error: 'Service Unavailable', message: 'no API keys configured: this route is refused until API_KEYS is set' }
}

/** Records why a request was refused by the hook; the metrics plugin reads it. */
export const authFailures = new WeakMap<FastifyRequest, AuthFailure | 'rate_limited'>()

/**
 * Adds the key check and the rate limit to every route of `app` (registered later or earlier:
 * root hooks apply to all, and to the not-found handler, so an unknown path without a key is a
 * 401, which also keeps which paths exist private).
 *
 * Both run in one `onRequest` hook so their order is fixed: the limit is charged before the key
 * is judged, which throttles guessing. Wrong or missing keys answer 401 (both: the caller is not
 * authenticated in either case; 403 would mean a known caller without permission, which this API
 * does not have), with `WWW-Authenticate` as RFC 9110 asks.
 */
export async function registerAuth (app: FastifyInstance, options: AuthOptions): Promise<void> {
  const keys = new ApiKeys(options.keys)
  await app.register(rateLimit, {
    global: false,
    max: options.rateLimitPerMinute,
    timeWindow: 60_000,
    keyGenerator: (request) => {
      const identity = keys.identify(request)
      return identity.ok ? identity.bucket : `ip:${request.ip}`
    },
    errorResponseBuilder: (_request, context) => new RateLimited(`rate limit of ${context.max} requests per minute exceeded; retry in ${context.after}`)
  })
  const limit = app.rateLimit()

  app.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
    if (isPublicRoute(request.routeOptions.url)) return
    if (!keys.configured) return await refuse(request, reply, 'unconfigured')
    try {
      await limit.call(app, request, reply)
    } catch (error) {
      // Answered here rather than through the error handler, so the body is the same on every
      // route (a plugin such as bull-board installs its own handler); Retry-After is already set.
      if (!(error instanceof RateLimited)) throw error
      authFailures.set(request, 'rate_limited')
      return await reply.code(429).send({ statusCode: 429, code: 'CHURN_API_RATE_LIMITED', error: 'Too Many Requests', message: error.message } satisfies ErrorBody)
    }
    const identity = keys.identify(request)
    if (!identity.ok) return await refuse(request, reply, identity.failure)
  })
}

async function refuse (request: FastifyRequest, reply: FastifyReply, failure: AuthFailure): Promise<FastifyReply> {
  authFailures.set(request, failure)
  const body = REFUSALS[failure]
  if (body.statusCode === 401) void reply.header('www-authenticate', 'Bearer realm="churn-api"')
  return await reply.code(body.statusCode).send(body)
}
