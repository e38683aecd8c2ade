/**
 * Waiting at start-up for a dependency that is not there yet (Kafka, the schema registry, Redis):
 * a role started before them (Kubernetes starts pods in any order) retries with capped exponential
 * backoff and jitter instead of exiting into a crash loop, says why it is not ready, and stops
 * promptly when asked to. Only "not reachable / not available" is waited for; anything else (a
 * refusal, bad configuration) is thrown at once, so a mistake fails fast with its own message.
 *
 * Logging: one warning when the reason changes (not one per attempt), and again at least every
 * `logEveryMs` while it stays the same, so a long wait is never silent; one line when it answers.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { describeError, errorCode } from './errors.ts'
import type { Logger } from './logger.ts'

/** Socket-level failures: nothing listening, nothing routable yet, a name not resolvable yet. */
const UNREACHABLE_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'ETIMEDOUT', 'EHOSTUNREACH', 'EHOSTDOWN', 'ENETUNREACH', 'ENETDOWN', 'EPIPE',
  // A Kubernetes Service's DNS name exists only once its operator has created it.
  'ENOTFOUND', 'EAI_AGAIN',
  // undici (fetch)
  'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED'
])

interface ErrorLike { retriable?: unknown, name?: unknown, message?: unknown, cause?: unknown, type?: unknown, errors?: unknown }

/**
 * Whether `error` says the dependency is not reachable or not available yet (worth waiting for),
 * as opposed to a refusal or a configuration mistake:
 * - an error that declares itself `retriable: true` (the project's errors, kafkajs's);
 * - a socket-level failure (`ECONNREFUSED`, `ETIMEDOUT`, `ENOTFOUND`...);
 * - ioredis's "Connection is closed." (a connection that never came up);
 * - a wrapper that only says a client gave up (kafkajs's retries exhausted, fetch's "fetch failed")
 *   when what it wraps is one of the above, and a batch of errors (kafkajs's per-topic ones) that
 *   all are.
 * The project's own errors (`CHURN_*`) that are not retriable are never waited for.
 */
export function isUnavailable (error: unknown, depth = 0): boolean {
  if (depth > 5 || typeof error !== 'object' || error === null) return false
  const e = error as ErrorLike
  if (e.retriable === true) return true
  const code = errorCode(error)
  if (code !== undefined && UNREACHABLE_CODES.has(code)) return true
  if (code?.startsWith('CHURN_') === true) return false
  if (e.message === 'Connection is closed.') return true
  if (Array.isArray(e.errors) && e.errors.length > 0) return e.errors.every(inner => isUnavailable(inner, depth + 1))
  const wrapper = e.name === 'KafkaJSNumberOfRetriesExceeded' || (e.name === 'TypeError' && e.message === 'fetch failed')
  return wrapper && isUnavailable(e.cause, depth + 1)
}

/** The most telling code along `error`'s causes (`CHURN_*`, `ECONNREFUSED`, a Kafka error type), else its name. */
export function failureCode (error: unknown): string {
  let current: unknown = error
  let name = 'Error'
  for (let depth = 0; depth < 6 && typeof current === 'object' && current !== null; depth++) {
    const e = current as ErrorLike
    const code = errorCode(current) ?? (typeof e.type === 'string' ? e.type : undefined)
    if (code !== undefined) return code
    if (typeof e.name === 'string') name = e.name
    current = e.cause
  }
  return name
}

/** `error`'s message, with its innermost cause's when that says more ("fetch failed" → why). */
export function failureReason (error: unknown): string {
  const message = describeError(error)
  let inner: unknown = error
  for (let depth = 0; depth < 6 && typeof inner === 'object' && inner !== null && (inner as ErrorLike).cause !== undefined; depth++) inner = (inner as ErrorLike).cause
  const innermost = inner === error ? '' : describeError(inner)
  return innermost === '' || message.includes(innermost) ? message : `${message} (${innermost})`
}

