/**
 * The hostile-input barrage (test/integration/scoring/http/hostile.test.ts): the places of a
 * route a value can go, as request builders, and the judgement of each answer against what a
 * harmless value in the same place gets. Also what must not change: Redis keys, files.
 */
import { createHash } from 'node:crypto'
import { readFile, readdir } from 'node:fs/promises'
import path from 'node:path'
import { appRoutes as dashboardRoutes } from '@bull-board/api/dist/routes.js'
import { requestSchemas } from '@bull-board/api/dist/schemas/requests.js'
import type { Config } from '../../config/index.ts'
import { createRedis } from '../../core/redis.ts'
import { DASHBOARD_COOKIE } from '../../scoring/http/auth.ts'
import { DASHBOARD_PATH } from '../../scoring/http/dashboard.ts'
import { bodySites, bytesOf, exchange, fillPattern, fitsRawTarget, internalDetail, jsonLiteral, patternParams, percentEncode, RAW_NUMBERS, requestBytes, serializeWith } from './hostile.ts'
import type { Hostile, Json, RawResponse } from './hostile.ts'
import { API_KEY } from './serving.ts'

/** Methods whose requests carry a body. */
const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])
/** Answer fields that change by themselves (clock, bull-board's Redis stats), left out when two answers are compared. */
export const VOLATILE = new Set(['counted_at', 'age_seconds', 'feature_age_seconds', 'stale', 'scored_at', 'uptime', 'memory', 'clients'])
/** Where the body of a site goes while the request is built. */
const MARKER = 'hostile-marker-5f0c'

const benign = (text: string): Hostile => ({ label: 'benign', text })
const BENIGN = benign('benign-value')
const BENIGN_KEY = benign('benign-key-0123456789')

/** A place a hostile value goes, as a request builder; undefined where a value cannot go there. */
export interface Location {
  route: string
  where: string
  head: boolean
  request: (value: Hostile) => Buffer | undefined
  /** What a harmless value there is, for the answer every hostile one is judged against. */
  control: Hostile
  /** Values tried here instead of the hostile strings, each saying whether it must be refused. */
  values?: ReadonlyArray<Hostile & { refuse: boolean }>
  /** Numbers written as text are valid here (see `Target.takesText`). */
  takesText?: boolean
}

export interface Target {
  port: number
  config: Config
  /** Valid values of path parameters by name (the served model, the stored subscriber...). */
  params: Readonly<Record<string, string>>
  /** Valid bodies by `METHOD pattern`. */
  baselines: ReadonlyMap<string, readonly Json[]>
  /** Query parameters routes read, by `METHOD pattern`. */
  query: ReadonlyMap<string, readonly string[]>
  /**
   * Places where a number written as text is valid: the fields of a raw profile, which takes CSV
   * cells as text and parses them as training does (an empty cell is a missing value).
   */
  takesText?: (where: string) => boolean
}

