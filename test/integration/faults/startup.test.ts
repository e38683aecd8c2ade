/**
 * Start-up before the dependencies (issue 8): Kubernetes starts pods in any order, so a role may
 * start before Kafka, the schema registry or Redis answers. Each role is started against private
 * instances (children of the test, launched as the stack launches them) that are created but not
 * started yet: it must stay up through several backoff rounds, its /health answering 200 and its
 * /ready 503 with what it waits for; once the dependency starts it becomes ready and does its job.
 * A SIGTERM during the wait exits 0; a refusal (bad configuration) still exits at once.
 *
 * The attempt counts come from the role itself (`(attempt n)` in its /ready problem, `answered
 * after n attempts` in its log), so the test waits for events, never for a length of time.
 */
import assert from 'node:assert/strict'
import { rm } from 'node:fs/promises'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'
import type { Config } from '../../../config/index.ts'
import { CAMPAIGN_JOB, campaignJobOptions } from '../../../scoring/campaign.ts'
import type { OutboxLine } from '../../../scoring/channels.ts'
import { campaignQueues } from '../../../scoring/queues.ts'
import { produceTraffic } from '../../../streams/producer.ts'
import { campaignJob, outboxLines, waitFor } from '../../helpers/campaign.ts'
import { config as shared, isolatedConfig, logger } from '../../helpers/context.ts'
import { assertBronzeEqualsTopics } from '../../helpers/lakehouse.ts'
import { freePort, httpJson, httpStatus, privateService, roleAnswers, roleMetric, startRole, stopCleanly } from '../../helpers/private-services.ts'
import type { PrivateService, RoleProcess } from '../../helpers/private-services.ts'
import { API_KEY, trainLakehouse } from '../../helpers/serving.ts'

interface Isolated { config: Config, env: Record<string, string | undefined>, dir: string, cleanup: () => Promise<void> }

/** Backoff rounds a role must sit through, up and not ready, before its dependency is started. */
const ROUNDS = 4
/** A short backoff cap keeps the rounds and the pick-up after a start quick. */
const BACKOFF = { STARTUP_BACKOFF_MAX_MS: '1000' }
/** Private Kafka and Apicurio start in 10-40 s on an idle machine; this one is shared. */
const SERVICE_START_MS = 240_000

const base = (port: number): string => `http://127.0.0.1:${port}`

/** The role's /ready answer: its status and its first problem. */
async function readiness (port: number, route = '/ready'): Promise<{ status: number, problem: string }> {
  const answer = await httpJson(`${base(port)}${route}`)
  const problems = (answer?.body as { problems?: unknown } | undefined)?.problems
  return { status: answer?.status ?? 0, problem: Array.isArray(problems) ? String(problems[0]) : JSON.stringify(problems) }
}

/** Waits until the role's server answers /health (the process takes a moment to start). */
async function listening (role: RoleProcess, port: number, route = '/health'): Promise<void> {
  await waitFor(async () => {
    assert.ok(role.alive(), `the role exited (${String(role.child.exitCode)}) before listening:\n${role.tail()}`)
    return await httpStatus(`${base(port)}${route}`) === 200
  }, { timeoutMs: 120_000, what: `${route} answering` })
}

/**
 * Polls until `role` reports its `rounds`-th attempt at `what` (`waiting for <what>: <reason>
 * (attempt n)` on /ready); at every poll it must be alive, /health 200 and /ready 503. Returns n.
 */
async function waitsThrough (role: RoleProcess, port: number, what: string, rounds = ROUNDS, timeoutMs = 120_000): Promise<number> {
  const pattern = new RegExp(`^waiting for ${what}: .+ \\(attempt (\\d+)\\)$`)
  let last = ''
  await listening(role, port)
  return await waitFor(async () => {
    assert.ok(role.alive(), `the role exited (${String(role.child.exitCode)}) while waiting for ${what}:\n${role.tail()}`)
    assert.equal(await httpStatus(`${base(port)}/health`), 200, `/health while waiting for ${what}`)
    const { status, problem } = await readiness(port)
    assert.equal(status, 503, `/ready while waiting for ${what}: ${problem}`)
    last = problem
    const attempt = Number(pattern.exec(problem)?.[1] ?? 0)
    return attempt >= rounds ? attempt : undefined
  }, { timeoutMs, what: `${rounds} attempts at ${what} (last /ready problem: ${last})` })
}

