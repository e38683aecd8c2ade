/**
 * Hostile HTTP input: the strings an attacker tries in every parameter, the app's routes read
 * from the app itself, the places in a JSON body a value or key can go, and a raw HTTP/1.1
 * client over `node:net` that sends exactly the bytes it is given (fetch and `node:http` refuse,
 * normalise or re-encode control characters, `../` and invalid UTF-8, which is the point here).
 */
import { connect } from 'node:net'
import type { FastifyInstance } from 'fastify'

/**
 * One hostile value. `text` is what goes into JSON strings and is percent-encoded in URLs;
 * `raw`, when set, is sent as these bytes instead wherever raw bytes can go (an unencoded URL,
 * a header, inside a JSON string literal): invalid UTF-8 such as overlong sequences.
 */
export interface Hostile {
  label: string
  text: string
  raw?: Buffer
  /** A number written as text (or nothing): valid where a field takes text a number is parsed from. */
  numberLike?: boolean
}

/** The bytes a hostile value is sent as where raw bytes go. */
export function bytesOf (hostile: Hostile): Buffer {
  return hostile.raw ?? Buffer.from(hostile.text, 'utf8')
}

/**
 * The strings tried in every parameter, by family. `prefix` is the test's Redis key prefix, so
 * a glob aimed at its own keys is among them.
 */
export function hostileStrings (prefix: string): Hostile[] {
  const text = (label: string, value: string): Hostile => ({ label, text: value })
  return [
    // SQL (the lakehouse is DuckDB).
    text('sql-or', '\' OR \'1\'=\'1'),
    text('sql-drop', '1; DROP TABLE gold;--'),
    text('sql-union', '") UNION SELECT * FROM silver--'),
    text('sql-comment', 'x\'/*'),
    // Redis keys, globs and the protocol.
    text('glob-star', '*'),
    text('glob-prefix', 'churn:*'),
    text('glob-own-prefix', `${prefix}:*`),
    text('glob-class', '[a-z]?*'),
    text('resp-flushall', '\r\nFLUSHALL\r\n'),
    text('resp-set', 'a\nSET x y'),
    text('resp-inline', '*1\r\n$8\r\nFLUSHALL\r\n'),
    // Paths.
    text('traversal', '../../etc/passwd'),
    text('traversal-encoded', '..%2F..%2Fetc%2Fpasswd'),
    text('traversal-dot-encoded', '%2e%2e/%2e%2e/etc/passwd'),
    text('traversal-backslash', '..\\..\\windows\\win.ini'),
    text('traversal-model', '../churn/current.json'),
    text('absolute-path', '/etc/passwd'),
    // NUL and control characters.
    text('nul-encoded', '%00'),
    text('nul', '\u0000'),
    text('nul-inside', 'SUB-0001\u0000.json'),
    text('ansi-escape', '\u001b[31mred\u001b[0m'),
    text('crlf', 'a\r\nx-injected: 1'),
    text('del-backspace', '\u007f\b'),
    // Templates and script.
    text('script', '<script>alert(1)</script>'),
    text('img-onerror', '"><img src=x onerror=alert(1)>'),
    text('template-dollar', '${7*7}'),
    text('template-braces', '{{7*7}}'),
    text('template-erb', '<%= 7*7 %>'),
    // Prototype pollution.
    text('proto', '__proto__'),
    text('constructor', 'constructor'),
    text('prototype', 'prototype'),
    text('proto-path', '__proto__.polluted'),
    text('proto-json', '{"__proto__":{"polluted":1}}'),
    text('to-string', 'toString'),
    // Very long.
    text('long-100k', 'A'.repeat(100 * 1024)),
    // Unicode.
    text('rtl-override', 'SUB\u202E1000-BUS'),
    text('emoji', '😀💥'),
    text('zero-width', 'SUB\u200B-0001'),
    text('bom', '\uFEFFSUB-0001'),
    text('lone-surrogate', 'a\uD800b'),
    text('fullwidth-traversal', '．．／．．／etc／passwd'),
    { label: 'overlong-utf8', text: '\u00C0\u00AE\u00C0\u00AE\u00C0\u00AF', raw: Buffer.from([0xC0, 0xAE, 0xC0, 0xAE, 0xC0, 0xAF]) },
    { label: 'invalid-utf8', text: '\u00FF\u00FE', raw: Buffer.from([0xFF, 0xFE, 0x41]) },
    // Numbers as strings.
    ...[['nan', 'NaN'], ['infinity', 'Infinity'], ['overflow', '1e309'], ['minus-zero', '-0'], ['hex', '0x10'], ['empty', '']]
      .map(([label = '', value = '']) => ({ ...text(label, value), numberLike: true }))
  ]
}

