/**
 * Consumer instances joining and leaving mid-stream.
 *
 * The scorer keeps no local state, so it scales by rebalancing: one instance, then a second and a
 * third joining while changelog records stream in, then one leaving, the stream never pausing
 * (with CHURN_LONG=1, 24 changes of membership between one and four instances, each leaving
 * instance drawn at random, every third change made while the group still rebalances for the one
 * before, the stream three times as fast). After each change the group must be stable at its new
 * size and scoring. Once it has caught up, the store holds each subscriber's newest version and
 * tier, the last churn-risk event per subscriber is its current tier (no tier change lost), and no
 * subscriber has a second job for a tier (the same checks as the SIGKILL test).
 *
 * Ingest does not rebalance: its offsets live in its own lakehouse file (one writer), so a second
 * instance in the group would read its partitions from the start into a lakehouse of its own (see
 * k8s/README.md, "Scaling ingest"). What it must survive is its one instance being stopped and
 * replaced mid-stream: a clean stop and a new start on the same file, and a SIGTERM to the CLI
 * process while batches land. Bronze then equals the topics and Gold its recompute.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import path from 'node:path'
import { createInterface } from 'node:readline'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Config } from '../../../config/index.ts'
import { settlesWithin } from '../../../core/deadline.ts'
import { describeError } from '../../../core/errors.ts'
import { avroType, encodeFramed, latestSchema } from '../../../schemas/index.ts'
import { registerDerivedSchemas } from '../../../schemas/register.ts'
import { createSchemaRegistry } from '../../../schemas/registry.ts'
import { runScorer } from '../../../scoring/scorer-role.ts'
import type { ScorerRunSummary } from '../../../scoring/scorer-role.ts'
import type { ScorerService } from '../../../scoring/scorer.ts'
import type { RiskTier } from '../../../scoring/tiers.ts'
import { runIngest } from '../../../streams/ingest-role.ts'
import type { IngestRunSummary } from '../../../streams/ingest-role.ts'
import { createKafka } from '../../../streams/kafka.ts'
import { produceTraffic } from '../../../streams/producer.ts'
import { ensureProjectTopics } from '../../../streams/topics.ts'
import { waitFor } from '../../helpers/campaign.ts'
import { isolatedConfig, logger, recordingLogger } from '../../helpers/context.ts'
import { assertBronzeEqualsTopics, assertLakehouseConsistent } from '../../helpers/lakehouse.ts'
import { seededRandom } from '../../helpers/random.ts'
import { trainPromoted } from '../../helpers/scoring.ts'
import { TIERS, assertScorerInvariants, clearTierVectors, vectorChange } from '../../helpers/scorer-invariants.ts'
import type { TierVector, TrackedSubscriber } from '../../helpers/scorer-invariants.ts'

const CLI = path.resolve(import.meta.dirname, '../../../cli/main.ts')
const LONG = process.env.CHURN_LONG === '1'
const SUBSCRIBERS = LONG ? 1000 : 300
/**
 * The scorer group's size after each change of membership, starting from one instance. In the
 * long run every third change follows the one before at once, while the group is still
 * rebalancing for it.
 */
const MEMBERSHIP = LONG ? [2, 3, 4, 3, 2, 1, 2, 3, 4, 3, 2, 3, 4, 3, 2, 1, 2, 3, 2, 3, 4, 3, 2, 3] : [2, 3, 2]
/** Changelog records every 100 ms. */
const RECORDS_PER_TICK = LONG ? 90 : 30