/** Polls the role's /ready until it answers 200; the role must stay up meanwhile. */
async function becomesReady (role: RoleProcess, port: number, what: string, timeoutMs = 180_000): Promise<void> {
  await roleAnswers(role, `${base(port)}/ready`, 200, what, timeoutMs)
}

/** Warnings about waiting for `what`: one per change of reason (and per minute), never one per attempt. */
function assertQuietWarnings (role: RoleProcess, what: string, attempts: number): void {
  const warnings = role.count(`"awaiting":"${what}","code":"`)
  assert.ok(warnings >= 1, `a warning names what is awaited and the error code:\n${role.tail()}`)
  assert.ok(warnings < attempts, `${warnings} warnings for ${attempts} attempts at ${what}: one per change of reason, not one per attempt`)
}

/** A counter of the role's /metrics summed over the series matching `labels`; 0 until it has one. */
async function metric (port: number, name: string, labels = ''): Promise<number> {
  return await roleMetric(port, name, labels) ?? 0
}

describe('ingest, score and bootstrap started before the registry and Kafka', () => {
  let registry: PrivateService
  let kafka: PrivateService
  let isolated: Isolated
  const roles: RoleProcess[] = []
  before(async () => {
    registry = await privateService('registry')
    kafka = await privateService('kafka')
    isolated = await isolatedConfig({ ...registry.env, ...kafka.env, ...BACKOFF, INGEST_BATCH_MESSAGES: '500' }, 'startup')
    await trainLakehouse(isolated.config)
  })
  after(async () => {
    for (const role of roles) if (role.alive()) await role.stop()
    await isolated?.cleanup().catch(() => {})
    await registry?.dispose()
    await kafka?.dispose()
  })

  it('wait up and not ready, saying for what, through several attempts; once both are up, ingest lands the traffic and the scorer scores it', { timeout: 900_000 }, async () => {
    const ingestPort = await freePort()
    const scorePort = await freePort()
    const ingest = startRole(['ingest'], { ...isolated.env, ROLE_HTTP_PORT: String(ingestPort) })
    const score = startRole(['score'], { ...isolated.env, ROLE_HTTP_PORT: String(scorePort) })
    // The init container's path when ingest runs in its own pod: it needs Kafka only (no export
    // is written here, so once Kafka answers it waits for one, and is stopped).
    const bootstrap = startRole(['bootstrap', '--from-export', path.join(isolated.dir, 'export'), '--wait-timeout', '900'], isolated.env)
    roles.push(ingest, score, bootstrap)

    // Neither the registry nor Kafka: both roles wait for the registry first.
    const ingestAttempts = await waitsThrough(ingest, ingestPort, 'the schema registry')
    await waitsThrough(score, scorePort, 'the schema registry')
    assertQuietWarnings(ingest, 'the schema registry', ingestAttempts)
    assert.ok(ingest.count('"code":"CHURN_SCHEMA_REGISTRY_UNAVAILABLE"') >= 1, ingest.tail())
    assert.ok(bootstrap.alive(), `bootstrap waits for Kafka instead of exiting:\n${bootstrap.tail()}`)

    // The registry, still no Kafka: the subjects get registered, and both roles wait for Kafka.
    await registry.start(SERVICE_START_MS)
    const kafkaAttempts = await waitsThrough(ingest, ingestPort, 'kafka')
    await waitsThrough(score, scorePort, 'kafka')
    assertQuietWarnings(ingest, 'kafka', kafkaAttempts)
    assert.ok(bootstrap.alive(), `bootstrap waits for Kafka instead of exiting:\n${bootstrap.tail()}`)

    await kafka.start(SERVICE_START_MS)
    await becomesReady(ingest, ingestPort, 'ingest ready once Kafka is up')
    await waitFor(() => bootstrap.count('kafka answered after') > 0 || !bootstrap.alive(), { timeoutMs: 120_000, what: 'bootstrap past the wait for Kafka' })
    const answered = /kafka answered after (\d+) attempts/.exec(bootstrap.tail())
    assert.ok(answered !== null, `bootstrap went on once Kafka answered:\n${bootstrap.tail()}`)
    assert.ok(Number(answered[1]) >= ROUNDS, `bootstrap tried Kafka ${answered[1]} times`)
    // It now waits for an export that no ingest here writes; SIGTERM ends it (not with 0, by design).
    await bootstrap.stop()

    const produced = (await produceTraffic({ config: isolated.config, logger, subscribers: 150, events: 1200, seed: 808 })).sent
    await waitFor(async () => {
      assert.ok(ingest.alive(), ingest.tail())
      return await metric(ingestPort, 'churn_ingest_bronze_rows_total') >= produced
    }, { timeoutMs: 180_000, what: `${produced} messages in Bronze` })
    await becomesReady(score, scorePort, 'the scorer ready once Kafka is up')
    await waitFor(async () => {
      assert.ok(score.alive(), score.tail())
      return await metric(scorePort, 'churn_scorer_updates_total', 'result="scored"') > 0
    }, { timeoutMs: 180_000, what: 'the scorer scoring the Gold changes ingest published' })

    const scored = await metric(scorePort, 'churn_scorer_updates_total', 'result="scored"')
    await stopCleanly(ingest)
    await stopCleanly(score)
    assert.equal(await assertBronzeEqualsTopics(isolated.config, logger, 120_000), produced, 'every produced message landed once')
    process.stderr.write(`# start-up before the registry and Kafka: ingest up and not ready through ${ingestAttempts}+ attempts at the registry and ${kafkaAttempts}+ at Kafka ` +
      `(${ingest.count('"awaiting":"the schema registry","code":"')} and ${ingest.count('"awaiting":"kafka","code":"')} warnings), bootstrap through ${answered[1]} at Kafka; ` +
      `then ${produced} events landed once and ${scored} changelog records scored\n`)
  })
})