/**
 * Raw JSON number tokens put where a body has a number: some are not JSON at all, some parse to
 * a value no feature can have (`1e309` is Infinity once parsed). `valid` ones are numbers a
 * client may send.
 */
export const RAW_NUMBERS: ReadonlyArray<{ token: string, valid: boolean }> = [
  { token: '1e309', valid: false },
  { token: '-1e309', valid: false },
  { token: 'NaN', valid: false },
  { token: 'Infinity', valid: false },
  { token: '0x10', valid: false },
  { token: '01', valid: false },
  { token: '-0', valid: true },
  { token: '1e-400', valid: true }
]

const UNRESERVED = /^[A-Za-z0-9\-._~]$/

/** Every byte but the unreserved ones as `%XX` (a lone surrogate goes as its replacement character). */
export function percentEncode (bytes: Buffer): string {
  let out = ''
  for (const byte of bytes) {
    const char = String.fromCharCode(byte)
    out += byte < 0x80 && UNRESERVED.test(char) ? char : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`
  }
  return out
}

/** Whether the bytes can stand unencoded in a request target (no space, control or DEL byte). */
export function fitsRawTarget (bytes: Buffer): boolean {
  return bytes.length > 0 && bytes.every(byte => byte > 0x20 && byte !== 0x7F)
}

/** A JSON string literal of the value, its raw bytes inside the quotes when it has some. */
export function jsonLiteral (hostile: Hostile): Buffer {
  if (hostile.raw === undefined) return Buffer.from(JSON.stringify(hostile.text), 'utf8')
  const parts: Buffer[] = [Buffer.from('"')]
  for (const byte of hostile.raw) {
    if (byte === 0x22 || byte === 0x5C) parts.push(Buffer.from(`\\${String.fromCharCode(byte)}`))
    else if (byte < 0x20) parts.push(Buffer.from(`\\u${byte.toString(16).padStart(4, '0')}`))
    else parts.push(Buffer.from([byte]))
  }
  parts.push(Buffer.from('"'))
  return Buffer.concat(parts)
}

/** A route as the router holds it: the method and the pattern (`/v2/models/:name/infer`). */
export interface RouteEntry {
  method: string
  pattern: string
}

/**
 * Every method and pattern the app answers, read from its router (`printRoutes`), so a route
 * added later is in the list without anyone editing a test: documented ones and the hidden
 * dashboard and docs pages alike.
 */
export function appRoutes (app: FastifyInstance): RouteEntry[] {
  const routes: RouteEntry[] = []
  const prefixes: string[] = []
  for (const line of app.printRoutes({ commonPrefix: false }).split('\n')) {
    const match = /^((?:[│ ] {3})*)[├└]── (.+?)(?: \(([A-Z, ]+)\))?$/u.exec(line)
    if (match === null) continue
    const depth = (match[1] ?? '').length / 4
    const pattern = (depth === 0 ? '' : prefixes[depth - 1] ?? '') + (match[2] ?? '')
    prefixes[depth] = pattern
    prefixes.length = depth + 1
    for (const method of (match[3] ?? '').split(',').map(m => m.trim()).filter(m => m !== '')) routes.push({ method, pattern })
  }
  return routes
}

const PARAM = /::|:([A-Za-z_][\w-]*)(?:\([^)]*\))?|\*/g

/** The names of a pattern's parameters, `*` for a wildcard. */
export function patternParams (pattern: string): string[] {
  return [...pattern.matchAll(PARAM)].filter(m => m[0] !== '::').map(m => m[1] ?? '*')
}

/** The pattern with each parameter replaced by its (already encoded) value; `::` is a literal colon. */
export function fillPattern (pattern: string, values: Readonly<Record<string, string>>): string {
  return pattern.replace(PARAM, (all: string, name: string | undefined) => all === '::' ? ':' : values[name ?? '*'] ?? 'x')
}

/** The pattern in OpenAPI's spelling with every parameter as `{}`, to match a route to its document path. */
export function comparablePattern (pattern: string, openApi = false): string {
  return openApi ? pattern.replace(/\{[^}]+\}/g, '{}') : pattern.replace(PARAM, (all: string) => all === '::' ? ':' : '{}')
}

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json }

/** A place in a JSON body where a hostile value can go: a value (string, number...) or a key. */
export interface BodySite {
  /** Where, e.g. `inputs/0/name` or `features/<key tenure>`. */
  where: string
  /** Whether the baseline holds a number there (raw number tokens are tried too). */
  numeric: boolean
  /** The body with `marker` (a string) at this place. */
  put: (marker: string) => Json
}

/**
 * Every place in `body`: each value and each key of each object, and the first element of each
 * array (the others are the same kind of place).
 */
export function bodySites (body: Json): BodySite[] {
  const sites: BodySite[] = []
  const walk = (value: Json, where: string, rebuild: (replacement: Json) => Json): void => {
    if (Array.isArray(value)) {
      if (value.length > 0) walk(value[0] as Json, `${where}/0`, r => rebuild([r, ...value.slice(1)]))
      return
    }
    if (value !== null && typeof value === 'object') {
      for (const key of Object.keys(value)) {
        const child = value[key] as Json
        walk(child, `${where}/${key}`, r => rebuild(withEntry(value, key, key, r)))
        sites.push({ where: `${where}/<key ${key}>`, numeric: false, put: marker => rebuild(withEntry(value, key, marker, child)) })
      }
      return
    }
    sites.push({ where: where === '' ? '/' : where, numeric: typeof value === 'number', put: marker => rebuild(marker) })
  }
  walk(body, '', r => r)
  return sites
}

/** A copy of `object` with `key` replaced by `newKey` (same position) holding `value`. */
function withEntry (object: { [key: string]: Json }, key: string, newKey: string, value: Json): { [key: string]: Json } {
  const out: { [key: string]: Json } = {}
  for (const [k, v] of Object.entries(object)) {
    if (k === key) out[newKey] = value
    else out[k] = v
  }
  return out
}

/** The body as JSON bytes, the string `"<marker>"` (as value or key) replaced by `replacement`. */
export function serializeWith (body: Json, marker: string, replacement: Buffer): Buffer {
  const text = JSON.stringify(body)
  const quoted = JSON.stringify(marker)
  const at = text.indexOf(quoted)
  if (at < 0) return Buffer.from(text, 'utf8')
  return Buffer.concat([Buffer.from(text.slice(0, at), 'utf8'), replacement, Buffer.from(text.slice(at + quoted.length), 'utf8')])
}

/** One request as bytes. `Host` and `Connection: close` come first unless `headers` sets them. */
export interface RawRequest {
  method: string
  target: string | Buffer
  headers: ReadonlyArray<readonly [string, string | Buffer]>
  body?: Buffer
}

export function requestBytes (request: RawRequest): Buffer {
  const named = new Set(request.headers.map(([name]) => name.toLowerCase()))
  const headers: Array<readonly [string, string | Buffer]> = [
    ...(named.has('host') ? [] : [['host', '127.0.0.1'] as const]),
    ['connection', 'close'],
    ...request.headers,
    ...(request.body === undefined ? [] : [['content-length', String(request.body.length)] as const])
  ]
  return Buffer.concat([
    Buffer.from(`${request.method} `, 'latin1'),
    typeof request.target === 'string' ? Buffer.from(request.target, 'latin1') : request.target,
    Buffer.from(' HTTP/1.1\r\n', 'latin1'),
    ...headers.flatMap(([name, value]) => [Buffer.from(`${name}: `, 'latin1'), typeof value === 'string' ? Buffer.from(value, 'utf8') : value, Buffer.from('\r\n')]),
    Buffer.from('\r\n'),
    request.body ?? Buffer.alloc(0)
  ])
}

export interface RawResponse {
  status: number
  headers: Record<string, string>
  body: Buffer
}

/**
 * Sends `bytes` on a new connection and parses every response the server wrote before closing (a request that smuggles a second one gets two). An event stream
 * is cut once its headers arrived. Rejects when the server closed without a complete answer or
 * gave none within `timeoutMs` (a safety bound against a hang, not a measured expectation).
 */
export async function exchange (port: number, bytes: Buffer, options: { head?: boolean, timeoutMs?: number, idleEndMs?: number } = {}): Promise<RawResponse[]> {
  const { head = false, timeoutMs = 120_000, idleEndMs = 30_000 } = options
  return await new Promise<RawResponse[]>((resolve, reject) => {
    const chunks: Buffer[] = []
    let settled = false
    const socket = connect({ host: '127.0.0.1', port })
    const settle = (error?: Error): void => {
      if (settled) return
      settled = true
      socket.destroy()
      if (error !== undefined) { reject(error); return }
      try {
        resolve(parseResponses(Buffer.concat(chunks), head))
      } catch (parseError) {
        reject(new Error(`${(parseError as Error).message}; the request began ${JSON.stringify(bytes.subarray(0, 160).toString('latin1'))}`))
      }
    }
    socket.setTimeout(timeoutMs, () => { settle(new Error(`no complete answer within ${timeoutMs} ms; got ${JSON.stringify(Buffer.concat(chunks).subarray(0, 300).toString('latin1'))}`)) })
    socket.on('data', chunk => {
      chunks.push(chunk)
      const received = Buffer.concat(chunks)
      const end = received.indexOf('\r\n\r\n')
      if (end >= 0 && /\r\ncontent-type: text\/event-stream/i.test(received.subarray(0, end).toString('latin1'))) settle()
    })
    socket.on('close', () => { clearTimeout(quiet); settle() })
    // A reset after the answer (the server destroys the socket of a request it refused): keep what arrived.
    socket.on('error', error => { if (chunks.length === 0) settle(error) })
    // Not ended: Node's server aborts a request whose client half-closes before the answer. Every
    // request says `connection: close`; one the server still waits on after `idleEndMs` without
    // a byte back (an incomplete request, by design) is ended so the server answers or closes.
    socket.write(bytes)
    const quiet = setTimeout(() => { if (chunks.length === 0) socket.end() }, idleEndMs)
  })
}

function parseResponses (data: Buffer, head: boolean): RawResponse[] {
  const responses: RawResponse[] = []
  let at = 0
  while (at < data.length) {
    const end = data.indexOf('\r\n\r\n', at)
    if (end < 0) throw new Error(`incomplete response head: ${JSON.stringify(data.subarray(at, at + 300).toString('latin1'))}`)
    const [statusLine = '', ...lines] = data.subarray(at, end).toString('latin1').split('\r\n')
    const status = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1]
    if (status === undefined) throw new Error(`not an HTTP response: ${JSON.stringify(statusLine.slice(0, 200))}`)
    const headers: Record<string, string> = {}
    for (const line of lines) {
      const colon = line.indexOf(':')
      if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim()
    }
    at = end + 4
    let body: Buffer = Buffer.alloc(0)
    const code = Number(status)
    // A HEAD answer has no body, unless the server refused the request before reading it as one.
    const headless = head && responses.length === 0 && (at === data.length || data.subarray(at, at + 7).toString('latin1') === 'HTTP/1.')
    if (headless || code === 204 || code === 304 || code < 200) {
      // No body.
    } else if (/event-stream/.test(headers['content-type'] ?? '')) {
      body = data.subarray(at)
      at = data.length
    } else if (/chunked/i.test(headers['transfer-encoding'] ?? '')) {
      const parts: Buffer[] = []
      for (;;) {
        const lineEnd = data.indexOf('\r\n', at)
        if (lineEnd < 0) throw new Error('incomplete chunked body')
        const size = Number.parseInt(data.subarray(at, lineEnd).toString('latin1'), 16)
        at = lineEnd + 2
        if (size === 0) {
          const trailerEnd = data.indexOf('\r\n', at)
          at = trailerEnd < 0 ? data.length : trailerEnd + 2
          break
        }
        parts.push(data.subarray(at, at + size))
        at += size + 2
      }
      body = Buffer.concat(parts)
    } else if (headers['content-length'] !== undefined) {
      const length = Number(headers['content-length'])
      if (at + length > data.length) throw new Error(`body shorter than its content-length ${length}`)
      body = data.subarray(at, at + length)
      at += length
    } else {
      body = data.subarray(at)
      at = data.length
    }
    responses.push({ status: code, headers, body })
  }
  if (responses.length === 0) throw new Error('the server closed the connection without answering')
  return responses
}

/**
 * What a refusal must not show: stack frames, source or dependency files, our own folders.
 * Returns what was found, or undefined.
 */
export function internalDetail (body: string, folders: readonly string[]): string | undefined {
  const patterns: Array<[string, RegExp]> = [
    // Raw, or escaped inside a JSON string.
    ['a stack frame', /(?:\n|\\n)\s*at \S|\bat .+\(.+:\d+:\d+\)/],
    ['node_modules', /node_modules/],
    ['a source file position', /\.(?:ts|js|mjs|cjs):\d+/],
    ['an error\'s own message', /\b[A-Z]\w*Error: /],
    ['a stack property', /"stack"\s*:/]
  ]
  for (const [what, pattern] of patterns) if (pattern.test(body)) return what
  for (const folder of folders) if (folder !== '' && body.includes(folder)) return `the folder ${folder}`
  return undefined
}

/** Runs `task` over `items`, at most `limit` at a time. */
export async function inPool<T> (items: readonly T[], limit: number, task: (item: T) => Promise<void>): Promise<void> {
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++] as T
      await task(item)
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
}
