/**
 * The project's base error. Every error the project throws carries a stable `code` (branch on
 * it, not on `instanceof`: errors cross worker-thread and process boundaries as plain objects),
 * whether retrying can help, the cause, and context fields that pino prints with it.
 *
 * Each top folder declares its own codes in its `errors.ts` as a `*_ERROR_CODES` const tuple;
 * `test/unit/core/errors.test.ts` checks every code is unique, `CHURN_`-prefixed and documented
 * in `docs/errors.md`.
 */
export interface ChurnErrorOptions {
  /** The error that led to this one. */
  cause?: unknown
  /**
   * Whether the same operation may succeed if tried again (a broker restarting, a registry not
   * up yet) as opposed to a fault that will repeat (bad input, bad configuration).
   * @defaultValue false
   */
  retriable?: boolean
  /** Fields copied onto the error as enumerable properties, so structured logs show them. */
  context?: Record<string, unknown>
}

export class ChurnError<Code extends string = string> extends Error {
  readonly code: Code
  readonly retriable: boolean

  constructor (code: Code, message: string, options: ChurnErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'ChurnError'
    this.code = code
    this.retriable = options.retriable ?? false
    if (options.context !== undefined) {
      for (const [key, value] of Object.entries(options.context)) {
        if (!(key in this)) Object.defineProperty(this, key, { value, enumerable: true })
      }
    }
  }
}

/** The `code` of anything thrown, when it has a string one (ours, Node's, kafkajs's...). */
export function errorCode (error: unknown): string | undefined {
  if (typeof error === 'object' && error !== null && 'code' in error) {
    const code = (error).code
    return typeof code === 'string' ? code : undefined
  }
  return undefined
}

/** A one-line description of anything thrown, for messages meant for people. */
export function describeError (error: unknown): string {
  if (error instanceof Error) return error.message
  return String(error)
}

/** The codes core raises itself (the shared Redis probe). */
export const CORE_ERROR_CODES = ['CHURN_REDIS_UNAVAILABLE', 'CHURN_REDIS_REFUSED'] as const
export type CoreErrorCode = typeof CORE_ERROR_CODES[number]
