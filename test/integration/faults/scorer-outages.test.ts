/**
 * Outages under the scorer: `churn score` runs as its own process on a private Kafka broker, then
 * on a private Apicurio registry (children of the test, launched as the stack launches them), and
 * the dependency is stopped and restarted mid-stream. While it is gone the scorer stays up, its
 * /health answers 200 and its /ready 503 with the reason; nothing is dead-lettered. Once it is
 * back every subscriber ends at its newest version and tier, the last churn-risk event of each is
 * its current tier, and no subscriber has a second campaign job: the checks of the SIGKILL test.
 *
 * Each subscriber's versions move between feature vectors whose scores sit clearly inside one
 * tier, so the expected outcome is known without the scorer (test/helpers/scorer-invariants.ts).
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Config } from '../../../config/index.ts'
import { avroType, encodeFramed, latestSchema } from '../../../schemas/index.ts'
import { registerDerivedSchemas } from '../../../schemas/register.ts'
import { createSchemaRegistry } from '../../../schemas/registry.ts'
import type { RiskTier } from '../../../scoring/tiers.ts'
import { createKafka } from '../../../streams/kafka.ts'
import { consumerGroupLag } from '../../../streams/lag.ts'
import { ensureProjectTopics } from '../../../streams/topics.ts'
import { waitFor } from '../../helpers/campaign.ts'
import { isolatedConfig, logger } from '../../helpers/context.ts'
import { freePort, httpJson, httpStatus, privateService, roleAnswers, roleMetric, startRole, stopCleanly } from '../../helpers/private-services.ts'
import type { PrivateService, RoleProcess } from '../../helpers/private-services.ts'
import { seededRandom } from '../../helpers/random.ts'
import { trainPromoted } from '../../helpers/scoring.ts'
import { TIERS, assertScorerInvariants, clearTierVectors, vectorChange } from '../../helpers/scorer-invariants.ts'
import type { TierVector, TrackedSubscriber } from '../../helpers/scorer-invariants.ts'

const SUBSCRIBERS = 200

interface Isolated { config: Config, env: Record<string, string | undefined>, cleanup: () => Promise<void> }

/** The scorer fixture on `isolated`: a promoted model, its derived schemas and topics, tracked subscribers. */
class ScorerRun {
  readonly subscribers: TrackedSubscriber[] = Array.from({ length: SUBSCRIBERS }, (_, i) => ({ id: `SUB-OUT${String(i).padStart(4, '0')}`, versions: [] }))
  readonly #random = seededRandom(4242)
  readonly #isolated: Isolated
  #vectors: Record<RiskTier, TierVector[]> | undefined
  #changelogId = -1
  port = 0
  role: RoleProcess | undefined

  constructor (isolated: Isolated) {
    this.#isolated = isolated
  }

  async prepare (): Promise<void> {
    const { config } = this.#isolated
    const { set, outcome } = await trainPromoted(config)
    this.#vectors = clearTierVectors(config, set, outcome.artifact)
    const derived = await registerDerivedSchemas({ registry: createSchemaRegistry({ url: config.registry.url }), url: config.registry.url, topics: config.topics })
    this.#changelogId = derived.find(d => d.name === 'feature-changelog')?.latestId ?? -1
    await ensureProjectTopics(createKafka({ brokers: config.kafka.brokers, clientId: 'test-topics', logger }), config.topics)
  }

