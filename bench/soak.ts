#!/usr/bin/env node
/**
 * `npm run soak` (after the long kill tests) or `node bench/soak.ts [--quick] [--minutes 10]
 * [--rate 2000] [--http-rate 50] [--subscribers 20000] [--sample-seconds 10] [--warm-up 0.2]
 * [--rss-slope 3] [--rss-margin 32] [--lag-slope 0.5] [--lag-margin 2] [--drain-seconds 60]
 * [--stall-seconds 30] [--log-level info] [--allocator jemalloc|glibc] [--out DIR] [--keep]`:
 * the soak, on the running local stack. Roles inherit this process's environment (so
 * `DUCKDB_MEMORY_LIMIT=128m node bench/soak.ts` runs ingest with that limit).
 *
 * Every role runs as a process of its own, as in production: `churn ingest`, `churn score` and
 * `churn work` (each with ROLE_HTTP_PORT on a free port: /health, /ready, /metrics) and
 * `churn serve` (HTTP_PORT, API keys on), in an isolated configuration (topics, consumer groups,
 * Redis prefix, lakehouse, models of its own). First `churn bootstrap --seed-demo` does what the
 * init container does (demo history, ingest to lag 0, train, gate) so a promoted model exists.
 * Then live traffic streams at a steady rate (`--rate`, events/s, from a worker thread of this
 * process, one cohort of `--subscribers` for the whole run, no late events) for `--minutes`,
 * while a fixed-rate HTTP load (`--http-rate` requests/s) asks `churn serve` for subscribers'
 * predictions (`GET /api/v1/subscribers/:id/predict`, ids seen on the churn-risk topic).
 *
 * Every `--sample-seconds` (10) it records: each role's RSS (VmRSS of /proc/<pid>/status), V8
 * heap in use and memory outside it (its /metrics) and CPU, its readiness (/ready,
 * /api/v1/ready for serve), the size of the lakehouse file, the lag and committed offsets of the ingest and
 * scorer groups, the p50/p99 of the HTTP requests answered in the interval (timed from each
 * request's scheduled moment), the p99 from event production to the churn-risk event as an
 * independent consumer receives it (event time of live traffic is the wall clock), and the depth
 * of the campaign queues. After traffic stops both groups must drain within `--drain-seconds`.
 *
 * Written to `--out` (default `.soak/<timestamp>/`): `report.json` (every sample, the verdicts),
 * `summary.md` (what is printed), `soak.png` (the series, drawn by `soak-plot.py` with matplotlib
 * from the project's venv) and each role's log.
 *
 * The verdict (exit 1 on failure, with the reason):
 *  - growth, judged on the steady part (the first `--warm-up` share of traffic dropped), per role's
 *    RSS and per group's lag: a least-squares slope above its bound AND a mean of the last third
 *    above the first third's by more than the margin. Noise that stays bounded passes either way;
 *    a steady climb fails both. Runs shorter than `MIN_JUDGED_MS` of steady traffic (`--quick`)
 *    print the figures and "too short to judge" instead. Ingest's RSS holds DuckDB's buffer
 *    manager, whose cache of the blocks ingest writes fills towards DUCKDB_MEMORY_LIMIT for longer
 *    than the default soak lasts (measured at 2,000 events/s: about 12 MB/min for some 20 minutes,
 *    then a saw between 300 and 450 MB of the 512 MB limit, dropping at each checkpoint).
 *    So ingest is judged in two parts, each against a bound: what DuckDB accounts for
 *    (`duckdb_memory()`, from its /metrics) must stay within DUCKDB_MEMORY_LIMIT with nothing left
 *    in temporary files, and its RSS minus that must not grow, by the same slope and margin as
 *    every role. Nothing is exempted: a leak outside DuckDB's account fails the second, one inside
 *    it the first. The roles run with jemalloc preloaded, as in the image (`--allocator glibc`
 *    to compare): under glibc's malloc ingest's RSS outside DuckDB grew 8.5 MB/min (last third
 *    +43 MB) where jemalloc held it at 2.6 MB/min (+13 MB), memory DuckDB freed staying with the
 *    process;
 *  - always: a role process that exits (or exits non-zero on the final SIGTERM), a stalled chain
 *    (a group with lag that commits nothing, or no churn-risk event, for `--stall-seconds`), a role
 *    not ready for as long, lag not drained after traffic, more than 1% of HTTP requests failed.
 */
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { mkdir, open, readFile, stat, writeFile } from 'node:fs/promises'
import http from 'node:http'
import { availableParallelism, loadavg, totalmem } from 'node:os'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { parseArgs } from 'node:util'
import type { Admin, Consumer } from 'kafkajs'
import { pino } from 'pino'
import { routeProcessWarnings } from '../core/warnings.ts'
import { AvroCodec, avroType, latestSchema } from '../schemas/index.ts'
import type { ChurnRiskEvent } from '../schemas/types.generated.ts'
import { CHANNELS } from '../scoring/campaign.ts'
import type { Channel } from '../scoring/campaign.ts'
import { campaignQueues } from '../scoring/queues.ts'
import type { QueueCounts } from '../scoring/queues.ts'
import { ensurePythonEnv, pythonEnvironment } from '../stack/index.ts'
import { createKafka } from '../streams/kafka.ts'
import type { ProduceSummary } from '../streams/producer.ts'
import { sourceTopics } from '../streams/topics.ts'
import { isolatedConfig } from '../test/helpers/context.ts'
import { freePort } from './http-servers.ts'
import { startRole as startThread } from './score-roles.ts'

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    minutes: { type: 'string' },
    rate: { type: 'string' },
    'http-rate': { type: 'string' },
    subscribers: { type: 'string' },
    'sample-seconds': { type: 'string' },
    'warm-up': { type: 'string' },
    'rss-slope': { type: 'string' },
    'rss-margin': { type: 'string' },
    'lag-slope': { type: 'string' },
    'lag-margin': { type: 'string' },
    'drain-seconds': { type: 'string' },
    'stall-seconds': { type: 'string' },
    'log-level': { type: 'string' },
    allocator: { type: 'string' },
    out: { type: 'string' },
    keep: { type: 'boolean', default: false }
  }
})
const quick = values.quick
const num = (text: string | undefined, fallback: number, name: string): number => {
  const n = Number(text ?? fallback)
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} takes a positive number; got ${JSON.stringify(text)}`)
  return n
}
const minutes = num(values.minutes, quick ? 0.75 : 10, 'minutes')
const rate = num(values.rate, quick ? 500 : 2000, 'rate')
const httpRate = num(values['http-rate'], quick ? 20 : 50, 'http-rate')
const subscribers = Math.round(num(values.subscribers, quick ? 3000 : 20_000, 'subscribers'))
const sampleMs = 1000 * num(values['sample-seconds'], quick ? 5 : 10, 'sample-seconds')
const warmUp = num(values['warm-up'], 0.2, 'warm-up')
/**
 * Bounds of the growth verdict (see the header). RSS: 3 MB/min is 180 MB an hour, which would take
 * the workers (512 Mi limit in k8s/base, some 200 MB used) to their limit within two hours; the
 * margin of 32 MB lets V8 grow its committed heap by a step (measured here: 20-30 MB at a time,
 * the heap in use flat), which is not a leak, while two such steps, or a steady climb, are not
 * let through. Lag: half a second of traffic more per minute, and two seconds over the run.
 */
const bounds = {
  rssSlopeMbPerMin: num(values['rss-slope'], 3, 'rss-slope'),
  rssMarginMb: num(values['rss-margin'], 32, 'rss-margin'),
  lagSlopeSecondsPerMin: num(values['lag-slope'], 0.5, 'lag-slope'),
  lagMarginSeconds: num(values['lag-margin'], 2, 'lag-margin'),
  drainSeconds: num(values['drain-seconds'], 60, 'drain-seconds'),
  stallSeconds: num(values['stall-seconds'], 30, 'stall-seconds'),
  httpErrorShare: 0.01
}
const level = values['log-level'] ?? 'info'
/**
 * The memory allocator of every `churn` process: jemalloc, preloaded as the image does
 * (Dockerfile), or glibc's malloc, which DuckDB fragments (see the header).
 */
const allocator = values.allocator ?? 'jemalloc'
if (allocator !== 'jemalloc' && allocator !== 'glibc') throw new Error(`--allocator is jemalloc or glibc; got ${JSON.stringify(allocator)}`)
const JEMALLOC = 'libjemalloc.so.2'
const JEMALLOC_DIRS = ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/lib/x86_64-linux-gnu', '/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib', '/usr/local/lib']
if (allocator === 'jemalloc' && !JEMALLOC_DIRS.some(dir => existsSync(path.join(dir, JEMALLOC)))) {
  throw new Error(`${JEMALLOC} not found (in ${JEMALLOC_DIRS.join(', ')}): install Debian's libjemalloc2, as the image does, or run with --allocator glibc`)
}
/** Added to every `churn` process's environment; the dynamic linker finds the bare name as it does in the image. */
const ALLOCATOR_ENV: Record<string, string> = allocator === 'jemalloc' ? { LD_PRELOAD: JEMALLOC } : {}
const trafficMs = Math.round(minutes * 60_000)
/** Steady traffic a slope is judged on at least: shorter runs report their figures only. */
const MIN_JUDGED_MS = 3 * 60_000
const MIN_JUDGED_SAMPLES = 10
const HISTORY = quick ? { subscribers: 1000, events: 20_000, trees: 50 } : { subscribers: 2000, events: 40_000, trees: 100 }
const API_KEY = `soak-${randomUUID()}`
const CLI = path.resolve(import.meta.dirname, '../cli/main.ts')
const PLOT = path.resolve(import.meta.dirname, 'soak-plot.py')
const ROLES = ['ingest', 'score', 'work', 'serve'] as const
type RoleName = typeof ROLES[number]

