/**
 * Redis goes away under the scorer: the scorer must pause (the batch retried with backoff, its
 * offsets not committed), report not ready, and once Redis is back finish with every subscriber
 * scored, announced and given exactly one job. The test runs its own `redis-server` (Debian's, as
 * the stack does) on a free port with an append-only file, so it can stop and restart it without
 * touching the shared one.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'
import type { Config } from '../../../config/index.ts'
import { createRedis } from '../../../core/redis.ts'
import { runScorer } from '../../../scoring/scorer-role.ts'
import type { ScorerRunSummary } from '../../../scoring/scorer-role.ts'
import type { ScorerService } from '../../../scoring/scorer.ts'
import { waitFor } from '../../helpers/campaign.ts'
import { isolatedConfig, logger } from '../../helpers/context.ts'
import { featureChange, jobCount, produceChanges, riskEvents, scoringFixture } from '../../helpers/scoring.ts'
import type { ScoringFixture } from '../../helpers/scoring.ts'

let config: Config
let cleanup: () => Promise<void>
let fixture: ScoringFixture
let port: number
let dir: string
let redis: ChildProcess | undefined

async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const { port: free } = server.address() as AddressInfo
  await new Promise(resolve => server.close(resolve))
  return free
}

/** Starts redis-server on `port` with its data in `dir` and waits until it answers. */
async function startRedis (): Promise<void> {
  redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--appendfsync', 'always', '--save', ''], { stdio: 'ignore' })
  await waitFor(async () => {
    const probe = createRedis({ url: `redis://127.0.0.1:${port}`, noReconnect: true, maxRetriesPerRequest: 0, lazyConnect: true })
    probe.on('error', () => {})
    try {
      await probe.connect()
      return (await probe.ping()) === 'PONG'
    } catch {
      return false
    } finally {
      probe.disconnect()
    }
  }, { timeoutMs: 10_000, what: 'redis-server to answer' })
}

async function stopRedis (): Promise<void> {
  const child = redis
  if (child === undefined || child.exitCode !== null) return
  const exited = once(child, 'exit')
  child.kill('SIGTERM')
  await exited
  redis = undefined
}

describe('scorer through a Redis outage', () => {
  before(async () => {
    port = await freePort()
    dir = await mkdtemp(path.join(tmpdir(), 'churn-redis-outage-'))
    await startRedis()
    ;({ config, cleanup } = await isolatedConfig({ REDIS_URL: `redis://127.0.0.1:${port}`, MODEL_POLL_MS: '500' }))
    fixture = await scoringFixture(config)
  })
  after(async () => {
    await stopRedis()
    await cleanup().catch(() => {})
    await rm(dir, { recursive: true, force: true })
  })

  it('pauses, reports not ready, and resumes without losing an event or doubling a job', async () => {
    const stop = new AbortController()
    let service: ScorerService | undefined
    const running: Promise<ScorerRunSummary> = runScorer({ config, logger, signal: stop.signal, onStarted: s => { service = s } })
    try {
      const first = Array.from({ length: 40 }, (_, i) => featureChange(`SUB-R${i}`, 1, fixture.degraded))
      await produceChanges(config, fixture.changelogId, first)
      await waitFor(() => service !== undefined && service.stats.scored >= 40, { timeoutMs: 60_000, what: 'the first 40 subscribers scored' })
      assert.equal(service?.ready, true)

      await stopRedis()
      const second = Array.from({ length: 40 }, (_, i) => featureChange(`SUB-R${40 + i}`, 1, fixture.degraded))
      await produceChanges(config, fixture.changelogId, second)
      await waitFor(() => service?.readiness.ready === false, { timeoutMs: 60_000, what: 'the scorer to report not ready' })
      const readiness = service?.readiness
      assert.ok(readiness?.problems.some(p => p.startsWith('batch failing')), JSON.stringify(readiness))
      assert.equal(service?.stats.scored, 40, 'nothing scored while Redis is away')

      await startRedis()
      await waitFor(() => service !== undefined && service.stats.scored >= 80 && service.ready, { timeoutMs: 60_000, what: 'the rest scored after Redis returned' })
      assert.equal(await service?.lag(), 0)
    } finally {
      stop.abort()
    }
    const summary = await running
    assert.equal(summary.scored, 80)

    const events = await riskEvents(config)
    const announced = new Set(events.filter(e => e.tier === 'high').map(e => e.subscriberId))
    assert.equal(announced.size, 80, 'every subscriber announced (at least once)')
    assert.equal(await jobCount(config, 'crm'), 80, 'exactly one CRM job each')
  })
})