/** Every place of one route a value can go. `bodiesOnly`: the places in its baseline bodies alone. */
export function locations (target: Target, method: string, pattern: string, bodiesOnly: boolean): Location[] {
  const route = `${method} ${pattern}`
  const head = method === 'HEAD'
  const params = patternParams(pattern)
  const valid = Object.fromEntries(params.map(p => [p, percentEncode(Buffer.from(target.params[p] ?? 'x'))]))
  const url = fillPattern(pattern, valid)
  const baselines = target.baselines.get(`${head ? 'GET' : method} ${pattern}`) ?? []
  const body = baselines[0] === undefined ? undefined : Buffer.from(JSON.stringify(baselines[0]))
  const json: Array<[string, string]> = body === undefined ? [] : [['content-type', 'application/json']]
  const key: [string, string] = ['x-api-key', API_KEY]
  const build = (target_: string | Buffer, headers: Array<readonly [string, string | Buffer]>, payload: Buffer | undefined = body): Buffer => requestBytes({ method, target: target_, headers, ...(payload === undefined ? {} : { body: payload }) })
  /** The URL with `raw` bytes where `marked` has the marker. */
  const rawTarget = (marked: string, raw: Buffer): Buffer => {
    const [before = '', after = ''] = marked.split(MARKER)
    return Buffer.concat([Buffer.from(before, 'latin1'), raw, Buffer.from(after, 'latin1')])
  }
  const out: Location[] = []
  const at = (where: string, request: Location['request'], control = BENIGN, values?: Location['values']): void => {
    // A query is text: numbers in it are parsed from text, and an empty value is no value.
    out.push({ route, where, head, request, control, ...(values === undefined ? {} : { values }), takesText: where.startsWith('query ') || (target.takesText?.(where) ?? false) })
  }
  const prefixed = (prefix: string, value: Hostile): Buffer => Buffer.concat([Buffer.from(prefix), bytesOf(value)])

  if (!bodiesOnly) {
    at('header x-api-key', v => build(url, [['x-api-key', bytesOf(v)], ...json]), BENIGN_KEY)
    at('header authorization', v => build(url, [['authorization', prefixed('Bearer ', v)], ...json]), BENIGN_KEY)
    at('header cookie', v => build(url, [['cookie', prefixed(`${DASHBOARD_COOKIE}=`, v)], ...json]), BENIGN_KEY)
    at('header content-type', v => build(url, [key, ['content-type', bytesOf(v)]]), benign('text/benign'))
    at('header host', v => build(url, [['host', bytesOf(v)], key, ...json]), benign('benign.example'))
    for (const name of ['q', ...target.query.get(route) ?? []]) {
      at(`query ${name}`, v => build(`${url}?${name}=${percentEncode(bytesOf(v))}`, [key, ...json]))
      at(`query ${name} (raw)`, v => fitsRawTarget(bytesOf(v)) ? build(rawTarget(`${url}?${name}=${MARKER}`, bytesOf(v)), [key, ...json]) : undefined)
    }
    at('query key', v => build(`${url}?${percentEncode(bytesOf(v))}=1`, [key, ...json]))
    for (const param of params) {
      const marked = fillPattern(pattern, { ...valid, [param]: MARKER })
      // An empty value is another URL (`/docs/` for `/docs/*`), a route of its own.
      at(`path ${param}`, v => bytesOf(v).length === 0 ? undefined : build(marked.replace(MARKER, percentEncode(bytesOf(v))), [key, ...json]))
      at(`path ${param} (raw)`, v => fitsRawTarget(bytesOf(v)) ? build(rawTarget(marked, bytesOf(v)), [key, ...json]) : undefined)
    }
    if (BODY_METHODS.has(method)) {
      const whole = (payload: Buffer): Buffer => build(url, [key, ['content-type', 'application/json']], payload)
      at('body (the whole of it)', v => whole(bytesOf(v)), benign('{"benign":1}'))
      at('body (a JSON string)', v => whole(jsonLiteral(v)))
      const pollution = ['{"__proto__":{"polluted":1}}', '{"constructor":{"prototype":{"polluted":1}}}', '{"a":{"__proto__":{"polluted":1}}}', '[{"__proto__":{"polluted":1}}]']
      at('body (prototype pollution)', v => whole(bytesOf(v)), benign('{"benign":{"polluted":1}}'), pollution.map((text, i) => ({ label: `pollution-${i}`, text, refuse: true })))
    }
  }
  for (const [b, baseline] of baselines.entries()) {
    for (const site of bodySites(baseline)) {
      const marked = site.put(MARKER)
      const send = (payload: Buffer): Buffer => build(url, [key, ['content-type', 'application/json']], payload)
      at(`body #${b} ${site.where}`, v => send(serializeWith(marked, MARKER, jsonLiteral(v))))
      if (site.numeric) {
        at(`body #${b} ${site.where} (raw number)`, v => send(serializeWith(marked, MARKER, Buffer.from(v.text))), BENIGN,
          RAW_NUMBERS.map(({ token, valid: ok }) => ({ label: `number ${token}`, text: token, refuse: !ok })))
      }
    }
  }
  return out
}

/**
 * The answer's body, comparable across values: JSON without clock fields, each string (or key)
 * equal to `from` replaced by `to`, so an answer that echoes a value compares with another's.
 */
export function comparable (response: RawResponse, from?: string, to?: string): string | undefined {
  const type = response.headers['content-type'] ?? ''
  if (/event-stream/.test(type)) return undefined
  const text = response.body.toString('utf8')
  if (!/json/.test(type)) return text
  const normalise = (value: unknown): unknown => {
    if (typeof value === 'string') return value === from ? to : value
    if (Array.isArray(value)) return value.map(normalise)
    if (value !== null && typeof value === 'object') {
      return Object.fromEntries(Object.entries(value).filter(([k]) => !VOLATILE.has(k)).map(([k, v]) => [k === from ? to : k, normalise(v)]))
    }
    return value
  }
  try {
    return JSON.stringify(normalise(JSON.parse(text)))
  } catch {
    return text
  }
}

