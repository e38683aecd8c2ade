/**
 * Outages, one dependency at a time, mid-stream: a private Kafka broker, a private Apicurio
 * registry and a private redis-server (children of the test, on free ports, launched as the stack
 * launches them) are stopped and restarted under running `churn` processes. While a dependency is
 * gone the process stays up (no exit, no crash loop) and its /ready answers 503; once it is back
 * the process finishes with the same counts as a run without the outage.
 */
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, before, describe, it } from 'node:test'
import type { Config } from '../../../config/index.ts'
import { CAMPAIGN_JOB, campaignJobOptions } from '../../../scoring/campaign.ts'
import type { Channel } from '../../../scoring/campaign.ts'
import type { OutboxLine } from '../../../scoring/channels.ts'
import { campaignQueues } from '../../../scoring/queues.ts'
import { produceTraffic } from '../../../streams/producer.ts'
import { campaignJob, outboxLines, waitFor } from '../../helpers/campaign.ts'
import { isolatedConfig, logger } from '../../helpers/context.ts'
import { freePort, httpJson, httpStatus, privateService, roleAnswers, roleMetric, startRole, stopCleanly } from '../../helpers/private-services.ts'
import type { PrivateService, RoleProcess } from '../../helpers/private-services.ts'
import { assertBronzeEqualsTopics, assertLakehouseConsistent, withLakehouse } from '../../helpers/lakehouse.ts'

interface Isolated { config: Config, env: Record<string, string | undefined>, dir: string, cleanup: () => Promise<void> }

/** Bronze holds every message of the source topics exactly once, the lakehouse is consistent, nothing dead-lettered; returns how many. */
async function assertLandedOnce (config: Config): Promise<number> {
  const landed = await assertBronzeEqualsTopics(config, logger, 60_000)
  await assertLakehouseConsistent(config)
  await withLakehouse(config, async lakehouse => {
    assert.equal((await lakehouse.qualityReport()).pipeline.dead_lettered, 0, 'nothing dead-lettered')
  })
  return landed
}

/** Polls the role's /ready until it answers `status`; the role must stay up meanwhile. */
async function readyBecomes (role: RoleProcess, port: number, status: number, what: string, timeoutMs = 60_000): Promise<void> {
  await roleAnswers(role, `http://127.0.0.1:${port}/ready`, status, what, timeoutMs)
}

const began = Date.now()
/** A `# outage` line on stderr per step, so a failure in CI shows how far the test got and when. */
function step (what: string): void {
  process.stderr.write(`# outage +${((Date.now() - began) / 1000).toFixed(1)} s: ${what}\n`)
}

describe('Kafka broker outage under ingest', () => {
  let broker: PrivateService
  let isolated: Isolated
  let ingest: RoleProcess | undefined
  before(async () => {
    broker = await privateService('kafka')
    await broker.start()
    isolated = await isolatedConfig(broker.env, 'outage')
  })
  after(async () => {
    await ingest?.stop()
    await broker?.start().catch(() => {})
    await isolated?.cleanup().catch(() => {})
    await broker?.dispose()
  })

  it('reports not ready while the broker is gone, stays up, and lands everything once it is back', { timeout: 300_000 }, async () => {
    const port = await freePort()
    ingest = startRole(['ingest'], { ...isolated.env, ROLE_HTTP_PORT: String(port), INGEST_BATCH_MESSAGES: '500', KAFKA_SESSION_TIMEOUT_MS: '6000' })
    const first = await produceTraffic({ config: isolated.config, logger, subscribers: 300, events: 1500, seed: 11 })
    step(`kafka: ${first.sent} produced`)
    await readyBecomes(ingest, port, 200, 'ingest ready')
    await waitFor(async () => (await ingestCounters(port)).bronze >= first.sent, { timeoutMs: 60_000, what: `the first ${first.sent} messages in Bronze` })

    const stopped = Date.now()
    await broker.stop()
    step('kafka: broker stopped')
    await readyBecomes(ingest, port, 503, 'ingest to report not ready without Kafka')
    const notReadyAfterMs = Date.now() - stopped
    // Down long enough for the consumer's retries to run out and restart at least once.
    await sleep(5000)
    assert.ok(ingest.alive(), `ingest stays up without Kafka:\n${ingest.tail()}`)
    assert.equal(await httpStatus(`http://127.0.0.1:${port}/ready`), 503, 'still not ready')
    assert.equal(await httpStatus(`http://127.0.0.1:${port}/health`), 200, 'alive all along')

    await broker.start()
    step('kafka: broker back')
    const second = await produceTraffic({ config: isolated.config, logger, subscribers: 300, events: 1500, seed: 12 })
    step(`kafka: ${second.sent} more produced`)
    await readyBecomes(ingest, port, 200, 'ingest ready again')
    const produced = first.sent + second.sent
    await waitFor(async () => {
      assert.ok(ingest?.alive(), ingest?.tail())
      return (await ingestCounters(port)).bronze >= produced
    }, { timeoutMs: 90_000, what: `${produced} messages in Bronze` })
    step('kafka: caught up')
    // DuckDB's own memory account, which the soak reads to tell its buffer pool from a leak.
    const duckdbBytes = await roleMetric(port, 'churn_duckdb_memory_bytes')
    assert.ok(duckdbBytes !== undefined && duckdbBytes > 0, `DuckDB's memory on /metrics: ${String(duckdbBytes)}`)
    await stopCleanly(ingest)
    ingest = undefined
    assert.equal(await assertLandedOnce(isolated.config), produced)
    process.stderr.write(`# kafka outage under ingest: ${produced} events, not ready ${notReadyAfterMs} ms after the broker stopped\n`)
  })
})