describe('consumer instances joining and leaving mid-stream', () => {
  describe('when scorers join and leave the group', () => {
    let config: Config
    let cleanup: () => Promise<void>
    let changelogId: number
    let vectors: Record<RiskTier, TierVector[]>
    before(async () => {
      ({ config, cleanup } = await isolatedConfig({ TOPIC_PARTITIONS: '6', KAFKA_SESSION_TIMEOUT_MS: '6000', MODEL_POLL_MS: '500' }, 'rebalance'))
      const { set, outcome } = await trainPromoted(config)
      vectors = clearTierVectors(config, set, outcome.artifact)
      const derived = await registerDerivedSchemas({ registry: createSchemaRegistry({ url: config.registry.url }), url: config.registry.url, topics: config.topics })
      changelogId = derived.find(d => d.name === 'feature-changelog')?.latestId ?? -1
      await ensureProjectTopics(createKafka({ brokers: config.kafka.brokers, clientId: 'test-topics', logger }), config.topics)
    }, { timeout: 90_000 })
    after(async () => { await cleanup() })

    it(`loses no tier change and makes no second job through ${MEMBERSHIP.length} changes of membership`, { timeout: LONG ? 1_200_000 : 240_000 }, async () => {
      const random = seededRandom(2718)
      const kafka = createKafka({ brokers: config.kafka.brokers, clientId: 'test-rebalance', logger })
      const admin = kafka.admin()
      const producer = kafka.producer({ idempotent: true })
      const type = avroType((await latestSchema('feature-changelog')).schema)
      const subscribers: TrackedSubscriber[] = Array.from({ length: SUBSCRIBERS }, (_, i) => ({ id: `SUB-RB${String(i).padStart(4, '0')}`, versions: [] }))
      const scorers: Array<{ stop: AbortController, running: Promise<ScorerRunSummary>, service?: ScorerService, tail: () => string }> = []
      const start = (): void => {
        const stop = new AbortController()
        // Each instance keeps its own log, for the message when it does not stop.
        const recorder = recordingLogger()
        const scorer: (typeof scorers)[number] = { stop, running: Promise.resolve() as unknown as Promise<ScorerRunSummary>, tail: recorder.tail }
        scorer.running = runScorer({ config, logger: recorder.logger, signal: stop.signal, onStarted: s => { scorer.service = s } })
        scorers.push(scorer)
      }
      /**
       * An instance asked to stop returns within its bounded shutdown (Kafka clients 15 s each,
       * the lag 5 s, the campaign queues), or the test fails with what it was doing.
       */
      const stopped = async (scorer: (typeof scorers)[number]): Promise<ScorerRunSummary> => {
        if (!await settlesWithin(scorer.running, 60_000)) assert.fail(`a scorer did not stop within 60 s of its abort; its log:\n${scorer.tail()}`)
        return await scorer.running
      }
      const scored = (): number => scorers.reduce((sum, s) => sum + (s.service?.stats.scored ?? 0), 0)
      /** The group as last described, for a wait that runs out. */
      let group = 'not described yet'
      /** Members of a stable group, or -1 while it rebalances. */
      const members = async (): Promise<number> => {
        const { groups } = await admin.describeGroups([config.scorer.groupId])
        group = `${groups[0]?.state ?? 'no group'} with ${groups[0]?.members.length ?? 0} member(s)`
        return groups[0]?.state === 'Stable' ? groups[0].members.length : -1
      }
      /** What each running instance last logged, progress reports aside. */
      const logs = (): string => scorers.map((s, i) => {
        if (s.stop.signal.aborted) return `instance ${i}: stopped`
        const lines = s.tail().split('\n').filter(line => !line.includes('"scorer progress"') && !line.includes('drift above'))
        return `instance ${i}:\n${lines.slice(-12).join('\n')}`
      }).join('\n')
      /** Waits for a stable group of `target`; if that runs out, says what the group and each instance were doing. */
      const stableGroupOf = async (target: number): Promise<void> => {
        try {
          await waitFor(async () => await members() === target, { timeoutMs: 30_000, what: `a stable group of ${target}` })
        } catch (error) {
          if (error instanceof Error) error.message = `${error.message}: the group is ${group}; ${logs()}`
          throw error
        }
      }
      // The stream: every 100 ms a new version for RECORDS_PER_TICK subscribers, until stopped.
      let producing = true
      let produced = 0
      let cursor = 0
      const streamRecords = async (): Promise<void> => {
        while (producing) {
          const messages = []
          cursor += random.int(1, SUBSCRIBERS)
          for (let k = 0; k < RECORDS_PER_TICK; k++) {
            const s = subscribers[(cursor + k) % SUBSCRIBERS] as TrackedSubscriber
            const vector = random.pick(vectors[random.pick(TIERS)])
            s.versions.push(vector)
            messages.push({ key: s.id, value: encodeFramed(changelogId, type, vectorChange(s.id, s.versions.length, vector)) })
          }
          await producer.send({ topic: config.topics.features, acks: -1, messages })
          produced += messages.length
          await sleep(100)
        }
      }
      let stream: Promise<void> = Promise.resolve()
      const timeline: string[] = []
      try {
        await admin.connect()
        await producer.connect()
        stream = streamRecords()
        start()
        await waitFor(() => scored() > 0, { timeoutMs: 30_000, what: 'the first scorer to score' })
        await stableGroupOf(1)
        // Instances that have not been asked to stop, oldest first.
        const live = (): Array<(typeof scorers)[number]> => scorers.filter(s => !s.stop.signal.aborted)
        for (const [change, target] of MEMBERSHIP.entries()) {
          const before = produced
          if (target > live().length) {
            assert.equal(target, live().length + 1, 'one instance joins at a time')
            start()
          } else {
            // One instance leaves while records keep coming: in the short run the second, as ever;
            // in the long one any of them, the first included.
            const leaving = LONG ? random.pick(live()) : live()[1]
            assert.ok(leaving !== undefined)
            assert.equal(target, live().length - 1, 'one instance leaves at a time')
            leaving.stop.abort()
            await stopped(leaving)
          }
          if (LONG && change % 3 === 1) {
            timeline.push(`${target} members, the next change at once`)
            continue
          }
          await stableGroupOf(target)
          timeline.push(`${target} members after ${produced - before} records streamed`)
          const mark = scored()
          await waitFor(() => scored() > mark + 50, { timeoutMs: 30_000, what: `scoring with ${target} members` })
        }
        producing = false
        await stream
        await waitFor(async () => await (live()[0]?.service?.lag() ?? Promise.resolve(-1)) === 0, { timeoutMs: 60_000, what: 'the group to catch up' })
      } finally {
        producing = false
        await stream.catch(() => {})
        for (const s of scorers) s.stop.abort()
        await Promise.allSettled(scorers.map(stopped))
        await producer.disconnect().catch(() => {})
        await admin.disconnect().catch(() => {})
      }
      for (const s of scorers) assert.equal((await stopped(s)).failing, 0)
      const slowStops = scorers.reduce((sum, s) => sum + s.tail().split('CHURN_SCORE_STOP_TIMEOUT').length - 1, 0)
      timeline.push(`${slowStops} Kafka client(s) left behind at a stop`)
      const counts = await assertScorerInvariants(config, subscribers)
      const versions = subscribers.reduce((sum, s) => sum + s.versions.length, 0)
      assert.equal(versions, produced)
      process.stderr.write(`# scorer rebalance test: ${produced} changelog records, ${counts.events} churn-risk events (${counts.redelivered} redelivered), ${counts.jobs} jobs; ${timeline.join('; ')}\n`)
    })
  })

  describe('when the one ingest instance is stopped and replaced mid-stream', () => {
    let config: Config
    let env: Record<string, string | undefined>
    let cleanup: () => Promise<void>
    before(async () => {
      ({ config, env, cleanup } = await isolatedConfig({ TOPIC_PARTITIONS: '3', INGEST_BATCH_MESSAGES: '1500' }, 'rebalance'))
      // Topics first: the producer and the first ingest must not race to create them.
      await ensureProjectTopics(createKafka({ brokers: config.kafka.brokers, clientId: 'test-topics', logger }), config.topics)
    }, { timeout: 90_000 })
    after(async () => { await cleanup() })

    it('lands every event once through a clean stop and restart and a SIGTERM during a batch', { timeout: 150_000 }, async () => {
      // Traffic flows until the last replacement is under way, so every instance lands some of it.
      const traffic = new AbortController()
      const producing = produceTraffic({ config, logger, subscribers: 3000, rate: 3000, horizonMs: 4000, seed: 5, signal: traffic.signal })
      let producerDone = false
      let producerError: unknown
      void producing.then(() => { producerDone = true }, (error: unknown) => { producerDone = true; producerError = error })
      const flowing = (): void => { if (producerError !== undefined) throw new Error(`the traffic producer failed: ${describeError(producerError)}`) }
      const runs: Array<{ how: string, batches: number, whileProducing: boolean }> = []

      try {
        // 1. In process: stopped cleanly after two batches, then started again on the same file.
        for (let run = 0; run < 2; run++) {
          const stop = new AbortController()
          let batches = 0
          const summary: Promise<IngestRunSummary> = runIngest({ config, logger, signal: stop.signal, onBatch: () => { batches++ } })
          try {
            await waitFor(() => { flowing(); return batches >= 2 }, { timeoutMs: 60_000, what: `two batches in run ${run + 1}` })
            runs.push({ how: 'stopped', batches, whileProducing: !producerDone })
          } finally {
            stop.abort()
          }
          assert.equal((await summary).failing, 0)
        }

        // 2. The CLI process, sent SIGTERM right after its second batch landed, while the next one lands.
        const child = spawn(process.execPath, [CLI, 'ingest'], { env: { ...env, LOG_LEVEL: 'debug', LOG_FORMAT: 'json' }, stdio: ['ignore', 'ignore', 'pipe'] })
        const exited = new Promise<number | null>(resolve => child.once('exit', code => { resolve(code) }))
        let landed = 0
        const log: string[] = []
        createInterface({ input: child.stderr as NodeJS.ReadableStream }).on('line', line => {
          if (line.includes('"micro-batch landed"')) landed++
          else if (log.length < 40 && !line.includes('"level":20')) log.push(line)
        })
        try {
          await waitFor(() => { flowing(); return landed >= 2 || child.exitCode !== null }, { timeoutMs: 60_000, what: 'two batches landed by the CLI' })
          assert.equal(child.exitCode, null, `ingest exited by itself: ${log.join('\n')}`)
          child.kill('SIGTERM')
          assert.equal(await exited, 0, `ingest exits cleanly on SIGTERM: ${log.join('\n')}`)
        } finally {
          if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
        }
        runs.push({ how: 'SIGTERM', batches: landed, whileProducing: !producerDone })
      } finally {
        traffic.abort()
      }

      // 3. The replacement runs until the traffic is over and it has caught up.
      const produced = await producing
      const final = await runIngest({ config, logger, untilCaughtUp: true })
      assert.equal(final.lag, 0)
      const landedTotal = await assertBronzeEqualsTopics(config, logger)
      assert.equal(landedTotal, produced.sent)
      await assertLakehouseConsistent(config)
      assert.ok(runs.every(r => r.whileProducing), `every instance replaced while traffic flowed: ${JSON.stringify(runs)}`)
      process.stderr.write(`# ingest replacement test: ${produced.sent} events, runs ${JSON.stringify(runs)}\n`)
    })
  })
})
