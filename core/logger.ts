import { pino } from 'pino'
import type { Logger, LevelWithSilent } from 'pino'

export type { Logger } from 'pino'

export interface LoggerOptions {
  /** @defaultValue 'info' */
  level?: LevelWithSilent
  /** Process or role name, printed on every line. */
  name: string
  /**
   * Human-readable lines through pino-pretty (a development dependency), for a terminal only.
   * Falls back to JSON when pino-pretty is not installed, as in the production image.
   * @defaultValue false
   */
  pretty?: boolean
  /**
   * Where JSON lines go. Logs default to stderr so that a command's own output on stdout
   * (tables, JSON reports) stays machine-readable.
   * @defaultValue 2 (stderr)
   */
  fd?: number
}

/**
 * Secrets and personal data never reach a log line. Subscriber identifiers are kept (operators
 * need them to trace a decision) but anything that identifies a person beyond that is removed.
 */
const REDACT_PATHS = [
  'password', '*.password',
  'apiKey', '*.apiKey',
  'headers.authorization', '*.headers.authorization', 'req.headers.authorization',
  'req.headers["x-api-key"]',
  'msisdn', '*.msisdn', 'email', '*.email'
]

/** Builds the one root logger of a process; components take `logger.child({ component })`. */
export async function createRootLogger (options: LoggerOptions): Promise<Logger> {
  const base = {
    name: options.name,
    level: options.level ?? 'info',
    redact: { paths: REDACT_PATHS, censor: '[redacted]' }
  }
  const fd = options.fd ?? 2
  if (options.pretty === true) {
    const pretty = await loadPretty()
    if (pretty !== undefined) return pino(base, pretty({ destination: fd, sync: true, colorize: true }))
  }
  return pino(base, pino.destination({ fd, sync: false }))
}

type PrettyFactory = (options: { destination: number, sync: boolean, colorize: boolean }) => NodeJS.WritableStream

async function loadPretty (): Promise<PrettyFactory | undefined> {
  try {
    const module = await import('pino-pretty') as { default: PrettyFactory }
    return module.default
  } catch {
    return undefined
  }
}
