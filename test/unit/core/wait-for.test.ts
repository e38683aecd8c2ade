/**
 * The start-up wait (core/wait-for.ts) on real failures: connections refused by a loopback port
 * nothing listens on, a real fetch failure, the project's own errors; a pino logger writing to a
 * buffer the test reads.
 */
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { createServer, connect } from 'node:net'
import type { AddressInfo, Server } from 'node:net'
import { Writable } from 'node:stream'
import { after, before, describe, it } from 'node:test'
import { pino } from 'pino'
import { ChurnError } from '../../../core/errors.ts'
import { backoffDelay, failureCode, failureReason, isUnavailable, waitFor } from '../../../core/wait-for.ts'

/** A loopback port nothing listens on (one the system just handed out and took back). */
async function closedPort (): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  server.close()
  await once(server, 'close')
  return port
}

/** Connects to `port` and closes again; rejects with the socket's error. */
async function connectTo (port: number): Promise<void> {
  const socket = connect(port, '127.0.0.1')
  try {
    await once(socket, 'connect')
  } finally {
    socket.destroy()
  }
}

async function refusal (port: number): Promise<unknown> {
  return await connectTo(port).then(() => assert.fail('nothing should listen there'), (error: unknown) => error)
}

/** A pino logger whose JSON lines the test reads. */
function capturingLogger (): { logger: pino.Logger, lines: () => Array<Record<string, unknown>> } {
  const chunks: string[] = []
  const sink = new Writable({ write (chunk: Buffer, _encoding, done) { chunks.push(chunk.toString('utf8')); done() } })
  return {
    logger: pino({ level: 'info' }, sink),
    lines: () => chunks.join('').split('\n').filter(line => line !== '').map(line => JSON.parse(line) as Record<string, unknown>)
  }
}

describe('backoffDelay', () => {
  it('doubles from the first pause up to the cap, with half of each pause random', () => {
    const backoff = { initialMs: 100, maxMs: 1000 }
    assert.deepEqual([1, 2, 3, 4, 5, 6, 20, 1000].map(n => backoffDelay(n, backoff, () => 0.999999)), [100, 200, 400, 800, 1000, 1000, 1000, 1000])
    assert.deepEqual([1, 2, 3, 4, 5].map(n => backoffDelay(n, backoff, () => 0)), [50, 100, 200, 400, 500])
  })

  it('defaults to 250 ms doubling to 10 s', () => {
    assert.equal(backoffDelay(1, {}, () => 0.999999), 250)
    assert.equal(backoffDelay(50, {}, () => 0.999999), 10_000)
  })
})

describe('isUnavailable', () => {
  let refused: unknown
  before(async () => { refused = await refusal(await closedPort()) })

  it('waits for a refused connection, a failed fetch and a retriable error of the project', async () => {
    assert.equal(isUnavailable(refused), true)
    const port = await closedPort()
    const fetched = await fetch(`http://127.0.0.1:${port}/`).then(() => assert.fail('nothing listens'), (error: unknown) => error)
    assert.equal(isUnavailable(fetched), true, 'fetch failed, caused by ECONNREFUSED')
    assert.equal(isUnavailable(new ChurnError('CHURN_SCHEMA_REGISTRY_UNAVAILABLE', 'no answer', { retriable: true, cause: refused })), true)
    assert.equal(isUnavailable(Object.assign(new Error('Connection error'), { name: 'KafkaJSNumberOfRetriesExceeded', retriable: false, cause: refused })), true, 'a client giving up on an unreachable broker')
  })

  it('does not wait for a refusal, a configuration mistake or a batch that holds one', async () => {
    assert.equal(isUnavailable(new ChurnError('CHURN_SCHEMA_REGISTRY_REFUSED', '404', { cause: refused })), false, 'a non-retriable error of the project, whatever its cause')
    const badPort = await fetch('http://127.0.0.1:1/').then(() => assert.fail('port 1 is refused by fetch'), (error: unknown) => error)
    assert.equal(isUnavailable(badPort), false, 'fetch refusing a port it never connects to')
    assert.equal(isUnavailable(new TypeError('x is not a function')), false)
    const invalid = Object.assign(new Error('Replication-factor is invalid'), { type: 'INVALID_REPLICATION_FACTOR', retriable: false })
    assert.equal(isUnavailable(Object.assign(new Error('Topic creation errors'), { errors: [invalid, refused] })), false)
    assert.equal(isUnavailable(Object.assign(new Error('Topic creation errors'), { errors: [refused, refused] })), true)
    assert.equal(isUnavailable(undefined), false)
  })

  it('names the most telling code and reason along the causes', () => {
    const wrapped = new ChurnError('CHURN_SCHEMA_REGISTRY_UNAVAILABLE', 'The registry did not answer: fetch failed', { retriable: true, cause: new TypeError('fetch failed', { cause: refused }) })
    assert.equal(failureCode(wrapped), 'CHURN_SCHEMA_REGISTRY_UNAVAILABLE')
    assert.equal(failureCode(Object.assign(new Error('gave up'), { name: 'KafkaJSNumberOfRetriesExceeded', cause: refused })), 'ECONNREFUSED')
    assert.match(failureReason(wrapped), /^The registry did not answer: fetch failed \(connect ECONNREFUSED 127\.0\.0\.1:\d+\)$/)
    assert.equal(failureReason(refused), (refused as Error).message)
  })
})