  async start (): Promise<void> {
    this.port = await freePort()
    this.role = startRole(['score'], { ...this.#isolated.env, ROLE_HTTP_PORT: String(this.port) })
    await this.readyBecomes(200, 'the scorer ready')
  }

  /** A new version for every subscriber, each a vector of a random tier. */
  async wave (): Promise<number> {
    const { config } = this.#isolated
    const vectors = this.#vectors
    assert.ok(vectors !== undefined)
    const type = avroType((await latestSchema('feature-changelog')).schema)
    const producer = createKafka({ brokers: config.kafka.brokers, clientId: 'test-outage-wave', logger }).producer({ idempotent: true })
    await producer.connect()
    try {
      const messages = this.subscribers.map(s => {
        const vector = this.#random.pick(vectors[this.#random.pick(TIERS)])
        s.versions.push(vector)
        return { key: s.id, value: encodeFramed(this.#changelogId, type, vectorChange(s.id, s.versions.length, vector)) }
      })
      await producer.send({ topic: config.topics.features, acks: -1, messages })
      return messages.length
    } finally {
      await producer.disconnect()
    }
  }

  /** Polls /ready until it answers `status`; the scorer must stay up meanwhile. */
  async readyBecomes (status: number, what: string, timeoutMs = 60_000): Promise<void> {
    assert.ok(this.role !== undefined)
    await roleAnswers(this.role, `http://127.0.0.1:${this.port}/ready`, status, what, timeoutMs)
  }

  async readyProblems (): Promise<string> {
    return JSON.stringify((await httpJson(`http://127.0.0.1:${this.port}/ready`))?.body)
  }

  /** The scorer's count of changelog records with `result` (scored, dead_lettered...), from its /metrics. */
  async updates (result: string): Promise<number> {
    return await roleMetric(this.port, 'churn_scorer_updates_total', `result="${result}"`) ?? 0
  }

  /** Waits until the group committed everything on the changelog. */
  async caughtUp (timeoutMs = 90_000): Promise<void> {
    const { config } = this.#isolated
    const admin = createKafka({ brokers: config.kafka.brokers, clientId: 'test-outage-lag', logger }).admin()
    await admin.connect()
    try {
      await waitFor(async () => {
        assert.ok(this.role?.alive(), this.role?.tail())
        return await consumerGroupLag(admin, config.scorer.groupId, [config.topics.features]).catch(() => -1) === 0
      }, { timeoutMs, what: 'the scorer group to catch up' })
    } finally {
      await admin.disconnect()
    }
  }

  /** SIGTERM, a clean exit, then the crash invariants; returns the figures. */
  async finish (): Promise<{ records: number, events: number, jobs: number, deadLettered: number }> {
    const role = this.role
    assert.ok(role !== undefined)
    const deadLettered = await this.updates('dead_lettered')
    await stopCleanly(role)
    this.role = undefined
    const counts = await assertScorerInvariants(this.#isolated.config, this.subscribers)
    return { records: this.subscribers.reduce((sum, s) => sum + s.versions.length, 0), events: counts.events, jobs: counts.jobs, deadLettered }
  }
}

describe('Kafka broker outage under the scorer', () => {
  let broker: PrivateService
  let isolated: Isolated
  let run: ScorerRun
  before(async () => {
    broker = await privateService('kafka')
    await broker.start()
    isolated = await isolatedConfig({ ...broker.env, KAFKA_SESSION_TIMEOUT_MS: '6000' }, 'outage')
    run = new ScorerRun(isolated)
    await run.prepare()
  }, { timeout: 120_000 })
  after(async () => {
    await run?.role?.stop()
    await broker?.start().catch(() => {})
    await isolated?.cleanup().catch(() => {})
    await broker?.dispose()
  })

  it('reports not ready while the broker is gone, stays up, and scores every version once it is back', { timeout: 300_000 }, async () => {
    await run.start()
    await run.wave()
    await run.caughtUp()

    const stopped = Date.now()
    await broker.stop()
    await run.readyBecomes(503, 'the scorer to report not ready without Kafka')
    const notReadyAfterMs = Date.now() - stopped
    assert.match(await run.readyProblems(), /Kafka|consumer crashed|batch failing/, 'the reason names Kafka')
    // Down long enough for the consumer's retries to run out and restart at least once.
    await sleep(5000)
    assert.ok(run.role?.alive(), `the scorer stays up without Kafka:\n${run.role?.tail() ?? ''}`)
    assert.equal(await httpStatus(`http://127.0.0.1:${run.port}/ready`), 503, 'still not ready')
    assert.equal(await httpStatus(`http://127.0.0.1:${run.port}/health`), 200, 'alive all along')

    await broker.start()
    await run.wave()
    await run.wave()
    await run.readyBecomes(200, 'the scorer ready again', 90_000)
    await run.caughtUp()
    const figures = await run.finish()
    assert.equal(figures.deadLettered, 0, 'nothing dead-lettered')
    process.stderr.write(`# kafka outage under the scorer: ${figures.records} records, ${figures.events} events, ${figures.jobs} jobs; not ready ${notReadyAfterMs} ms after the broker stopped\n`)
  })
})

describe('registry outage under the scorer', () => {
  let registry: PrivateService
  let isolated: Isolated
  let run: ScorerRun
  before(async () => {
    registry = await privateService('registry')
    await registry.start(90_000)
    isolated = await isolatedConfig(registry.env, 'outage')
    run = new ScorerRun(isolated)
    await run.prepare()
  }, { timeout: 180_000 })
  after(async () => {
    if (run?.role?.alive() === true) run.role.child.kill('SIGCONT')
    await run?.role?.stop()
    await registry?.start(90_000).catch(() => {})
    await isolated?.cleanup().catch(() => {})
    await registry?.dispose()
  })

  it('does not dead-letter records it cannot decode yet, reports not ready, and scores them once the registry is back', { timeout: 300_000 }, async () => {
    // A fresh process: its schema cache is empty, so the first records need the registry.
    await run.start()
    const role = run.role
    assert.ok(role !== undefined)
    // Held still while the wave is produced and the registry stopped, so the records are read
    // only once the registry is gone (the order of events, not the timing, decides it).
    role.child.kill('SIGSTOP')
    try {
      await run.wave()
      await registry.stop()
    } finally {
      role.child.kill('SIGCONT')
    }
    await run.readyBecomes(503, 'the scorer to report not ready without the registry')
    assert.match(await run.readyProblems(), /batch failing/, 'the failing batch is the reason')
    // Several retries with backoff happen while the registry is away; none dead-letters.
    await waitFor(async () => /batch failing \(([3-9]|\d\d+) attempts\)/.test(await run.readyProblems()), { timeoutMs: 30_000, what: 'three failed attempts' })
    assert.ok(role.alive(), `the scorer stays up without the registry:\n${role.tail()}`)
    assert.equal(await run.updates('dead_lettered'), 0, 'nothing dead-lettered')
    assert.equal(await run.updates('scored'), 0, 'nothing scored yet')

    // Same H2 file: the schema ids inside the records still resolve after the restart.
    await registry.start(90_000)
    await run.readyBecomes(200, 'the scorer ready again', 90_000)
    await run.wave()
    await run.caughtUp()
    const figures = await run.finish()
    assert.equal(figures.deadLettered, 0, 'nothing dead-lettered')
    process.stderr.write(`# registry outage under the scorer: ${figures.records} records, ${figures.events} events, ${figures.jobs} jobs, 0 dead-lettered\n`)
  })
})