describe('work and serve started before Redis', () => {
  let redis: PrivateService
  let isolated: Isolated
  const roles: RoleProcess[] = []
  before(async () => {
    redis = await privateService('redis')
    isolated = await isolatedConfig({ ...redis.env, ...BACKOFF, API_KEYS: API_KEY, CHANNEL_CRM_ADAPTER: 'outbox', CAMPAIGN_BACKOFF_MS: '200' }, 'startup')
    await trainLakehouse(isolated.config)
  })
  after(async () => {
    for (const role of roles) if (role.alive()) await role.stop()
    // Its keys live on the private Redis, which goes with its folder.
    await rm(isolated?.dir ?? '', { recursive: true, force: true })
    await redis?.dispose()
  })

  const outbox = async (): Promise<OutboxLine[]> => await outboxLines(isolated.config.campaign.outboxDir, 'crm')

  it('work waits up and not ready, serve answers 503 with redis failed; once Redis is up both are ready, a job is delivered and a lookup reaches the store', { timeout: 600_000 }, async () => {
    const workPort = await freePort()
    const servePort = await freePort()
    const work = startRole(['work'], { ...isolated.env, ROLE_HTTP_PORT: String(workPort) })
    const serve = startRole(['serve'], { ...isolated.env, HTTP_PORT: String(servePort), HTTP_HOST: '127.0.0.1' })
    roles.push(work, serve)
    const lookup = async (): Promise<number> => {
      const response = await fetch(`${base(servePort)}/api/v1/subscribers/SUB-NOBODY/predict`, { headers: { 'x-api-key': API_KEY }, signal: AbortSignal.timeout(10_000) })
      await response.body?.cancel()
      return response.status
    }
    const serveWithoutRedis = async (): Promise<void> => {
      assert.ok(serve.alive(), `serve exited:\n${serve.tail()}`)
      assert.equal(await httpStatus(`${base(servePort)}/api/v1/health`), 200)
      const ready = await httpJson(`${base(servePort)}/api/v1/ready`)
      const body = ready?.body as { checks?: Record<string, string>, problems?: Record<string, string> } | undefined
      assert.equal(ready?.status, 503)
      assert.equal(body?.checks?.redis, 'failed', JSON.stringify(body))
      assert.ok((body?.problems?.redis ?? '') !== '', 'the failing check says why')
      assert.equal(await lookup(), 503, 'a lookup without the store is a 503')
    }

    await listening(serve, servePort, '/api/v1/health')
    await serveWithoutRedis()
    const attempts = await waitsThrough(work, workPort, 'redis')
    assertQuietWarnings(work, 'redis', attempts)
    assert.ok(work.count('"code":"CHURN_REDIS_UNAVAILABLE"') >= 1, work.tail())
    // Still so after the work role's rounds: several seconds without Redis.
    await serveWithoutRedis()

    await redis.start()
    await becomesReady(work, workPort, 'the workers ready once Redis is up')
    await waitFor(async () => {
      assert.ok(serve.alive(), serve.tail())
      return await httpStatus(`${base(servePort)}/api/v1/ready`) === 200
    }, { timeoutMs: 120_000, what: 'serve ready once Redis is up' })
    assert.equal(await lookup(), 404, 'the lookup reached the store (no such subscriber)')

    const queues = campaignQueues(isolated.config)
    try {
      const data = campaignJob('crm', { subscriberId: 'SUB-STARTUP-1' })
      await queues.queues.crm.add(CAMPAIGN_JOB, data, campaignJobOptions('crm', data.event, { prefix: isolated.config.redis.prefix, ...isolated.config.campaign }))
      await waitFor(async () => (await outbox()).length >= 1, { timeoutMs: 60_000, what: 'the job delivered' })
    } finally {
      await queues.close()
    }
    await stopCleanly(work)
    await stopCleanly(serve)
    assert.deepEqual((await outbox()).map(line => line.event.subscriberId), ['SUB-STARTUP-1'])
    process.stderr.write(`# start-up before Redis: work up and not ready through ${attempts}+ attempts (${work.count('"awaiting":"redis","code":"')} warnings), serve 503 with redis failed; then 1 job delivered, lookups 503 then 404\n`)
  })
})