/** What is wrong with one answer of a refusal (4xx), or undefined. */
export function refusalProblem (response: RawResponse, head: boolean, folders: readonly string[]): string | undefined {
  if (head) return undefined
  const text = response.body.toString('utf8')
  const leak = internalDetail(text, folders)
  if (leak !== undefined) return `its ${response.status} shows ${leak}: ${text.slice(0, 300)}`
  let reason: unknown = text
  try {
    // Fastify's shape (`message`), the protocols' (`error`), bull-board's (`error.key`, a translation key).
    const parsed = JSON.parse(text) as { message?: unknown, error?: unknown }
    const { message, error } = parsed
    reason = typeof message === 'string' && message !== '' ? message : typeof error === 'object' && error !== null ? (error as { key?: unknown }).key : error
  } catch {}
  if (typeof reason !== 'string' || reason.trim() === '') return `its ${response.status} gives no reason: ${JSON.stringify(text.slice(0, 200))}`
  return undefined
}

export interface Tally { requests: number, statuses: Map<number, number>, failures: string[] }

/** Sends each value at one location and judges the answers against a harmless value's. */
export async function attack (target: Target, location: Location, strings: readonly Hostile[], folders: readonly string[], tally: Tally): Promise<void> {
  const send = async (bytes: Buffer): Promise<RawResponse[]> => await exchange(target.port, bytes, { head: location.head })
  const fail = (value: Hostile, problem: string): void => { tally.failures.push(`${location.route} ${location.where} ${value.label}: ${problem}`) }
  const controlBytes = location.request(location.control)
  if (controlBytes === undefined) return
  let control: RawResponse
  let again: RawResponse
  try {
    [control, again] = [(await send(controlBytes))[0] as RawResponse, (await send(controlBytes))[0] as RawResponse]
  } catch (error) {
    fail(location.control, `no answer: ${(error as Error).message}`)
    return
  }
  const controlEcho = location.control.text
  if (control.status >= 500) fail(location.control, `a harmless value gets ${control.status}: ${control.body.toString('utf8').slice(0, 300)}`)
  let stable = comparable(control) === comparable(again)
  for (const value of location.values ?? strings.map(s => ({ ...s, refuse: false }))) {
    const bytes = location.request(value)
    if (bytes === undefined) continue
    tally.requests++
    let responses: RawResponse[]
    try {
      responses = await send(bytes)
    } catch (error) {
      fail(value, `no answer: ${(error as Error).message}`)
      continue
    }
    for (const response of responses) {
      tally.statuses.set(response.status, (tally.statuses.get(response.status) ?? 0) + 1)
      if (response.status >= 500 || response.status < 200) fail(value, `answered ${response.status}: ${response.body.toString('utf8').slice(0, 300)}`)
      else if (response.status >= 400) {
        const problem = refusalProblem(response, location.head, folders)
        if (problem !== undefined) fail(value, problem)
      }
      if (response.headers['x-injected'] !== undefined) fail(value, 'a header was injected into the answer')
    }
    const [first] = responses as [RawResponse]
    const refused = first.status >= 400 && first.status < 500
    // Values of their own (raw numbers, pollution) are judged alone; a number as text is valid
    // where text is parsed into numbers; anything else gets no further than a harmless value.
    const own = location.values !== undefined || (value.numberLike === true && location.takesText === true)
    if (value.refuse || (!own && control.status >= 400)) {
      if (!refused) fail(value, `answered ${first.status} where it must be refused (a harmless value gets ${control.status})`)
      continue
    }
    if (refused || own) continue
    if (first.status !== control.status) { fail(value, `answered ${first.status}, a harmless value ${control.status}`); continue }
    // As the server decodes it: invalid UTF-8 becomes replacement characters.
    const echo = value.raw?.toString('utf8') ?? value.text
    if (stable && comparable(first) !== comparable(control, controlEcho, echo)) {
      // The same as a harmless value's, unless the route's answers change by themselves (metrics).
      const [fresh] = await send(controlBytes) as [RawResponse]
      if (comparable(fresh) !== comparable(control)) stable = false
      else fail(value, `answered ${first.status} unlike a harmless value: ${first.body.toString('utf8').slice(0, 300)} vs ${control.body.toString('utf8').slice(0, 300)}`)
    }
    if (/html/.test(first.headers['content-type'] ?? '') && /[<>"]/.test(value.text) && first.body.toString('utf8').includes(value.text)) fail(value, 'reflected into a page unescaped')
  }
}

/** Requests no client library sends: bad encodings, smuggling, broken framing. */
function malformed (target: Target): Array<{ what: string, bytes: Buffer, refuse: boolean }> {
  const name = target.config.serving.modelName
  const key = `x-api-key: ${API_KEY}\r\n`
  const line = (text: string): Buffer => Buffer.from(text, 'latin1')
  const get = (path_: string | Buffer, extra = ''): Buffer => Buffer.concat([line('GET '), typeof path_ === 'string' ? line(path_) : path_, line(` HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n${key}${extra}\r\n`)])
  const predict = (headers: string, body: string): Buffer => line(`POST /api/v1/predict HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n${key}content-type: application/json\r\n${headers}\r\n${body}`)
  const body = '{"features":{}}'
  return [
    { what: 'a bad percent escape', bytes: get('/api/v1/subscribers/%ZZ/predict'), refuse: true },
    { what: 'a truncated percent escape', bytes: get(`/v1/models/${name}%E0%A4%A`), refuse: true },
    { what: 'an overlong "/" percent-encoded', bytes: get('/api/v1/subscribers/..%C0%AF..%C0%AFetc%C0%AFpasswd/predict'), refuse: true },
    { what: 'overlong UTF-8 bytes in the path', bytes: get(Buffer.concat([line('/v2/models/'), Buffer.from([0xC0, 0xAE, 0xC0, 0xAE, 0xC0, 0xAF]), line('ready')])), refuse: true },
    { what: 'invalid UTF-8 bytes in the path', bytes: get(Buffer.concat([line('/api/v1/subscribers/'), Buffer.from([0xFF, 0xFE]), line('/predict')])), refuse: true },
    { what: 'a NUL byte in the path', bytes: get(Buffer.concat([line('/api/v1/model'), Buffer.from([0]), line('x')])), refuse: true },
    { what: 'dot segments past the root', bytes: get('/../../../../etc/passwd'), refuse: true },
    { what: 'dot segments into the docs\' files', bytes: get('/docs/static/../../../../../../etc/passwd'), refuse: true },
    { what: 'encoded dot segments into the docs\' files', bytes: get('/docs/static/..%2F..%2F..%2F..%2Fpackage.json'), refuse: true },
    { what: 'encoded dot segments into the dashboard', bytes: get('/queues/static/..%2F..%2F..%2F..%2Fpackage.json'), refuse: false },
    { what: 'an asterisk target', bytes: get('*'), refuse: false },
    { what: 'an absolute-form target (valid)', bytes: get('http://127.0.0.1/api/v1/model'), refuse: false },
    { what: 'a header line without a colon', bytes: get('/api/v1/model', 'FLUSHALL\r\n'), refuse: true },
    { what: 'an obsolete folded header', bytes: get('/api/v1/model', 'x-folded: a\r\n b\r\n'), refuse: true },
    { what: 'a header name with a space', bytes: get('/api/v1/model', 'x api key: 1\r\n'), refuse: true },
    { what: 'a 100 KB request line', bytes: get(`/api/v1/subscribers/${'A'.repeat(100 * 1024)}/predict`), refuse: true },
    { what: 'an unknown method', bytes: line(`FLUSHALL /api/v1/model HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n${key}\r\n`), refuse: true },
    { what: 'HTTP/0.9', bytes: line('GET /api/v1/model\r\n\r\n'), refuse: true },
    { what: 'an unknown protocol version', bytes: line(`GET /api/v1/model HTTP/9.9\r\nhost: 127.0.0.1\r\n${key}\r\n`), refuse: true },
    { what: 'content-length and chunked together (smuggling)', bytes: predict(`content-length: ${body.length}\r\ntransfer-encoding: chunked\r\n`, `0\r\n\r\nGET /api/v1/model HTTP/1.1\r\nhost: x\r\n${key}\r\n`), refuse: true },
    { what: 'two different content-lengths', bytes: predict(`content-length: ${body.length}\r\ncontent-length: 3\r\n`, body), refuse: true },
    { what: 'a negative content-length', bytes: predict('content-length: -1\r\n', body), refuse: true },
    { what: 'a bad chunk size', bytes: predict('transfer-encoding: chunked\r\n', 'zz\r\n{}\r\n0\r\n\r\n'), refuse: true },
    { what: 'a body longer than its content-length', bytes: predict('content-length: 2\r\n', `{}${body}`), refuse: false },
    { what: 'invalid UTF-8 in a JSON body', bytes: Buffer.concat([predict(`content-length: ${body.length + 8}\r\n`, '{"features":{"'), Buffer.from([0xC0, 0xAF, 0xFF, 0xFE]), line('":1}}')]), refuse: true },
    { what: 'a JSON body nested 10,000 deep', bytes: (() => { const deep = `{"features":${'['.repeat(10_000)}${']'.repeat(10_000)}}`; return predict(`content-length: ${deep.length}\r\n`, deep) })(), refuse: true }
  ]
}

/** Sends each malformed request (`malformed`) and judges its answers. */
export async function probeMalformed (target: Target, folders: readonly string[], tally: Tally): Promise<number> {
  const requests = malformed(target)
  for (const { what, bytes, refuse } of requests) {
    tally.requests++
    let responses: RawResponse[]
    try {
      responses = await exchange(target.port, bytes)
    } catch (error) {
      tally.failures.push(`${what}: no answer: ${(error as Error).message}`)
      continue
    }
    for (const response of responses) {
      tally.statuses.set(response.status, (tally.statuses.get(response.status) ?? 0) + 1)
      if (response.status >= 500 || response.status < 200 || (refuse && response.status < 400)) tally.failures.push(`${what}: answered ${response.status}: ${response.body.toString('utf8').slice(0, 200)}`)
      const problem = response.status >= 400 ? refusalProblem(response, false, folders) : undefined
      if (problem !== undefined) tally.failures.push(`${what}: ${problem}`)
      if (response.body.toString('latin1').includes('root:x:0:0')) tally.failures.push(`${what}: served /etc/passwd`)
    }
  }
  return requests.length
}

/**
 * The query parameters each dashboard route reads, from bull-board's own route specs (the
 * dashboard is left out of the OpenAPI document), by `METHOD pattern` as the router lists them.
 */
export function dashboardQuery (): Map<string, string[]> {
  const keys = (schema: unknown): string[] => {
    const { entries, pipe } = schema as { entries?: Record<string, unknown>, pipe?: unknown[] }
    if (entries !== undefined) return Object.keys(entries)
    return (pipe ?? []).map(keys).find(found => found.length > 0) ?? []
  }
  const query = new Map<string, string[]>()
  for (const route of dashboardRoutes.api) {
    if (route.spec.query === undefined) continue
    const names = keys(requestSchemas[route.spec.query])
    for (const method of [route.method].flat()) {
      for (const url of [route.route].flat()) {
        query.set(`${method.toUpperCase()} ${DASHBOARD_PATH}${url}`, names)
        if (method.toUpperCase() === 'GET') query.set(`HEAD ${DASHBOARD_PATH}${url}`, names)
      }
    }
  }
  return query
}

/** Every file under `dir` with a digest of its content. */
export async function snapshot (dir: string): Promise<Record<string, string>> {
  const files: Record<string, string> = {}
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue
    const file = path.join(entry.parentPath, entry.name)
    files[path.relative(dir, file)] = createHash('sha256').update(await readFile(file)).digest('hex')
  }
  return files
}

export async function redisKeys (config: Config): Promise<string[]> {
  const redis = createRedis({ url: config.redis.url, maxRetriesPerRequest: 1 })
  try {
    const keys: string[] = []
    let cursor = '0'
    do {
      const [next, page] = await redis.scan(cursor, 'MATCH', `${config.redis.prefix}:*`, 'COUNT', 1000)
      cursor = next
      keys.push(...page)
    } while (cursor !== '0')
    return keys.sort()
  } finally {
    redis.disconnect()
  }
}

/** Drops clock fields (`VOLATILE`) anywhere in an answer. */
export function withoutClock (value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutClock)
  if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).filter(([k]) => !VOLATILE.has(k)).map(([k, v]) => [k, withoutClock(v)]))
  return value
}

