/**
 * The load generator of `npm run bench:http`: HTTP/1.1 over keep-alive loopback sockets, one
 * request in flight per connection, requests written from prebuilt buffers and responses parsed
 * only as far as the status line and Content-Length, so the client costs little of the CPU it
 * shares with the servers it measures.
 *
 * Why not autocannon (v9, a dev dependency) here: its latency histogram holds whole milliseconds,
 * too coarse for sub-millisecond answers and a 5 ms p99 goal; and its fixed-rate mode
 * (`overallRate`) is not a fixed rate: each connection may send `rate` requests per second,
 * reset by a one-second interval, so a second's requests leave as a burst and the connection
 * idles after them, and latency is timed from the actual send. Its coordinated-omission
 * correction passes `Math.ceil(1 / rate)` (seconds per request, rounded up to 1) as the expected
 * interval of a histogram kept in milliseconds, so it adds synthetic samples one millisecond apart
 * below every response over 1 ms rather than the ones a stalled schedule hid.
 *
 * Here, `closedLoop` keeps every connection busy (throughput; latency from the write), and
 * `fixedRate` schedules request i at start + i / rate whatever happened to the ones before, sends
 * it on an idle connection (queued while none is), and times it from its scheduled moment: a
 * server that stalls is charged for every request its stall delayed (coordinated omission, as
 * wrk2 measures it). How late the generator itself sent is reported apart.
 */
import { once } from 'node:events'
import net from 'node:net'
import { Worker } from 'node:worker_threads'

/** One request to send: bytes of a full HTTP/1.1 request. */
export type RequestPicker = () => Buffer

export interface LoadResult {
  /** Requests answered 2xx. */
  ok: number
  /** Non-2xx answers plus transport failures. */
  errors: number
  /** Status codes other than 2xx, with counts (and 'socket' for transport failures). */
  errorKinds: Record<string, number>
  /** Requests scheduled but not answered by the cut-off (fixed rate only). */
  unfinished: number
  /** Milliseconds the load ran: its window, and for a fixed rate the drain after it (answers are counted over both). */
  ms: number
  /** Latencies of 2xx answers in milliseconds, sorted; unfinished ones at their cut-off age (fixed rate). */
  latencies: Float64Array
  /** Fixed rate: how late the generator wrote each request after its scheduled moment (ms), sorted. */
  sendLag?: Float64Array
  /** The generator's CPU time over the load, as a share of one core. */
  clientCpu: number
}

/** Nearest-rank percentile of sorted values. */
export function percentile (sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] as number
}