describe('waitFor', () => {
  let server: Server
  let open: number
  before(async () => {
    server = createServer(socket => { socket.destroy() })
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    open = (server.address() as AddressInfo).port
  })
  after(async () => {
    server.close()
    await once(server, 'close')
  })

  it('retries what is unreachable until it answers, warning once per reason, and says why meanwhile', { timeout: 30_000 }, async () => {
    const closed = await closedPort()
    const { logger, lines } = capturingLogger()
    const problems: Array<string | undefined> = []
    let attempts = 0
    const value = await waitFor({
      what: 'the test service',
      logger,
      backoff: { initialMs: 1, maxMs: 4 },
      onWaiting: problem => { problems.push(problem) },
      // Refused four times, then a port that accepts.
      attempt: async () => {
        attempts++
        await connectTo(attempts <= 4 ? closed : open)
        return 'up'
      }
    })
    assert.equal(value, 'up')
    assert.equal(attempts, 5)
    assert.deepEqual(problems.map(p => p?.replace(/connect ECONNREFUSED \S+/, 'REFUSED')), [
      'waiting for the test service: REFUSED (attempt 1)',
      'waiting for the test service: REFUSED (attempt 2)',
      'waiting for the test service: REFUSED (attempt 3)',
      'waiting for the test service: REFUSED (attempt 4)',
      undefined
    ])
    const warnings = lines().filter(l => l.level === 40)
    assert.equal(warnings.length, 1, 'one warning for one reason, not one per attempt')
    assert.equal(warnings[0]?.awaiting, 'the test service')
    assert.equal(warnings[0]?.code, 'ECONNREFUSED')
    assert.match(String(lines().find(l => l.level === 30)?.msg), /^the test service answered after 5 attempts/)
  })

  it('warns again when the reason changes, and at least every logEveryMs', { timeout: 30_000 }, async () => {
    const { logger, lines } = capturingLogger()
    let attempts = 0
    await waitFor({
      what: 'x',
      logger,
      backoff: { initialMs: 1, maxMs: 2 },
      attempt: async () => {
        attempts++
        if (attempts <= 4) await Promise.reject(new ChurnError('CHURN_REDIS_UNAVAILABLE', attempts <= 2 ? 'loading' : 'no answer', { retriable: true }))
      }
    })
    assert.deepEqual(lines().filter(l => l.level === 40).map(l => l.attempt), [1, 3])

    const every = capturingLogger()
    attempts = 0
    await waitFor({
      what: 'x',
      logger: every.logger,
      backoff: { initialMs: 1, maxMs: 2 },
      logEveryMs: 0,
      attempt: async () => { if (++attempts <= 3) await Promise.reject(new ChurnError('CHURN_REDIS_UNAVAILABLE', 'no answer', { retriable: true })) }
    })
    assert.equal(every.lines().filter(l => l.level === 40).length, 3)
  })

  it('throws what is not worth waiting for, after one attempt', { timeout: 30_000 }, async () => {
    let attempts = 0
    const refused = new ChurnError('CHURN_REDIS_REFUSED', 'WRONGPASS')
    // The signal only ends a wait that should not have started, so a failure does not hang the run.
    await assert.rejects(waitFor({ what: 'redis', logger: pino({ level: 'silent' }), signal: AbortSignal.timeout(20_000), attempt: async () => { attempts++; await Promise.reject(refused) } }), refused)
    assert.equal(attempts, 1)
  })

  it('resolves to undefined at once when stopped, during a pause or before the first attempt', { timeout: 30_000 }, async () => {
    const closed = await closedPort()
    const stop = new AbortController()
    let attempts = 0
    // A pause of at least 5 minutes after the first refusal: only the stop can end it within the test's timeout.
    const waiting = waitFor({
      what: 'x',
      logger: pino({ level: 'silent' }),
      signal: stop.signal,
      backoff: { initialMs: 600_000, maxMs: 600_000 },
      onWaiting: problem => { if (problem !== undefined) stop.abort() },
      attempt: async () => { attempts++; await connectTo(closed) }
    })
    assert.equal(await waiting, undefined)
    assert.equal(attempts, 1)
    assert.equal(await waitFor({ what: 'x', logger: pino({ level: 'silent' }), signal: AbortSignal.abort(), attempt: async () => { attempts++; await Promise.resolve() } }), undefined)
    assert.equal(attempts, 1, 'no attempt once stopped')
  })
})