const logger = pino({ level: process.env.BENCH_LOG_LEVEL ?? 'warn' }, pino.destination(2))
/** For this process's own Kafka clients: kafkajs logs retried requests on fresh topics at error level. */
const quiet = process.env.BENCH_LOG_LEVEL === undefined ? pino({ level: 'fatal' }) : logger

const int = (n: number): string => Math.round(n).toLocaleString('en-US')
const fixed = (n: number | null | undefined, digits = 1): string => n === null || n === undefined || Number.isNaN(n) ? '-' : n.toFixed(digits)
const signed = (n: number, digits = 1): string => Number.isNaN(n) ? '-' : `${n >= 0 ? '+' : ''}${n.toFixed(digits)}`

/** Nearest-rank percentile of unsorted values (NaN when there are none). */
function percentile (values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN
  const sorted = Float64Array.from(values).sort()
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] as number
}

/** Least-squares slope of y over x. */
function slope (xs: readonly number[], ys: readonly number[]): number {
  const n = xs.length
  if (n < 2) return Number.NaN
  const mx = xs.reduce((a, b) => a + b, 0) / n
  const my = ys.reduce((a, b) => a + b, 0) / n
  let num = 0
  let den = 0
  for (let i = 0; i < n; i++) {
    num += ((xs[i] as number) - mx) * ((ys[i] as number) - my)
    den += ((xs[i] as number) - mx) ** 2
  }
  return den === 0 ? 0 : num / den
}

const mean = (ys: readonly number[]): number => ys.length === 0 ? Number.NaN : ys.reduce((a, b) => a + b, 0) / ys.length

// ---------------------------------------------------------------------------------------------
// The role processes

interface RoleProcess {
  name: RoleName
  child: ChildProcess
  pid: number
  port: number
  readyUrl: string
  metricsUrl: string
  log: string
  out: string
  /** Set when it exits: code or signal, and whether the soak had asked it to stop. */
  exit?: { code: number | null, signal: NodeJS.Signals | null, expected: boolean, at: number }
  exited: Promise<void>
  stopping: boolean
}

async function tail (file: string, lines = 15): Promise<string> {
  const text = await readFile(file, 'utf8').catch(() => '')
  return text.trim().split('\n').slice(-lines).join('\n')
}

/** `churn <args>` as its own process; stderr (JSON logs) to `log`, stdout (its summary) to `out`. */
async function spawnChurn (args: readonly string[], env: Record<string, string | undefined>, log: string, out: string): Promise<ChildProcess> {
  const [logFile, outFile] = await Promise.all([open(log, 'a'), open(out, 'a')])
  try {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...env, ...ALLOCATOR_ENV, LOG_FORMAT: 'json', LOG_LEVEL: level }, stdio: ['ignore', outFile.fd, logFile.fd] })
    await once(child, 'spawn')
    return child
  } finally {
    await Promise.all([logFile.close(), outFile.close()])
  }
}

async function startRoleProcess (name: RoleName, env: Record<string, string | undefined>, logs: string): Promise<RoleProcess> {
  const port = await freePort()
  const portEnv = name === 'serve' ? { HTTP_PORT: String(port) } : { ROLE_HTTP_PORT: String(port) }
  const log = path.join(logs, `${name}.log`)
  const out = path.join(logs, `${name}.out`)
  const child = await spawnChurn([name], { ...env, ...portEnv }, log, out)
  const role: RoleProcess = {
    name, child, pid: child.pid as number, port, log, out, stopping: false,
    readyUrl: `http://127.0.0.1:${port}${name === 'serve' ? '/api/v1/ready' : '/ready'}`,
    metricsUrl: `http://127.0.0.1:${port}/metrics`,
    exited: Promise.resolve()
  }
  role.exited = new Promise(resolve => child.once('exit', (code, signal) => {
    role.exit = { code, signal, expected: role.stopping, at: Date.now() }
    resolve()
  }))
  return role
}