/** A growable list of doubles. */
class Samples {
  #data = new Float64Array(1 << 16)
  #length = 0
  push (value: number): void {
    if (this.#length === this.#data.length) {
      const grown = new Float64Array(this.#data.length * 2)
      grown.set(this.#data)
      this.#data = grown
    }
    this.#data[this.#length++] = value
  }

  get length (): number { return this.#length }
  sorted (): Float64Array { return this.#data.slice(0, this.#length).sort() }
}

const HEADER_END = Buffer.from('\r\n\r\n')
const CONTENT_LENGTH = /\r\ncontent-length:\s*(\d+)/i

/**
 * A keep-alive connection answering one request at a time. Responses must carry Content-Length
 * (both servers measured send it for JSON); anything else is a protocol error.
 */
class Connection {
  readonly #socket: net.Socket
  #pending: Buffer = Buffer.alloc(0)
  #onAnswer: ((status: number) => void) | undefined
  #onFail: ((error: Error) => void) | undefined
  closed = false

  private constructor (socket: net.Socket) {
    this.#socket = socket
    socket.setNoDelay(true)
    socket.on('data', chunk => { this.#read(chunk) })
    socket.on('error', error => { this.#fail(error) })
    socket.on('close', () => {
      this.closed = true
      this.#fail(new Error('connection closed'))
    })
  }

  static async open (port: number): Promise<Connection> {
    const socket = net.connect({ host: '127.0.0.1', port })
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve)
      socket.once('error', reject)
    })
    return new Connection(socket)
  }

  /** Writes the request; resolves with the answer's status code. */
  async send (request: Buffer): Promise<number> {
    if (this.closed) throw new Error('connection closed')
    return await new Promise<number>((resolve, reject) => {
      this.#onAnswer = resolve
      this.#onFail = reject
      this.#socket.write(request)
    })
  }

  destroy (): void {
    this.closed = true
    this.#socket.destroy()
  }

  #read (chunk: Buffer): void {
    this.#pending = this.#pending.length === 0 ? chunk : Buffer.concat([this.#pending, chunk])
    const end = this.#pending.indexOf(HEADER_END)
    if (end < 0) return
    const head = this.#pending.toString('latin1', 0, end)
    const length = CONTENT_LENGTH.exec(head)?.[1]
    if (length === undefined) {
      this.#fail(new Error(`an answer without Content-Length: ${head.split('\r\n')[0] ?? ''}`))
      this.destroy()
      return
    }
    const total = end + 4 + Number(length)
    if (this.#pending.length < total) return
    const status = Number(head.slice(9, 12))
    this.#pending = this.#pending.length === total ? Buffer.alloc(0) : this.#pending.subarray(total)
    const answer = this.#onAnswer
    this.#onAnswer = undefined
    this.#onFail = undefined
    answer?.(status)
  }

  #fail (error: Error): void {
    const fail = this.#onFail
    this.#onAnswer = undefined
    this.#onFail = undefined
    fail?.(error)
  }
}

/**
 * A worker thread that wakes at each request's due moment and posts how many are due by then.
 * Timers on the main thread fire a millisecond apart at best, so at 1,000 requests/s they would
 * send most requests up to a millisecond late, which the latency (timed from the schedule) then
 * charges to the server; `Atomics.wait` sleeps to within tens of microseconds without spinning a
 * core the servers need. It says when it has booted, is then sent the start, and exits once
 * the last request is due.
 */
function metronome (interval: number, total: number): Worker {
  const code = `
    const { workerData, parentPort } = require('node:worker_threads')
    const { interval, total } = workerData
    const cell = new Int32Array(new SharedArrayBuffer(4))
    const now = () => performance.timeOrigin + performance.now()
    parentPort.once('message', startAt => {
      let next = 0
      while (next < total) {
        const wait = startAt + next * interval - now()
        if (wait > 0.02) Atomics.wait(cell, 0, 0, wait)
        const t = now()
        const before = next
        while (next < total && startAt + next * interval <= t) next++
        if (next > before) parentPort.postMessage(next)
      }
      parentPort.close()
    })
    parentPort.postMessage('booted')`
  return new Worker(code, { eval: true, workerData: { interval, total } })
}

async function openAll (port: number, count: number): Promise<Connection[]> {
  return await Promise.all(Array.from({ length: count }, async () => await Connection.open(port)))
}

function tally (kinds: Record<string, number>, kind: string): void {
  kinds[kind] = (kinds[kind] ?? 0) + 1
}

/** `connections` connections, each sending its next request as soon as the last is answered, for `ms`. */
export async function closedLoop (options: { port: number, connections: number, ms: number, pick: RequestPicker }): Promise<LoadResult> {
  const { port, pick } = options
  const pool = await openAll(port, options.connections)
  const latencies = new Samples()
  const errorKinds: Record<string, number> = {}
  let errors = 0
  const cpu = process.cpuUsage()
  const started = performance.now()
  const deadline = started + options.ms
  await Promise.all(pool.map(async connection => {
    while (performance.now() < deadline && !connection.closed) {
      const sent = performance.now()
      try {
        const status = await connection.send(pick())
        if (status >= 200 && status < 300) latencies.push(performance.now() - sent)
        else { errors++; tally(errorKinds, String(status)) }
      } catch {
        errors++
        tally(errorKinds, 'socket')
      }
    }
  }))
  const ms = performance.now() - started
  const used = process.cpuUsage(cpu)
  for (const c of pool) c.destroy()
  return { ok: latencies.length, errors, errorKinds, unfinished: 0, ms, latencies: latencies.sorted(), clientCpu: (used.user + used.system) / 1000 / ms }
}

/**
 * `rate` requests per second for `ms`, request i due at start + i / rate, over at most
 * `connections` connections. After the window, answers still due get `drainMs`; whatever is then
 * unanswered (queued or in flight) counts as unfinished, its latency the age it had reached (a
 * lower bound), so an overloaded server's percentiles are not flattered by dropping it.
 */
export async function fixedRate (options: { port: number, connections: number, rate: number, ms: number, drainMs: number, pick: RequestPicker }): Promise<LoadResult> {
  const { port, rate, pick } = options
  const idle = await openAll(port, options.connections)
  const all = [...idle]
  const interval = 1000 / rate
  const total = Math.floor(options.ms / interval)
  const latencies = new Samples()
  const sendLag = new Samples()
  const errorKinds: Record<string, number> = {}
  const queue: number[] = []
  const inFlight = new Set<number>()
  let errors = 0
  let scheduled = 0
  let answered = 0
  let settle: () => void = () => {}
  const settled = new Promise<void>(resolve => { settle = resolve })
  // The clock thread starts before the schedule does: a worker takes tens of milliseconds to boot.
  const clock = metronome(interval, total)
  await once(clock, 'message')
  const cpu = process.cpuUsage()
  const started = performance.now()
  const due = (i: number): number => started + i * interval

  const dispatch = (): void => {
    while (queue.length > 0 && idle.length > 0) {
      const i = queue.shift() as number
      const connection = idle.pop() as Connection
      inFlight.add(i)
      sendLag.push(performance.now() - due(i))
      connection.send(pick()).then(status => {
        if (status >= 200 && status < 300) latencies.push(performance.now() - due(i))
        else { errors++; tally(errorKinds, String(status)) }
      }, () => {
        errors++
        tally(errorKinds, 'socket')
      }).finally(() => {
        inFlight.delete(i)
        answered++
        if (!connection.closed) idle.push(connection)
        dispatch()
        if (answered === total) settle()
      })
    }
  }
  await new Promise<void>((resolve, reject) => {
    clock.postMessage(performance.timeOrigin + started)
    clock.on('message', (upTo: number) => {
      while (scheduled < upTo) queue.push(scheduled++)
      dispatch()
    })
    clock.once('error', reject)
    clock.once('exit', () => { resolve() })
  })
  if (answered < total) await Promise.race([settled, new Promise(resolve => setTimeout(resolve, options.drainMs))])
  const cutOff = performance.now()
  const ms = cutOff - started
  const used = process.cpuUsage(cpu)
  const unfinished = [...queue, ...inFlight]
  for (const i of unfinished) latencies.push(cutOff - due(i))
  for (const c of all) c.destroy()
  return { ok: answered - errors, errors, errorKinds, unfinished: unfinished.length, ms, latencies: latencies.sorted(), sendLag: sendLag.sorted(), clientCpu: (used.user + used.system) / 1000 / ms }
}