describe('a stop while waiting, and a refusal', () => {
  let nothing: Isolated
  const roles: RoleProcess[] = []
  before(async () => {
    // Ports nothing listens on: every dependency refuses the connection.
    nothing = await isolatedConfig({
      KAFKA_BROKERS: `127.0.0.1:${await freePort()}`,
      SCHEMA_REGISTRY_URL: `http://127.0.0.1:${await freePort()}/apis/ccompat/v7`,
      REDIS_URL: `redis://127.0.0.1:${await freePort()}`,
      ...BACKOFF
    }, 'startup')
  })
  after(async () => {
    for (const role of roles) if (role.alive()) await role.stop()
    await rm(nothing?.dir ?? '', { recursive: true, force: true })
  })

  it('SIGTERM while ingest, score, work and serve wait exits each with 0', { timeout: 300_000 }, async () => {
    const waiting = await Promise.all([['ingest', 'the schema registry'], ['score', 'the schema registry'], ['work', 'redis']].map(async ([role, what]) => {
      const port = await freePort()
      const started = startRole([role as string], { ...nothing.env, ROLE_HTTP_PORT: String(port) })
      roles.push(started)
      await waitsThrough(started, port, what as string, 2)
      return started
    }))
    const servePort = await freePort()
    const serve = startRole(['serve'], { ...nothing.env, HTTP_PORT: String(servePort), HTTP_HOST: '127.0.0.1' })
    roles.push(serve)
    await waitFor(async () => {
      assert.ok(serve.alive(), serve.tail())
      return (await readiness(servePort, '/api/v1/ready')).status === 503
    }, { timeoutMs: 120_000, what: 'serve answering 503 without Redis' })
    for (const role of [...waiting, serve]) await stopCleanly(role)
  })

  it('a registry that refuses (a wrong URL path) or a topic Kafka will not create (replication factor 3 on one broker) exits with 1 at once, without waiting', { timeout: 300_000 }, async () => {
    const registry = new URL(shared.registry.url)
    const wrongPath = startRole(['ingest'], { ...nothing.env, KAFKA_BROKERS: undefined, SCHEMA_REGISTRY_URL: `${registry.origin}/apis/no-such-api`, REDIS_URL: undefined })
    roles.push(wrongPath)
    assert.equal(await wrongPath.exited, 1, wrongPath.tail())
    assert.ok(wrongPath.count('CHURN_SCHEMA_REGISTRY_REFUSED') >= 1, wrongPath.tail())
    assert.equal(wrongPath.count('"awaiting"'), 0, 'no waiting on a refusal')

    const topics = await isolatedConfig({ TOPIC_REPLICATION_FACTOR: '3' }, 'startup')
    try {
      const replication = startRole(['ingest'], topics.env)
      roles.push(replication)
      assert.equal(await replication.exited, 1, replication.tail())
      assert.ok(replication.count('CHURN_TOPICS_REFUSED') >= 1, replication.tail())
      assert.match(replication.tail(), /Replication-factor is invalid \(INVALID_REPLICATION_FACTOR\)/)
      assert.equal(replication.count('"awaiting":"kafka"'), 0, 'no waiting on a refusal')
    } finally {
      await topics.cleanup()
    }
  })
})
