/**
 * Parsers for environment variables. Each turns the raw string into a typed value or says, in
 * words a person can act on, what was expected. The configuration's TypeScript type is inferred
 * from these return types, so the type and the validation cannot drift apart.
 */
import path from 'node:path'

export type Parsed<T> = { ok: true, value: T } | { ok: false, expected: string }

export interface ParseContext {
  /** The directory relative paths are resolved against. */
  cwd: string
}

export type Parser<T> = (raw: string, context: ParseContext) => Parsed<T>

const ok = <T>(value: T): Parsed<T> => ({ ok: true, value })
const fail = (expected: string): Parsed<never> => ({ ok: false, expected })

export const text = (options: { pattern?: RegExp, expected?: string } = {}): Parser<string> => (raw) => {
  const value = raw.trim()
  if (value === '') return fail(options.expected ?? 'a non-empty value')
  if (options.pattern !== undefined && !options.pattern.test(value)) return fail(options.expected ?? `a value matching ${String(options.pattern)}`)
  return ok(value)
}

export const integer = (min: number, max: number): Parser<number> => (raw) => {
  const value = Number(raw.trim())
  if (!/^-?\d+$/.test(raw.trim()) || !Number.isSafeInteger(value) || value < min || value > max) {
    return fail(`an integer from ${min} to ${max}`)
  }
  return ok(value)
}

/** A decimal number within [min, max]. */
export const decimal = (min: number, max: number): Parser<number> => (raw) => {
  const value = Number(raw.trim())
  if (!/^-?(\d+\.?\d*|\.\d+)$/.test(raw.trim()) || value < min || value > max) return fail(`a number from ${min} to ${max}`)
  return ok(value)
}

export const port: Parser<number> = (raw, context) => {
  const parsed = integer(1, 65535)(raw, context)
  return parsed.ok ? parsed : fail('a TCP port from 1 to 65535')
}

export const oneOf = <const T extends string>(values: readonly T[]): Parser<T> => (raw) => {
  const value = raw.trim() as T
  return values.includes(value) ? ok(value) : fail(`one of ${values.join(', ')}`)
}

export const url = (protocols: readonly string[]): Parser<string> => (raw) => {
  const expected = `a URL starting with ${protocols.map(p => `${p}//`).join(' or ')}`
  let parsed: URL
  try {
    parsed = new URL(raw.trim())
  } catch {
    return fail(expected)
  }
  if (!protocols.includes(parsed.protocol) || parsed.hostname === '') return fail(expected)
  return ok(raw.trim().replace(/\/+$/, ''))
}

export interface HostPort { host: string, port: number }

/** `host:port[,host:port...]`, as Kafka clients take bootstrap servers. */
export const hostPortList: Parser<readonly HostPort[]> = (raw) => {
  const expected = 'a comma-separated list of host:port'
  const items = raw.split(',').map(item => item.trim()).filter(item => item !== '')
  if (items.length === 0) return fail(expected)
  const result: HostPort[] = []
  for (const item of items) {
    const match = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(item)
    const portValue = Number(match?.[2])
    if (match?.[1] === undefined || !(portValue >= 1 && portValue <= 65535)) return fail(expected)
    result.push({ host: match[1], port: portValue })
  }
  return ok(result)
}

/** A path, resolved against the working directory the process started in. */
export const filePath: Parser<string> = (raw, context) => {
  const value = raw.trim()
  if (value === '' || value.includes('\0')) return fail('a file system path')
  return ok(path.resolve(context.cwd, value))
}

/** A JVM heap size such as `512m` or `1g`, passed to `-Xmx`. */
export const heapSize: Parser<string> = (raw) => {
  const value = raw.trim().toLowerCase()
  const match = /^(\d+)([mg])$/.exec(value)
  if (match === null) return fail('a heap size such as 512m or 1g')
  const megabytes = Number(match[1]) * (match[2] === 'g' ? 1024 : 1)
  if (megabytes < 128 || megabytes > 16384) return fail('a heap size from 128m to 16g')
  return ok(value)
}

/**
 * A Kafka topic name: legal characters only, and not one Kafka reserves. Dots and underscores
 * both allowed, as Kafka allows them, though mixing them collides in metric names.
 */
export const topicName: Parser<string> = (raw) => {
  const value = raw.trim()
  if (!/^[A-Za-z0-9._-]{1,200}$/.test(value) || value === '.' || value === '..' || value.startsWith('__')) {
    return fail('a Kafka topic name: 1-200 of A-Z a-z 0-9 . _ -, not starting with __')
  }
  return ok(value)
}

/** Zero or more items separated by commas, each checked by `item`. */
export const list = <T>(item: Parser<T>): Parser<readonly T[]> => (raw, context) => {
  const values: T[] = []
  for (const part of raw.split(',').map(p => p.trim()).filter(p => p !== '')) {
    const parsed = item(part, context)
    if (!parsed.ok) return fail(`a comma-separated list of ${parsed.expected}`)
    values.push(parsed.value)
  }
  return ok(values)
}