/** 200 from the role's readiness route within 3 s. */
async function isReady (role: RoleProcess): Promise<boolean> {
  try {
    const response = await fetch(role.readyUrl, { signal: AbortSignal.timeout(3000) })
    await response.body?.cancel()
    return response.status === 200
  } catch {
    return false
  }
}

/**
 * The V8 heap in use and the memory of objects outside it (Buffers, ArrayBuffers) in MB, from the
 * role's Prometheus metrics (prom-client's default metrics): with RSS, they tell JavaScript
 * objects from native memory (DuckDB's buffers, for ingest).
 */
async function heapOf (role: RoleProcess): Promise<{ heap?: number, external?: number, duckdb?: number, duckdbTemp?: number }> {
  try {
    const response = await fetch(role.metricsUrl, { signal: AbortSignal.timeout(3000) })
    const text = await response.text()
    /** The sum of the metric's series, in MB. */
    const value = (name: string): number | undefined => {
      const lines = text.split('\n').filter(l => l.startsWith(`${name}{`) || l.startsWith(`${name} `))
      return lines.length === 0 ? undefined : lines.reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(' ') + 1)), 0) / 2 ** 20
    }
    const heap = value('nodejs_heap_size_used_bytes')
    const external = value('nodejs_external_memory_bytes')
    // Ingest only: what DuckDB's buffer manager holds (bounded by DUCKDB_MEMORY_LIMIT).
    const duckdb = value('churn_duckdb_memory_bytes')
    const duckdbTemp = value('churn_duckdb_temporary_bytes')
    return { ...(heap === undefined ? {} : { heap }), ...(external === undefined ? {} : { external }), ...(duckdb === undefined ? {} : { duckdb }), ...(duckdbTemp === undefined ? {} : { duckdbTemp }) }
  } catch {
    return {}
  }
}

/** SIGTERM, then SIGKILL after `graceMs`. */
async function stopRole (role: RoleProcess, graceMs = 30_000): Promise<void> {
  role.stopping = true
  if (role.exit !== undefined) return
  role.child.kill('SIGTERM')
  const timer = setTimeout(() => { role.child.kill('SIGKILL') }, graceMs)
  await role.exited
  clearTimeout(timer)
}

/** Resident set size of a process in MB, from /proc (undefined once it is gone). */
async function rssMb (pid: number): Promise<number | undefined> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => undefined)
  const kb = status === undefined ? undefined : /^VmRSS:\s+(\d+) kB/m.exec(status)?.[1]
  return kb === undefined ? undefined : Number(kb) / 1024
}

/** CPU seconds (user + system) of a process, from /proc/<pid>/stat (USER_HZ 100). */
async function cpuSeconds (pid: number): Promise<number | undefined> {
  const text = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined)
  if (text === undefined) return undefined
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) / 100
}

// ---------------------------------------------------------------------------------------------
// Load and measurement

/** Lag (past the committed offsets; the low watermark where none) and committed total of a group. */
async function groupPosition (admin: Admin, groupId: string, topics: readonly string[]): Promise<{ lag: number, committed: number }> {
  const committed = await admin.fetchOffsets({ groupId, topics: [...topics] })
  let lag = 0
  let total = 0
  for (const topic of topics) {
    const offsets = committed.find(c => c.topic === topic)?.partitions ?? []
    for (const p of await admin.fetchTopicOffsets(topic)) {
      const c = Number(offsets.find(x => x.partition === p.partition)?.offset ?? '-1')
      const from = c < 0 ? Number(p.low) : c
      lag += Math.max(0, Number(p.high) - from)
      total += Math.max(0, c)
    }
  }
  return { lag, committed: total }
}

async function fileSize (file: string): Promise<number> {
  return await stat(file).then(s => s.size, () => 0)
}

async function topicHigh (admin: Admin, topic: string): Promise<number> {
  return (await admin.fetchTopicOffsets(topic)).reduce((sum, p) => sum + Number(p.high), 0)
}

interface HttpInterval { requests: number, errors: number, errorKinds: Record<string, number>, latencies: number[], sendLate: number[] }

/**
 * `rate` requests per second to churn serve's subscriber route over keep-alive connections,
 * request i due at start + i / rate whatever happened to the ones before (no coordinated
 * omission: latency runs from the due moment). Answers are counted in the interval they arrive in.
 */
class HttpLoad {
  readonly #agent = new http.Agent({ keepAlive: true, maxSockets: 64 })
  readonly #port: number
  readonly #rate: number
  readonly #ids: () => string | undefined
  #current: HttpInterval = HttpLoad.#empty()
  #inFlight = 0
  #running = false
  #loop: Promise<void> = Promise.resolve()
  total = { requests: 0, errors: 0, skipped: 0 }

  constructor (port: number, rate: number, ids: () => string | undefined) {
    this.#port = port
    this.#rate = rate
    this.#ids = ids
  }

  static #empty (): HttpInterval { return { requests: 0, errors: 0, errorKinds: {}, latencies: [], sendLate: [] } }

  start (): void {
    this.#running = true
    const interval = 1000 / this.#rate
    const started = performance.now()
    this.#loop = (async () => {
      let next = 0
      while (this.#running) {
        const now = performance.now()
        while (started + next * interval <= now) this.#send(started + next++ * interval)
        await sleep(Math.max(1, started + next * interval - performance.now()))
      }
    })()
  }

  #send (due: number): void {
    const id = this.#ids()
    if (id === undefined) { this.total.skipped++; return }
    this.#inFlight++
    const sentAt = performance.now()
    const done = (kind: string | undefined): void => {
      this.#inFlight--
      const bucket = this.#current
      bucket.requests++
      this.total.requests++
      bucket.sendLate.push(sentAt - due)
      if (kind === undefined) bucket.latencies.push(performance.now() - due)
      else {
        bucket.errors++
        this.total.errors++
        bucket.errorKinds[kind] = (bucket.errorKinds[kind] ?? 0) + 1
      }
    }
    const request = http.get({ host: '127.0.0.1', port: this.#port, path: `/api/v1/subscribers/${encodeURIComponent(id)}/predict`, agent: this.#agent, headers: { 'x-api-key': API_KEY }, timeout: 10_000 }, response => {
      response.resume()
      response.once('end', () => { done(response.statusCode === 200 ? undefined : String(response.statusCode)) })
      response.once('error', () => { done('socket') })
    })
    request.once('timeout', () => { request.destroy(new Error('timeout')) })
    request.once('error', error => { done(error.message === 'timeout' ? 'timeout' : 'socket') })
  }

  /** What was answered since the last call. */
  take (): HttpInterval {
    const taken = this.#current
    this.#current = HttpLoad.#empty()
    return taken
  }

  async stop (): Promise<void> {
    this.#running = false
    await this.#loop
    const deadline = Date.now() + 12_000
    while (this.#inFlight > 0 && Date.now() < deadline) await sleep(20)
    this.#agent.destroy()
  }
}