/** The role's Bronze and dead-letter counters, from its /metrics (-1 before it has them). */
async function ingestCounters (port: number): Promise<{ bronze: number, deadLettered: number }> {
  return { bronze: await roleMetric(port, 'churn_ingest_bronze_rows_total') ?? -1, deadLettered: await roleMetric(port, 'churn_ingest_dead_lettered_total') ?? -1 }
}

describe('registry outage under ingest', () => {
  let registry: PrivateService
  let isolated: Isolated
  let ingest: RoleProcess | undefined
  before(async () => {
    registry = await privateService('registry')
    await registry.start(90_000)
    isolated = await isolatedConfig(registry.env, 'outage')
  })
  after(async () => {
    if (ingest?.alive() === true) ingest.child.kill('SIGCONT')
    await ingest?.stop()
    await isolated?.cleanup().catch(() => {})
    await registry?.dispose()
  })

  it('does not dead-letter valid messages it cannot resolve, reports not ready, and lands them once the registry is back', { timeout: 300_000 }, async () => {
    const port = await freePort()
    // A fresh process: its schema cache is empty, so the first messages need the registry.
    ingest = startRole(['ingest'], { ...isolated.env, ROLE_HTTP_PORT: String(port), INGEST_BATCH_MESSAGES: '500' })
    await readyBecomes(ingest, port, 200, 'ingest ready')
    // Held still while the traffic is produced and the registry stopped, so the messages are
    // read only once the registry is gone (the order of events, not the timing, decides it).
    ingest.child.kill('SIGSTOP')
    let produced: number
    try {
      produced = (await produceTraffic({ config: isolated.config, logger, subscribers: 300, events: 1500, seed: 21 })).sent
      await registry.stop()
      step('registry: stopped')
    } finally {
      ingest.child.kill('SIGCONT')
    }

    await readyBecomes(ingest, port, 503, 'ingest to report not ready without the registry')
    const ready = await httpJson(`http://127.0.0.1:${port}/ready`)
    assert.match(JSON.stringify(ready?.body), /micro-batch failing/, 'the failing batch is the reason')
    await waitFor(async () => (await ingestCounters(port)).bronze === 0, { what: 'metrics' })
    // Several retries with backoff happen while the registry is away; none dead-letters.
    await waitFor(async () => /micro-batch failing \(([3-9]|\d\d+) attempts\)/.test(JSON.stringify((await httpJson(`http://127.0.0.1:${port}/ready`))?.body)), { timeoutMs: 30_000, what: 'three failed attempts' })
    assert.ok(ingest.alive(), `ingest stays up without the registry:\n${ingest.tail()}`)
    assert.deepEqual(await ingestCounters(port), { bronze: 0, deadLettered: 0 }, 'nothing landed, nothing dead-lettered')

    // Same H2 file: the schema ids inside the messages still resolve after the restart.
    await registry.start(90_000)
    await readyBecomes(ingest, port, 200, 'ingest ready again')
    await waitFor(async () => (await ingestCounters(port)).bronze >= produced, { timeoutMs: 60_000, what: `${produced} messages in Bronze` })
    assert.equal((await ingestCounters(port)).deadLettered, 0)
    await stopCleanly(ingest)
    ingest = undefined
    assert.equal(await assertLandedOnce(isolated.config), produced)
  })
})