export interface Backoff {
  /** First pause. @defaultValue 250 */
  initialMs?: number
  /** Longest pause. @defaultValue 10000 */
  maxMs?: number
}

/**
 * The pause before attempt `attempt + 1` (after `attempt` failures, from 1): exponential from
 * `initialMs`, capped at `maxMs`, with "equal jitter" (half fixed, half random) so instances
 * started together do not retry in step; `random` returns [0, 1).
 */
export function backoffDelay (attempt: number, backoff: Backoff = {}, random: () => number = Math.random): number {
  const { initialMs = 250, maxMs = 10_000 } = backoff
  const ceiling = Math.min(maxMs, initialMs * 2 ** Math.min(Math.max(attempt - 1, 0), 30))
  return Math.round(ceiling / 2 + random() * ceiling / 2)
}

/** Told what the role waits for while it waits (`problem`), and `undefined` once it no longer does. */
export type WaitingListener = (problem: string | undefined) => void

export interface WaitForOptions<T> {
  /** What is awaited, as readiness and logs name it: `kafka`, `the schema registry`, `redis`. */
  what: string
  /** One try; resolves once the dependency answered (its value is returned). */
  attempt: () => Promise<T>
  logger: Logger
  /** Stops the wait at once: `waitFor` then resolves to `undefined`. */
  signal?: AbortSignal | undefined
  /** Called with `waiting for <what>: <reason> (attempt n)` after each failed attempt, and `undefined` on success. */
  onWaiting?: WaitingListener | undefined
  backoff?: Backoff
  /** Whether a failure is worth waiting for; anything else is thrown. @defaultValue isUnavailable */
  retriable?: (error: unknown) => boolean
  /** A warning at least this often while the reason stays the same. @defaultValue 60000 */
  logEveryMs?: number
  /** @defaultValue Math.random */
  random?: () => number
}

/**
 * Runs `attempt` until it succeeds, pausing with capped exponential backoff after each failure
 * that `retriable` accepts; returns its value, or `undefined` once `signal` aborts (at once, even
 * with an attempt under way: its result is then ignored).
 * @throws whatever `attempt` throws that is not retriable.
 */
export async function waitFor<T> (options: WaitForOptions<T>): Promise<T | undefined> {
  const { what, logger, signal, onWaiting, retriable = isUnavailable, logEveryMs = 60_000 } = options
  const started = Date.now()
  const aborted = new Promise<undefined>(resolve => {
    if (signal?.aborted === true) resolve(undefined)
    else signal?.addEventListener('abort', () => { resolve(undefined) }, { once: true })
  })
  let loggedReason: string | undefined
  let loggedAt = 0
  for (let attempt = 1; ; attempt++) {
    if (signal?.aborted === true) return undefined
    const trying = options.attempt().then(value => ({ value }), (error: unknown) => ({ error }))
    const outcome = await Promise.race([trying, aborted])
    if (outcome === undefined) return undefined
    if (!('error' in outcome)) {
      if (attempt > 1) logger.info({ awaiting: what, attempts: attempt, waitedMs: Date.now() - started }, `${what} answered after ${attempt} attempts (${((Date.now() - started) / 1000).toFixed(1)} s)`)
      onWaiting?.(undefined)
      return outcome.value
    }
    const { error } = outcome
    if (!retriable(error)) throw error
    const reason = failureReason(error)
    const code = failureCode(error)
    onWaiting?.(`waiting for ${what}: ${reason} (attempt ${attempt})`)
    const delay = backoffDelay(attempt, options.backoff, options.random)
    const key = `${code} ${reason}`
    if (key !== loggedReason || Date.now() - loggedAt >= logEveryMs) {
      logger.warn({ awaiting: what, code, attempt, retryInMs: delay, waitedMs: Date.now() - started, err: error }, `waiting for ${what}: ${reason}; retrying with backoff`)
      loggedReason = key
      loggedAt = Date.now()
    }
    await sleep(delay, undefined, { signal }).catch(() => {})
  }
}
