/**
 * `GET /api/v1/events/stream`: churn-risk events as they reach the topic, as server-sent events
 * (`text/event-stream`), for the web page's live feed. Every connection shares the process's one
 * `RiskFeed` consumer.
 *
 * Frames: `event: risk` with the event as JSON (the Avro record's fields); `event: status` with
 * `{ live, problem? }` on connecting and whenever the feed's state changes (a client produces a
 * test event only once `live` is true); `event: dropped` with `{ dropped }` after a slow client
 * lost events; a `: heartbeat` comment every `heartbeatMs` so proxies and the client can tell a
 * quiet feed from a dead connection.
 *
 * Authentication is the API key in a header, as on every keyed route. Browsers' `EventSource`
 * cannot send headers, so the page reads this stream with `fetch()` and a `ReadableStream`
 * instead; a `?key=` parameter is deliberately not accepted (the query string is logged with the
 * URL and kept in browser history; `auth.ts` reads keys from headers only).
 *
 * Slow clients: each connection keeps at most `bufferEvents` frames while its socket is not
 * draining and drops the oldest beyond that, so one stalled browser never holds memory or the
 * shared consumer back.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { Writable } from 'node:stream'
import type { RiskFeed, RiskFeedMessage } from '../risk-feed.ts'

export interface EventsRouteOptions {
  feed: RiskFeed
  /**
   * Interval of the heartbeat comment.
   * @defaultValue 15000
   */
  heartbeatMs?: number
  /**
   * Frames kept per client while its socket is full; the oldest are dropped beyond it.
   * @defaultValue 256
   */
  bufferEvents?: number
}

/** Where the stream is served. */
export const EVENTS_STREAM_PATH = '/api/v1/events/stream'

/** One SSE frame: an event name and JSON data (one `data:` line: JSON.stringify never emits a newline). */
export function sseFrame (event: string, data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`
}

/** What a client connection is written to (the response's socket). */
export type SseSink = Pick<Writable, 'write' | 'end' | 'on' | 'writableEnded' | 'destroyed'>

/**
 * A connected client: frames are written while its socket takes them, and queued while it does
 * not (until 'drain'), at most `limit`, the oldest dropped first; after a drop the client gets an
 * `event: dropped` frame with how many it lost.
 */
export class SseClient {
  readonly #raw: SseSink
  readonly #limit: number
  readonly #queue: string[] = []
  #blocked = false
  #dropped = 0

  constructor (raw: SseSink, limit: number) {
    this.#raw = raw
    this.#limit = limit
    raw.on('drain', () => { this.#drain() })
  }

  send (frame: string): void {
    if (this.#raw.writableEnded || this.#raw.destroyed) return
    if (this.#blocked) {
      this.#queue.push(frame)
      if (this.#queue.length > this.#limit) {
        this.#queue.shift()
        this.#dropped++
      }
      return
    }
    this.#blocked = !this.#raw.write(frame)
  }

  #drain (): void {
    this.#blocked = false
    if (this.#dropped > 0) {
      const dropped = this.#dropped
      this.#dropped = 0
      this.#blocked = !this.#raw.write(sseFrame('dropped', { dropped }))
    }
    while (!this.#blocked && this.#queue.length > 0) this.#blocked = !this.#raw.write(this.#queue.shift() ?? '')
  }

  end (): void {
    if (!this.#raw.writableEnded) this.#raw.end()
  }
}

export function eventsRoute (app: FastifyInstance, options: EventsRouteOptions): void {
  const { feed, heartbeatMs = 15_000, bufferEvents = 256 } = options
  const open = new Set<SseClient>()
  // Open streams never finish by themselves: end them before the server waits for its requests.
  app.addHook('preClose', (done) => {
    for (const client of open) client.end()
    open.clear()
    done()
  })
  app.addHook('onClose', async () => { await feed.close() })

  app.get(EVENTS_STREAM_PATH, {
    schema: {
      summary: 'Churn-risk events as they are emitted (server-sent events)',
      description: 'A text/event-stream: `event: risk` frames carry a churn-risk event as JSON, `event: status` frames `{ live, problem? }`, `event: dropped` frames `{ dropped }` after a slow client lost events; a heartbeat comment every 15 s.',
      tags: ['events'],
      produces: ['text/event-stream'],
      response: { 200: { description: 'The event stream (never ends while the client stays connected).', type: 'string' } }
    }
  }, (request: FastifyRequest, reply: FastifyReply) => {
    reply.hijack()
    const raw = reply.raw
    raw.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      // Tells nginx-style proxies not to buffer the stream.
      'x-accel-buffering': 'no'
    })
    raw.flushHeaders()
    const client = new SseClient(raw, bufferEvents)
    open.add(client)
    const unsubscribe = feed.subscribe((message: RiskFeedMessage) => {
      client.send(message.type === 'event' ? sseFrame('risk', message.event) : sseFrame('status', message.status))
    })
    const heartbeat = setInterval(() => { client.send(': heartbeat\n\n') }, heartbeatMs)
    heartbeat.unref()
    raw.on('close', () => {
      clearInterval(heartbeat)
      unsubscribe()
      open.delete(client)
      request.log.debug('event stream closed')
    })
  })
}