describe('Redis outage under the workers and the API', () => {
  let redis: PrivateService
  let isolated: Isolated
  const roles: RoleProcess[] = []
  before(async () => {
    redis = await privateService('redis')
    await redis.start()
    isolated = await isolatedConfig({ ...redis.env, CHANNEL_CRM_ADAPTER: 'outbox', CAMPAIGN_BACKOFF_MS: '200' }, 'outage')
  })
  after(async () => {
    for (const role of roles) await role.stop()
    await isolated?.cleanup().catch(() => {})
    await redis?.dispose()
  })

  const outbox = async (channel: Channel): Promise<OutboxLine[]> => await outboxLines(isolated.config.campaign.outboxDir, channel)

  it('`churn work` reports not ready while Redis is gone, stays up, and delivers every queued job once', { timeout: 180_000 }, async () => {
    const port = await freePort()
    const work = startRole(['work'], { ...isolated.env, ROLE_HTTP_PORT: String(port) })
    roles.push(work)
    await readyBecomes(work, port, 200, 'workers ready')
    const queues = campaignQueues(isolated.config)
    const settings = { prefix: isolated.config.redis.prefix, ...isolated.config.campaign }
    const add = async (n: number, delay = 0): Promise<void> => {
      const data = campaignJob('crm', { subscriberId: `OUT-${String(n).padStart(4, '0')}` })
      await queues.queues.crm.add(CAMPAIGN_JOB, data, { ...campaignJobOptions('crm', data.event, settings), ...(delay > 0 ? { delay } : {}) })
    }
    try {
      for (let n = 0; n < 20; n++) await add(n)
      await waitFor(async () => (await outbox('crm')).length >= 20, { timeoutMs: 30_000, what: 'the first 20 jobs delivered' })
      // Queued before the outage, due during it: they are in Redis (append-only file) when it stops.
      const DELAY_MS = 5000
      const queuedAt = Date.now()
      for (let n = 20; n < 40; n++) await add(n, DELAY_MS)
      await redis.stop()
      step('redis: stopped under work')
      assert.ok(Date.now() - queuedAt < DELAY_MS, 'Redis stopped before the delayed jobs were due')
      await readyBecomes(work, port, 503, 'workers to report not ready without Redis')
      // Down past the moment the jobs fell due.
      while (Date.now() < queuedAt + DELAY_MS + 2000) await sleep(200)
      assert.ok(work.alive(), `work stays up without Redis:\n${work.tail()}`)
      assert.equal(await httpStatus(`http://127.0.0.1:${port}/ready`), 503)
      assert.equal((await outbox('crm')).length, 20, 'nothing delivered while Redis is away')

      await redis.start()
      step('redis: back under work')
      await readyBecomes(work, port, 200, 'workers ready again')
      await waitFor(async () => (await outbox('crm')).length >= 40, { timeoutMs: 30_000, what: 'all 40 jobs delivered' })
      await waitFor(async () => (await queues.queues.crm.getJobCounts('completed')).completed === 40, { timeoutMs: 10_000, what: '40 completed jobs' })
    } finally {
      // BullMQ's close waits for Redis: bring it back first if an assertion failed during the outage.
      await redis.start()
      await queues.close()
    }
    step('redis: stopping work')
    await stopCleanly(work)
    step(`redis: work exited; ${work.count('CHURN_CAMPAIGN_CLOSE_TIMEOUT')} close timeout(s), ${work.count('campaign worker error')} worker error line(s)`)
    const lines = await outbox('crm')
    assert.equal(lines.length, 40, 'each job delivered once')
    assert.equal(new Set(lines.map(l => l.jobId)).size, 40, 'no job twice')
    assert.equal(new Set(lines.map(l => l.event.subscriberId)).size, 40)
  })

  it('`churn work` stopped during the outage, or the moment Redis is back (its connections still reconnecting), exits cleanly', { timeout: 180_000 }, async () => {
    // BullMQ's own graceful close waits forever on a blocking connection that is reconnecting
    // (taskforcesh/bullmq#4656); the role must exit either way, within its grace.
    for (const when of ['during the outage', 'the moment Redis is back']) {
      await redis.start()
      const port = await freePort()
      const work = startRole(['work'], { ...isolated.env, ROLE_HTTP_PORT: String(port) })
      roles.push(work)
      await readyBecomes(work, port, 200, 'workers ready')
      await redis.stop()
      await readyBecomes(work, port, 503, 'workers to report not ready without Redis')
      // Long enough for ioredis's reconnect backoff to reach its 2 s cap.
      await sleep(6000)
      if (when !== 'during the outage') await redis.start()
      step(`redis: stopping work ${when}`)
      await stopCleanly(work)
      step(`redis: work exited; ${work.count('CHURN_CAMPAIGN_CLOSE_TIMEOUT')} close timeout(s)`)
    }
  })

  it('`churn serve` reports redis failed on /api/v1/ready while Redis is gone, and ok once it is back', { timeout: 180_000 }, async () => {
    await redis.start()
    const port = await freePort()
    const serve = startRole(['serve'], { ...isolated.env, HTTP_PORT: String(port), HTTP_HOST: '127.0.0.1' })
    roles.push(serve)
    const redisCheck = async (): Promise<string | undefined> => {
      assert.ok(serve.alive(), `serve exited:\n${serve.tail()}`)
      const answer = await httpJson(`http://127.0.0.1:${port}/api/v1/ready`)
      return (answer?.body as { checks?: Record<string, string> } | undefined)?.checks?.redis
    }
    await waitFor(async () => await redisCheck() === 'ok', { timeoutMs: 30_000, what: 'serve answering with redis ok' })
    await redis.stop()
    step('redis: stopped under serve')
    await waitFor(async () => await redisCheck() === 'failed', { timeoutMs: 30_000, what: 'redis failed on /api/v1/ready' })
    assert.equal(await httpStatus(`http://127.0.0.1:${port}/api/v1/ready`), 503)
    assert.equal(await httpStatus(`http://127.0.0.1:${port}/api/v1/health`), 200, 'alive all along')
    await redis.start()
    await waitFor(async () => await redisCheck() === 'ok', { timeoutMs: 30_000, what: 'redis ok again' })
    step('redis: stopping serve')
    await stopCleanly(serve)
  })
})