/**
 * An independent consumer of the churn-risk topic (a fresh group, from the start): the ids it
 * sees feed the HTTP load; for events of live traffic (feature time at or after its start) the
 * latency from event time to receipt is kept for the interval.
 */
async function riskReader (config: { brokers: Parameters<typeof createKafka>[0]['brokers'], registryUrl: string, topic: string }): Promise<{ ids: string[], take: () => { events: number, latencies: number[] }, total: () => number, liveFrom: (at: number) => void, stop: () => Promise<void> }> {
  const kafka = createKafka({ brokers: config.brokers, clientId: 'soak-risk-reader', logger: quiet })
  const codec = new AvroCodec({ registryUrl: config.registryUrl })
  const type = avroType((await latestSchema('churn-risk')).schema)
  const ids: string[] = []
  const seen = new Set<string>()
  // The scorer publishes a churn-risk event before it writes the online store (scorer.ts, steps 4
  // and 5: events at least once), so for a few milliseconds after a subscriber's first event the
  // API has no features for it: ids join the HTTP load a second after they are first seen.
  const joining: Array<{ id: string, at: number }> = []
  let events = 0
  let all = 0
  let latencies: number[] = []
  let liveFrom = Number.POSITIVE_INFINITY
  const consumer: Consumer = kafka.consumer({ groupId: `soak-risk-${randomUUID()}`, maxWaitTimeInMs: 100 })
  await consumer.connect()
  await consumer.subscribe({ topics: [config.topic], fromBeginning: true })
  await consumer.run({
    eachBatch: async ({ batch }) => {
      const receivedAt = Date.now()
      await codec.loadWriters(batch.messages.map(m => (m.value as Buffer).readInt32BE(1)))
      for (const m of batch.messages) {
        const event = codec.decode<ChurnRiskEvent>(m.value, type).value
        all++
        if (!seen.has(event.subscriberId)) {
          seen.add(event.subscriberId)
          joining.push({ id: event.subscriberId, at: receivedAt + 1000 })
        }
        if (event.featureTime >= liveFrom) {
          events++
          latencies.push(receivedAt - event.featureTime)
        }
      }
    }
  })
  const timer = setInterval(() => {
    const now = Date.now()
    let n = 0
    while (n < joining.length && (joining[n] as { at: number }).at <= now) ids.push((joining[n++] as { id: string }).id)
    joining.splice(0, n)
  }, 200)
  return {
    ids,
    take: () => {
      const taken = { events, latencies }
      events = 0
      latencies = []
      return taken
    },
    total: () => all,
    liveFrom: at => { liveFrom = at },
    stop: async () => {
      clearInterval(timer)
      await consumer.disconnect()
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The report

type Series = Partial<Record<RoleName | 'driver', number>>

interface Sample {
  /** Seconds since traffic started. */
  t: number
  at: number
  phase: 'traffic' | 'drain'
  rssMb: Series
  /** V8 heap used, and memory outside the heap (Buffers), per role (from its /metrics). */
  heapMb: Series
  externalMb: Series
  /** DuckDB's buffer manager (`duckdb_memory()`, ingest's /metrics), per role that has one, and what it spilled to temporary files. */
  duckdbMb: Series
  duckdbTempMb: Series
  /** CPU over the interval, as a share of one core. */
  cpu: Series
  ready: Partial<Record<RoleName, boolean>>
  lag: { ingest: number, scorer: number }
  committed: { ingest: number, scorer: number }
  produced: number
  changelog: number
  http: { requests: number, errors: number, errorKinds: Record<string, number>, p50: number | null, p99: number | null, max: number | null, sendLateP99: number | null }
  e2e: { events: number, p50: number | null, p99: number | null, max: number | null }
  queues: Record<Channel, QueueCounts>
  queueDepth: number
  /** The lakehouse file and its write-ahead log, MB (ingest's; it grows with the data by design). */
  lakehouseMb: number
  loadAverage: number
}

interface Growth { series: string, unit: string, start: number, end: number, slope: number, slopeBound: number, rise: number, riseBound: number, verdict: 'stable' | 'GROWING' | 'too short to judge' }
/** A check; `skipped` when an earlier failure kept it from being made (it then counts as failed, unprinted as such). */
interface Check { name: string, ok: boolean, detail: string, skipped?: boolean }

const nullable = (n: number): number | null => Number.isNaN(n) ? null : n

function growthOf (series: string, unit: string, points: Array<{ t: number, y: number }>, slopeBound: number, riseBound: number, judged: boolean, scale = 1): Growth {
  const ys = points.map(p => p.y / scale)
  const s = slope(points.map(p => p.t / 60), ys)
  const third = Math.max(1, Math.floor(ys.length / 3))
  const rise = mean(ys.slice(-third)) - mean(ys.slice(0, third))
  const growing = s > slopeBound && rise > riseBound
  return { series, unit, start: ys[0] ?? Number.NaN, end: ys.at(-1) ?? Number.NaN, slope: s, slopeBound, rise, riseBound, verdict: !judged ? 'too short to judge' : growing ? 'GROWING' : 'stable' }
}

/** The longest run of consecutive samples for which `bad` holds, in seconds (by sample spacing). */
function longestRun (samples: readonly Sample[], bad: (s: Sample, previous: Sample) => boolean): number {
  let longest = 0
  let start: number | undefined
  for (let i = 1; i < samples.length; i++) {
    const s = samples[i] as Sample
    const previous = samples[i - 1] as Sample
    if (bad(s, previous)) {
      start ??= previous.t
      longest = Math.max(longest, s.t - start)
    } else start = undefined
  }
  return longest
}

// ---------------------------------------------------------------------------------------------

async function main (): Promise<number> {
  routeProcessWarnings(logger)
  const stamp = new Date().toISOString().replace(/[:.]/g, '-')
  const outDir = path.resolve(values.out ?? path.join(import.meta.dirname, '..', '.soak', `${stamp}${quick ? '-quick' : ''}`))
  const logs = path.join(outDir, 'logs')
  await mkdir(logs, { recursive: true })
  const { config, env, cleanup } = await isolatedConfig({
    API_KEYS: API_KEY,
    API_RATE_LIMIT_PER_MINUTE: String(Math.max(6000, Math.ceil(httpRate * 60 * 2))),
    KAFKAJS_NO_PARTITIONER_WARNING: '1'
  }, 'soak')
  const lines: string[] = []
  const say = (text = ''): void => {
    lines.push(text)
    process.stdout.write(`${text}\n`)
  }
  const roles: RoleProcess[] = []
  const failures: string[] = []
  let admin: Admin | undefined
  let reader: Awaited<ReturnType<typeof riskReader>> | undefined
  let load: HttpLoad | undefined
  const queues = campaignQueues(config)
  try {
    say(`soak${quick ? ' (quick)' : ''}: ${minutes} min of ${int(rate)} events/s for ${int(subscribers)} subscribers and ${int(httpRate)} HTTP requests/s; samples every ${sampleMs / 1000} s; ${availableParallelism()} cores, ${int(totalmem() / 2 ** 30)} GB, load average ${fixed(loadavg()[0], 2)} at start`)
    say(`out: ${outDir}`)
    say(`allocator of every churn process: ${allocator === 'jemalloc' ? `jemalloc (LD_PRELOAD=${JEMALLOC}, as the image)` : 'glibc malloc'}`)

    // The init container's job: demo history, ingest to lag 0, train, gate.
    const bootStarted = Date.now()
    const boot = await spawnChurn(['bootstrap', '--seed-demo', '--subscribers', String(HISTORY.subscribers), '--events', String(HISTORY.events), '--trees', String(HISTORY.trees), '--folds', '0'], env, path.join(logs, 'bootstrap.log'), path.join(logs, 'bootstrap.out'))
    const [bootCode] = await once(boot, 'exit') as [number | null]
    if (bootCode !== 0) throw new Error(`churn bootstrap exited ${String(bootCode)}; ${path.join(logs, 'bootstrap.log')}:\n${await tail(path.join(logs, 'bootstrap.log'))}`)
    const serving = (await readFile(path.join(logs, 'bootstrap.out'), 'utf8')).trim().split('\n').at(-1) ?? ''
    say(`bootstrap: ${int(HISTORY.events)} events of history for ${int(HISTORY.subscribers)} subscribers ingested, ${HISTORY.trees} trees trained, ${serving} (${((Date.now() - bootStarted) / 1000).toFixed(0)} s)`)

    for (const name of ROLES) roles.push(await startRoleProcess(name, env, logs))
    const readyBy = Date.now() + 120_000
    for (const role of roles) {
      while (!await isReady(role)) {
        if (role.exit !== undefined) throw new Error(`churn ${role.name} exited (${String(role.exit.code ?? role.exit.signal)}) before it was ready; ${role.log}:\n${await tail(role.log)}`)
        if (Date.now() > readyBy) throw new Error(`churn ${role.name} not ready within 120 s; ${role.log}:\n${await tail(role.log)}`)
        await sleep(250)
      }
    }
    say(`roles ready: ${roles.map(r => `${r.name} (pid ${r.pid}, :${r.port})`).join(', ')}`)

    const kafka = createKafka({ brokers: config.kafka.brokers, clientId: 'soak-admin', logger: quiet })
    admin = kafka.admin()
    await admin.connect()
    const sources = sourceTopics(config.topics)
    reader = await riskReader({ brokers: config.kafka.brokers, registryUrl: config.registry.url, topic: config.topics.churnRisk })
    const ids = reader.ids
    // The bootstrap's subscribers are scored as the scorer reads the changelog: wait for some, so the HTTP load has ids.
    const idsBy = Date.now() + 60_000
    while (ids.length === 0 && Date.now() < idsBy) await sleep(200)
    if (ids.length === 0) throw new Error('no churn-risk event within 60 s of the roles being ready: the scorer scored none of the bootstrap\'s subscribers')

    // Traffic and load.
    const trafficStart = Date.now()
    reader.liveFrom(trafficStart)
    // One cohort for the whole run (its window twice the run, so no burst of outcomes at the end).
    const producer = startThread({ role: 'produce', env, level: 'warn', rate, durationMs: trafficMs, subscribers, horizonMs: 2 * trafficMs })
    load = new HttpLoad(roles.find(r => r.name === 'serve')?.port ?? 0, httpRate, () => ids[Math.floor(Math.random() * ids.length)])
    load.start()
    say(`traffic started: ${int(rate)} events/s for ${minutes} min; HTTP load on ${int(ids.length)} scored subscribers (more join as they are scored)\n`)

    const samples: Sample[] = []
    const driverCpu = { last: process.cpuUsage(), at: performance.now() }
    const cpuBefore = new Map<number, { s: number, at: number }>()
    for (const role of roles) cpuBefore.set(role.pid, { s: await cpuSeconds(role.pid) ?? 0, at: performance.now() })
    let phase: Sample['phase'] = 'traffic'
    let sampling = true
    const header = `${'t s'.padStart(6)} ${ROLES.map(r => `${r} MB`.padStart(10)).join(' ')} ${'ingest lag'.padStart(10)} ${'scorer lag'.padStart(10)} ${'http p99'.padStart(9)} ${'e2e p99'.padStart(8)} ${'risk ev'.padStart(8)} ${'queued'.padStart(7)} ready`
    say(header)
    const take = async (): Promise<void> => {
      const at = Date.now()
      const rss: Series = {}
      const heapMb: Series = {}
      const externalMb: Series = {}
      const duckdbMb: Series = {}
      const duckdbTempMb: Series = {}
      const cpu: Series = {}
      const ready: Partial<Record<RoleName, boolean>> = {}
      await Promise.all(roles.map(async role => {
        const mb = await rssMb(role.pid)
        if (mb !== undefined) rss[role.name] = mb
        const s = await cpuSeconds(role.pid)
        const before = cpuBefore.get(role.pid)
        if (s !== undefined && before !== undefined) {
          const now = performance.now()
          cpu[role.name] = (s - before.s) / ((now - before.at) / 1000)
          cpuBefore.set(role.pid, { s, at: now })
        }
        ready[role.name] = role.exit === undefined && await isReady(role)
        const { heap, external, duckdb, duckdbTemp } = await heapOf(role)
        if (heap !== undefined) heapMb[role.name] = heap
        if (external !== undefined) externalMb[role.name] = external
        if (duckdb !== undefined) duckdbMb[role.name] = duckdb
        if (duckdbTemp !== undefined) duckdbTempMb[role.name] = duckdbTemp
      }))
      rss.driver = process.memoryUsage.rss() / 2 ** 20
      const used = process.cpuUsage(driverCpu.last)
      cpu.driver = (used.user + used.system) / 1000 / (performance.now() - driverCpu.at)
      Object.assign(driverCpu, { last: process.cpuUsage(), at: performance.now() })
      const a = admin as Admin
      const [ingest, scorer, changelog] = await Promise.all([groupPosition(a, config.ingest.groupId, sources), groupPosition(a, config.scorer.groupId, [config.topics.features]), topicHigh(a, config.topics.features)])
      const counts = await queues.counts()
      const h = (load as HttpLoad).take()
      const e = (reader as NonNullable<typeof reader>).take()
      const sample: Sample = {
        t: (at - trafficStart) / 1000,
        at,
        phase,
        rssMb: rss,
        heapMb,
        externalMb,
        duckdbMb,
        duckdbTempMb,
        cpu,
        ready,
        lag: { ingest: ingest.lag, scorer: scorer.lag },
        committed: { ingest: ingest.committed, scorer: scorer.committed },
        produced: producer.last.count,
        changelog,
        http: { requests: h.requests, errors: h.errors, errorKinds: h.errorKinds, p50: nullable(percentile(h.latencies, 50)), p99: nullable(percentile(h.latencies, 99)), max: nullable(percentile(h.latencies, 100)), sendLateP99: nullable(percentile(h.sendLate, 99)) },
        e2e: { events: e.events, p50: nullable(percentile(e.latencies, 50)), p99: nullable(percentile(e.latencies, 99)), max: nullable(percentile(e.latencies, 100)) },
        queues: counts,
        queueDepth: CHANNELS.reduce((sum, c) => sum + counts[c].waiting + counts[c].active + counts[c].delayed, 0),
        lakehouseMb: (await fileSize(config.lakehouse.path) + await fileSize(`${config.lakehouse.path}.wal`)) / 2 ** 20,
        loadAverage: loadavg()[0] ?? 0
      }
      samples.push(sample)
      const notReady = ROLES.filter(r => ready[r] !== true)
      say(`${sample.t.toFixed(0).padStart(6)} ${ROLES.map(r => fixed(rss[r], 0).padStart(10)).join(' ')} ${int(sample.lag.ingest).padStart(10)} ${int(sample.lag.scorer).padStart(10)} ${fixed(sample.http.p99).padStart(9)} ${fixed(sample.e2e.p99, 0).padStart(8)} ${int(e.events).padStart(8)} ${int(sample.queueDepth).padStart(7)} ${notReady.length === 0 ? 'all' : `NOT ${notReady.join(',')}`}${phase === 'drain' ? '  (drain)' : ''}`)
    }
    const sampler = (async () => {
      let next = trafficStart + sampleMs
      while (sampling) {
        await sleep(Math.max(0, next - Date.now()))
        if (!sampling) break
        next += sampleMs
        await take().catch((error: unknown) => { logger.warn({ err: error }, 'a sample failed') })
      }
    })()

    // A role that exits before it is told to is a failure: stop the run there.
    const died = Promise.race(roles.map(async role => { await role.exited; return role }))
    const ended = await Promise.race([producer.done.then(summary => ({ summary }), (error: unknown) => ({ error })), died.then(role => ({ role }))])
    const trafficEnd = Date.now()
    await load.stop()
    let produced: ProduceSummary | undefined
    if ('role' in ended) {
      failures.push(`churn ${ended.role.name} exited (${String(ended.role.exit?.code ?? ended.role.exit?.signal)}) ${((trafficEnd - trafficStart) / 1000).toFixed(0)} s into the traffic; ${ended.role.log}:\n${await tail(ended.role.log)}`)
      producer.stop()
      await Promise.race([producer.done.catch(() => {}), sleep(10_000)])
    } else if ('error' in ended) {
      failures.push(`the traffic producer failed: ${String(ended.error)}`)
    } else produced = ended.summary as ProduceSummary
    await producer.terminate()
    phase = 'drain'

    // Drain: both groups at lag 0 on two checks a second apart.
    let drainedAt: number | undefined
    let ingestDrainedAt: number | undefined
    const drainSkipped = failures.length > 0
    if (!drainSkipped) {
      let zeroes = 0
      while (Date.now() - trafficEnd < bounds.drainSeconds * 1000) {
        const dead = roles.find(r => r.exit !== undefined)
        if (dead !== undefined) {
          failures.push(`churn ${dead.name} exited (${String(dead.exit?.code ?? dead.exit?.signal)}) while the chain drained; ${dead.log}:\n${await tail(dead.log)}`)
          break
        }
        const ingest = await groupPosition(admin, config.ingest.groupId, sources)
        const scorer = await groupPosition(admin, config.scorer.groupId, [config.topics.features])
        if (ingest.lag === 0) ingestDrainedAt ??= Date.now()
        zeroes = ingest.lag === 0 && scorer.lag === 0 ? zeroes + 1 : 0
        if (zeroes >= 2) { drainedAt = Date.now(); break }
        await sleep(1000)
      }
    }
    sampling = false
    await sampler
    await take().catch(() => {})

    // Stop the roles as Kubernetes does (SIGTERM), expecting a clean exit.
    const exits: Record<string, string> = {}
    for (const role of [...roles].reverse()) {
      const before = role.exit
      await stopRole(role)
      exits[role.name] = before !== undefined ? `died earlier (${String(before.code ?? before.signal)})` : role.exit?.code === 0 ? '0' : String(role.exit?.code ?? role.exit?.signal)
      if (before === undefined && role.exit?.code !== 0) failures.push(`churn ${role.name} exited ${String(role.exit?.code ?? role.exit?.signal)} on SIGTERM (expected 0); ${role.log}:\n${await tail(role.log)}`)
    }

    // Verdicts.
    const trafficSamples = samples.filter(s => s.phase === 'traffic')
    const warmUpSeconds = (trafficMs / 1000) * warmUp
    const steady = trafficSamples.filter(s => s.t >= warmUpSeconds)
    const steadyMs = steady.length < 2 ? 0 : ((steady.at(-1) as Sample).t - (steady[0] as Sample).t) * 1000
    const judged = steadyMs >= MIN_JUDGED_MS && steady.length >= MIN_JUDGED_SAMPLES
    const changelogRate = trafficSamples.length < 2 ? 0 : ((trafficSamples.at(-1) as Sample).changelog - (trafficSamples[0] as Sample).changelog) / (((trafficSamples.at(-1) as Sample).t - (trafficSamples[0] as Sample).t) || 1)
    const growth: Growth[] = []
    for (const role of ROLES) {
      const measured = steady.filter(s => s.rssMb[role] !== undefined)
      // A role with a DuckDB (ingest) is judged on what it holds beyond DuckDB's buffer manager,
      // whose own bound (DUCKDB_MEMORY_LIMIT) is checked below: its cache of written blocks fills
      // towards that limit for longer than a 10-minute soak lasts, by design.
      const beyondDuckdb = measured.length > 0 && measured.every(s => s.duckdbMb[role] !== undefined)
      const points = measured.map(s => ({ t: s.t, y: (s.rssMb[role] as number) - (beyondDuckdb ? s.duckdbMb[role] as number : 0) }))
      growth.push(growthOf(beyondDuckdb ? `RSS ${role} - DuckDB` : `RSS ${role}`, 'MB', points, bounds.rssSlopeMbPerMin, bounds.rssMarginMb, judged))
    }
    growth.push(growthOf('lag ingest', `s of traffic at ${int(rate)} events/s`, steady.map(s => ({ t: s.t, y: s.lag.ingest })), bounds.lagSlopeSecondsPerMin, bounds.lagMarginSeconds, judged, rate))
    growth.push(growthOf('lag scorer', `s of changelog at ${int(changelogRate)} records/s`, steady.map(s => ({ t: s.t, y: s.lag.scorer })), bounds.lagSlopeSecondsPerMin, bounds.lagMarginSeconds, judged, Math.max(1, changelogRate)))
    const heapSlope = (role: RoleName): number => {
      const points = steady.filter(s => s.heapMb[role] !== undefined)
      return slope(points.map(s => s.t / 60), points.map(s => s.heapMb[role] as number))
    }
    for (const g of growth) {
      if (g.verdict !== 'GROWING') continue
      const role = ROLES.find(r => g.series === `RSS ${r}` || g.series === `RSS ${r} - DuckDB`)
      const where = role === undefined
        ? ''
        : heapSlope(role) > bounds.rssSlopeMbPerMin
          ? `; its V8 heap grows ${signed(heapSlope(role), 2)} MB/min: JavaScript objects accumulate`
          : `; its V8 heap does not (${signed(heapSlope(role), 2)} MB/min): the growth is native memory${g.series.endsWith('DuckDB') ? ' outside DuckDB\'s buffer manager (the allocator\'s, with --allocator glibc, or DuckDB\'s untracked)' : ''}`
      failures.push(`${g.series} grows: ${signed(g.slope, 2)} ${g.unit.split(' at ')[0] ?? ''}/min (bound ${g.slopeBound}) and the last third's mean ${signed(g.rise)} over the first third's (bound ${g.riseBound})${where}`)
    }

    const checks: Check[] = []
    // Stalls and readiness are watched from 20 s into the traffic (sooner in a short run): the roles have just started.
    const withPrevious = trafficSamples.filter(s => s.t >= Math.min(warmUpSeconds, 20) - sampleMs / 1000)
    const ingestStall = longestRun(withPrevious, (s, p) => p.lag.ingest > 0 && s.committed.ingest === p.committed.ingest)
    const scorerStall = longestRun(withPrevious, (s, p) => p.lag.scorer > 0 && s.committed.scorer === p.committed.scorer)
    const riskStall = longestRun(withPrevious, s => s.e2e.events === 0)
    const liveEvents = samples.reduce((sum, s) => sum + s.e2e.events, 0)
    checks.push({ name: 'no role exited before the end', ok: !failures.some(f => / exited \(/.test(f)), detail: ROLES.map(r => `${r} ${exits[r] ?? '?'}`).join(', ') + ' (exit codes on the final SIGTERM)' })
    checks.push({ name: `chain moving (no stall of ${bounds.stallSeconds} s or more)`, ok: ingestStall < bounds.stallSeconds && scorerStall < bounds.stallSeconds && riskStall < bounds.stallSeconds && liveEvents > 0, detail: `longest: ingest committing nothing with lag ${ingestStall.toFixed(0)} s, scorer ${scorerStall.toFixed(0)} s, no churn-risk event ${riskStall.toFixed(0)} s; ${int(liveEvents)} churn-risk events of live traffic` })
    const notReady = Object.fromEntries(ROLES.map(r => [r, longestRun(withPrevious, s => s.ready[r] !== true)]))
    checks.push({ name: `every role ready (never not ready for ${bounds.stallSeconds} s or more)`, ok: ROLES.every(r => (notReady[r] as number) < bounds.stallSeconds), detail: `not ready at ${ROLES.map(r => `${r} ${trafficSamples.filter(s => s.ready[r] !== true).length}`).join(', ')} of ${trafficSamples.length} samples` })
    // DuckDB's own bound: its buffer manager within DUCKDB_MEMORY_LIMIT, and nothing left spilled.
    const duckdbLimitMb = Number.parseFloat(config.lakehouse.settings.memory_limit)
    for (const role of ROLES) {
      const held = trafficSamples.flatMap(s => s.duckdbMb[role] === undefined ? [] : [s.duckdbMb[role]])
      if (held.length === 0) continue
      const most = Math.max(...held)
      const spilled = samples.at(-1)?.duckdbTempMb[role] ?? 0
      checks.push({ name: `${role}'s DuckDB within DUCKDB_MEMORY_LIMIT (${fixed(duckdbLimitMb, 0)} MB), nothing left in temporary files`, ok: most <= duckdbLimitMb && spilled === 0, detail: `buffer manager ${fixed(held[0], 0)} MB at the first sample, at most ${fixed(most, 0)} MB, ${fixed(held.at(-1), 0)} MB at the end; ${fixed(spilled, 1)} MB in temporary files at the end` })
    }
    checks.push({ name: `drained within ${bounds.drainSeconds} s of the traffic's end`, ok: drainedAt !== undefined, ...(drainSkipped ? { skipped: true } : {}), detail: drainSkipped ? 'not waited for: the run had failed before' : drainedAt === undefined ? 'NOT drained' : `ingest ${(((ingestDrainedAt ?? drainedAt) - trafficEnd) / 1000).toFixed(1)} s, scorer ${((drainedAt - trafficEnd) / 1000).toFixed(1)} s` })
    const httpShare = load.total.errors / Math.max(1, load.total.requests)
    const kinds: Record<string, number> = {}
    for (const s of samples) for (const [k, n] of Object.entries(s.http.errorKinds)) kinds[k] = (kinds[k] ?? 0) + n
    checks.push({ name: `HTTP errors at most ${100 * bounds.httpErrorShare}%`, ok: load.total.requests > 0 && httpShare <= bounds.httpErrorShare, detail: `${int(load.total.errors)} of ${int(load.total.requests)} (${(100 * httpShare).toFixed(2)}%)${Object.keys(kinds).length === 0 ? '' : ` ${JSON.stringify(kinds)}`}` })
    for (const c of checks) if (!c.ok && c.skipped !== true) failures.push(`${c.name}: ${c.detail}`)
    const unique = [...new Set(failures)]

    // Summary.
    const sent = produced?.sent ?? trafficSamples.at(-1)?.produced ?? 0
    const http = samples.flatMap(s => s.http.p99 === null ? [] : [s.http.p99])
    const e2e = samples.flatMap(s => s.e2e.p99 === null ? [] : [s.e2e.p99])
    say('')
    say(`traffic: ${int(sent)} events in ${((trafficEnd - trafficStart) / 1000).toFixed(0)} s (${int(sent / ((trafficEnd - trafficStart) / 1000))} /s); changelog ${int(changelogRate)} records/s; ${int(reader.total())} churn-risk events read; HTTP ${int(load.total.requests)} requests`)
    say(`p99 per interval, HTTP subscriber route (ms from the scheduled moment): median ${fixed(percentile(http, 50), 1)}, worst ${fixed(percentile(http, 100), 1)}; event -> churn-risk event (ms): median ${fixed(percentile(e2e, 50), 0)}, worst ${fixed(percentile(e2e, 100), 0)}`)
    const cpuMean = (name: RoleName | 'driver'): string => `${name} ${(100 * mean(trafficSamples.flatMap(s => s.cpu[name] === undefined ? [] : [s.cpu[name]]))).toFixed(0)}%`
    say(`CPU while traffic ran (mean share of one core): ${[...ROLES, 'driver' as const].map(cpuMean).join(', ')}; load average ${fixed(mean(trafficSamples.map(s => s.loadAverage)), 2)} on ${availableParallelism()} cores`)
    const last = samples.at(-1) as Sample
    say(`lakehouse file and WAL: ${fixed(trafficSamples[0]?.lakehouseMb, 0)} MB at the first sample, ${fixed(last.lakehouseMb, 0)} MB at the end (${fixed((last.lakehouseMb - (trafficSamples[0]?.lakehouseMb ?? 0)) / Math.max(0.001, sent / 1e6), 0)} MB per million events; not judged: it holds the data)`)
    say(`campaign queues at the end: ${CHANNELS.map(c => { const q = (samples.at(-1) as Sample).queues[c]; return `${c} waiting ${q.waiting}, active ${q.active}, delayed ${q.delayed}, completed ${q.completed}, failed ${q.failed}` }).join('; ')}`)
    say('')
    say(`growth on the steady part: ${judged ? '' : 'TOO SHORT TO JUDGE, '}${steady.length} samples from ${fixed(steady[0]?.t, 0)} s to ${fixed(steady.at(-1)?.t, 0)} s (first ${(100 * warmUp).toFixed(0)}% of traffic dropped as warm-up${judged ? '' : `; a verdict needs ${MIN_JUDGED_MS / 60_000} min and ${MIN_JUDGED_SAMPLES} samples`})`)
    say('fails only when the slope exceeds its bound AND the last third\'s mean exceeds the first third\'s by more than the margin')
    say(`${'series'.padEnd(20)} ${'start'.padStart(9)} ${'end'.padStart(9)} ${'slope /min'.padStart(11)} ${'bound'.padStart(7)} ${'rise'.padStart(9)} ${'margin'.padStart(7)}  verdict  (unit)`)
    for (const g of growth) {
      say(`${g.series.padEnd(20)} ${fixed(g.start, g.unit === 'MB' ? 0 : 2).padStart(9)} ${fixed(g.end, g.unit === 'MB' ? 0 : 2).padStart(9)} ${signed(g.slope, 2).padStart(11)} ${`<= ${g.slopeBound}`.padStart(7)} ${signed(g.rise, g.unit === 'MB' ? 1 : 2).padStart(9)} ${`<= ${g.riseBound}`.padStart(7)}  ${g.verdict}  (${g.unit})`)
    }
    const heapSlopes = ROLES.map(r => {
      const points = steady.filter(s => s.heapMb[r] !== undefined)
      return `${r} ${signed(heapSlope(r), 2)} (${fixed(points[0]?.heapMb[r], 0)} -> ${fixed(points.at(-1)?.heapMb[r], 0)} MB)`
    })
    say(`V8 heap used, slope in MB/min over the same samples (not judged; RSS minus heap is native memory, DuckDB's buffers in ingest): ${heapSlopes.join(', ')}`)
    say('')
    for (const c of checks) say(`${c.skipped === true ? '--  ' : c.ok ? 'ok  ' : 'FAIL'} ${c.name}: ${c.detail}`)
    const verdict = unique.length > 0 ? 'FAIL' : judged ? 'PASS' : 'PASS (checks only; growth too short to judge)'

    const report = {
      version: 1,
      startedAt: new Date(trafficStart).toISOString(),
      mode: quick ? 'quick' : 'full',
      options: { minutes, rate, httpRate, subscribers, sampleSeconds: sampleMs / 1000, warmUp, history: HISTORY, logLevel: level },
      machine: { cores: availableParallelism(), memoryGb: totalmem() / 2 ** 30 },
      bounds,
      roles: Object.fromEntries(roles.map(r => [r.name, { pid: r.pid, port: r.port, log: path.relative(outDir, r.log), exit: exits[r.name] }])),
      traffic: { start: trafficStart, end: trafficEnd, seconds: (trafficEnd - trafficStart) / 1000, produced: produced ?? null, changelogRate, churnRiskEvents: reader.total() },
      warmUpSeconds,
      steady: { from: steady[0]?.t ?? null, to: steady.at(-1)?.t ?? null, samples: steady.length, judged },
      drain: { drainedSeconds: drainedAt === undefined ? null : (drainedAt - trafficEnd) / 1000, ingestSeconds: ingestDrainedAt === undefined ? null : (ingestDrainedAt - trafficEnd) / 1000 },
      http: { ...load.total, errorKinds: kinds },
      growth: growth.map(g => ({ ...g, slope: nullable(g.slope), rise: nullable(g.rise) })),
      checks,
      failures: unique,
      verdict,
      samples
    }
    const reportFile = path.join(outDir, 'report.json')
    await writeFile(reportFile, `${JSON.stringify(report, null, 1)}\n`)

    // The plot, with matplotlib from the project's venv.
    const png = path.join(outDir, 'soak.png')
    const python = await ensurePythonEnv({ paths: { root: config.stack.dir }, tools: { searchPath: process.env.PATH ?? '', env: process.env, isRoot: process.getuid?.() === 0, logger } })
    const plot = spawn(python, [PLOT, reportFile, png], { env: pythonEnvironment(process.env), stdio: ['ignore', 'pipe', 'pipe'] })
    let plotOutput = ''
    plot.stdout.on('data', (chunk: Buffer) => { plotOutput += chunk.toString('utf8') })
    plot.stderr.on('data', (chunk: Buffer) => { plotOutput += chunk.toString('utf8') })
    const [plotCode] = await once(plot, 'exit') as [number | null]
    if (plotCode !== 0) unique.push(`the plot failed (soak-plot.py exit ${String(plotCode)}): ${plotOutput.trim()}`)
    const pngSize = await stat(png).then(s => s.size, () => 0)

    say('')
    for (const failure of unique) say(`FAILED: ${failure}`)
    say(`verdict: ${unique.length > 0 ? 'FAIL' : verdict}`)
    say(`report: ${reportFile}`)
    say(`plot: ${png} (${int(pngSize / 1024)} KB)`)
    say(`role logs: ${logs}`)
    const finals = await Promise.all(roles.map(async r => `churn ${r.name}, on exit:\n${(await readFile(r.out, 'utf8').catch(() => '')).trim()}`))
    await writeFile(path.join(outDir, 'summary.md'), `# Soak ${report.startedAt}\n\n\`\`\`\n${lines.join('\n')}\n\`\`\`\n\n![series](soak.png)\n\n\`\`\`\n${finals.join('\n\n')}\n\`\`\`\n`)
    return unique.length > 0 ? 1 : 0
  } finally {
    await load?.stop().catch(() => {})
    for (const role of roles) await stopRole(role, 10_000).catch(() => {})
    await reader?.stop().catch(() => {})
    await admin?.disconnect().catch(() => {})
    await queues.close().catch(() => {})
    if (!values.keep) await cleanup().catch((error: unknown) => { logger.warn({ err: error }, 'cleanup failed') })
  }
}

process.exitCode = await main().catch((error: unknown) => {
  process.stderr.write(`soak failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`)
  return 1
})
