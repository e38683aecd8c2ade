/** Command-line values shared by the subcommands, each refused with a usage error naming its option. */
import { parseArgs } from 'node:util'
import type { ParseArgsConfig } from 'node:util'
import { UsageError } from './errors.ts'

/** `parseArgs` with its complaints turned into usage errors (exit code 2 and the usage line). */
export function parseOptions<T extends ParseArgsConfig> (config: T): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config)
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error))
  }
}

/** A positive whole number, or `fallback` when the option was not given. */
export function positiveInteger<F extends number | undefined> (text: string | undefined, option: string, fallback: F): number | F {
  if (text === undefined) return fallback
  const value = Number(text)
  if (!Number.isSafeInteger(value) || value < 1) throw new UsageError(`--${option} takes a positive whole number; got ${JSON.stringify(text)}`)
  return value
}

/** Runs `work` with a signal that SIGINT or SIGTERM aborts, so a long command stops cleanly. */
export async function untilInterrupted<T> (work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const stop = new AbortController()
  const onSignal = (): void => { stop.abort() }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  try {
    return await work(stop.signal)
  } finally {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
  }
}
