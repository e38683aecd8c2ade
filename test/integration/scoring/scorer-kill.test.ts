/**
 * The scorer under SIGKILL: `churn score` runs as its own process while waves of feature changelog
 * records arrive, and is killed in the middle of scoring a wave (after 1-3 partitions' churn-risk
 * events went out, before the wave is committed); every third kill, from the second, comes while
 * Redis stalls writes, so it lands for certain inside a batch, before its Redis writes (the jobs,
 * the store) are done. The next wave arrives while the scorer is down, as records do in production;
 * then it is restarted. A last wave is scored by `churn score --until-caught-up`.
 *
 * Every subscriber's versions move between feature vectors whose scores sit clearly inside one tier
 * (outside the hysteresis bands), so the tier of a version is a function of its vector alone and
 * the expected state is known without the scorer. Whenever the scorer has caught up (after every
 * wave, and at the end) the test checks the crash property the scorer's header promises
 * (test/helpers/scorer-invariants.ts):
 * - the online store holds each subscriber's newest version and the tier its vector gives;
 * - the last churn-risk event on the topic for each subscriber carries the tier and probability
 *   the store says were last announced (none when nothing was): no tier change is lost, so a
 *   consumer of the topic always ends up with each subscriber's current tier;
 * - every event's tier and probability are those of its version's vector; at most one campaign job
 *   per channel, subscriber and tier (the cooldown covers the whole test); exactly one job for
 *   every (subscriber, tier) announced as high or medium, for an event that is on the topic.
 *
 * Short by default (3 kills over 9 waves of 480 subscribers); with CHURN_LONG=1, 10 kills over 26
 * waves of 4,000 subscribers (about 200,000 changelog records).
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Admin, Producer } from 'kafkajs'
import type { Config } from '../../../config/index.ts'
import { createRedis } from '../../../core/redis.ts'
import { avroType, latestSchema } from '../../../schemas/index.ts'
import { encodeFramed } from '../../../schemas/codec.ts'
import { registerDerivedSchemas } from '../../../schemas/register.ts'
import { createSchemaRegistry } from '../../../schemas/registry.ts'
import type { RiskTier } from '../../../scoring/tiers.ts'
import { createKafka } from '../../../streams/kafka.ts'
import { ensureProjectTopics } from '../../../streams/topics.ts'
import { waitFor } from '../../helpers/campaign.ts'
import { isolatedConfig, logger } from '../../helpers/context.ts'
import { startRole } from '../../helpers/private-services.ts'
import type { RoleProcess } from '../../helpers/private-services.ts'
import { seededRandom, spacedDraws } from '../../helpers/random.ts'
import { trainPromoted } from '../../helpers/scoring.ts'
import { ChurnRiskReader, TIERS, assertScorerInvariants, clearTierVectors, unannouncedSubscribers, vectorChange } from '../../helpers/scorer-invariants.ts'
import type { ScorerInvariantCounts, TierVector, TrackedSubscriber } from '../../helpers/scorer-invariants.ts'

const LONG = process.env.CHURN_LONG === '1'
const KILLS = LONG ? 10 : 3
/** Waves 0..WAVES-1; the last one is scored by `--until-caught-up`. */
const WAVES = LONG ? 26 : 9
const SUBSCRIBERS = LONG ? 4000 : 480
/** How long the scorer may take to catch up with a wave (a long wave is 8,000 records). */
const CATCH_UP_MS = LONG ? 300_000 : 60_000

interface Subscriber extends TrackedSubscriber {
  /** The tier of the even waves' last version, and of the odd waves'. */
  home: RiskTier
  away: RiskTier
}

let config: Config
let env: Record<string, string | undefined>
let cleanup: () => Promise<void>
let changelogId: number
let vectors: Record<RiskTier, TierVector[]>

/** High watermark per partition. */
async function highs (admin: Admin, topic: string): Promise<Map<number, number>> {
  return new Map((await admin.fetchTopicOffsets(topic)).map(o => [o.partition, Number(o.high)]))
}

/** Messages on the changelog the scorer group has not committed. */
async function scorerLag (admin: Admin): Promise<number> {
  const high = await admin.fetchTopicOffsets(config.topics.features)
  const [committed] = await admin.fetchOffsets({ groupId: config.scorer.groupId, topics: [config.topics.features] })
  let lag = 0
  for (const p of high) {
    const c = Number(committed?.partitions.find(x => x.partition === p.partition)?.offset ?? '-1')
    lag += Number(p.high) - (c < 0 ? Number(p.low) : c)
  }
  return lag
}

/** `churn score` as its own process (JSON logs at info, kept for failure messages). */
function startScorer (args: string[] = []): RoleProcess {
  return startRole(['score', ...args], { ...env, LOG_LEVEL: 'info' })
}

describe('scorer under SIGKILL', () => {
  before(async () => {
    ({ config, env, cleanup } = await isolatedConfig({ KAFKA_SESSION_TIMEOUT_MS: '6000', MODEL_POLL_MS: '500' }))
    const { set, outcome } = await trainPromoted(config)
    vectors = clearTierVectors(config, set, outcome.artifact)
    const derived = await registerDerivedSchemas({ registry: createSchemaRegistry({ url: config.registry.url }), url: config.registry.url, topics: config.topics })
    changelogId = derived.find(d => d.name === 'feature-changelog')?.latestId ?? -1
    await ensureProjectTopics(createKafka({ brokers: config.kafka.brokers, clientId: 'test-topics', logger }), config.topics)
  }, { timeout: 180_000 })
  after(async () => { await cleanup() }, { timeout: 120_000 })

  it(`loses no tier change and makes no second job through ${KILLS} SIGKILLs mid-wave`, { timeout: LONG ? 3_600_000 : 600_000 }, async () => {
    const random = seededRandom(4242)
    const kafka = createKafka({ brokers: config.kafka.brokers, clientId: 'test-scorer-kill', logger })
    const admin = kafka.admin()
    const producer: Producer = kafka.producer()
    const redis = createRedis({ url: config.redis.url })
    const changelogType = avroType((await latestSchema('feature-changelog')).schema)
    const children: RoleProcess[] = []
    // An independent consumer of the churn-risk topic, reading from the start for the whole test.
    const risk = await ChurnRiskReader.open(config)
    try {
      await admin.connect()
      await producer.connect()

      const subscribers: Subscriber[] = []
      for (let i = 0; i < SUBSCRIBERS; i++) {
        const home = random.pick(TIERS)
        // Most subscribers move between two tiers every wave; some keep theirs.
        const away = random.chance(0.15) ? home : random.pick(TIERS.filter(t => t !== home))
        subscribers.push({ id: `SUB-K${String(i).padStart(5, '0')}`, home, away, versions: [] })
      }

      /** One to three new versions per subscriber; the last one in the wave's tier. */
      const produceWave = async (wave: number): Promise<number> => {
        const rounds: Array<Array<{ key: string, value: Buffer }>> = [[], [], []]
        for (const s of subscribers) {
          const count = random.int(1, 3)
          for (let n = 0; n < count; n++) {
            const last = n === count - 1
            const vector = random.pick(vectors[last ? (wave % 2 === 0 ? s.home : s.away) : random.pick(TIERS)])
            s.versions.push(vector)
            ;(rounds[n] as Array<{ key: string, value: Buffer }>).push({ key: s.id, value: encodeFramed(changelogId, changelogType, vectorChange(s.id, s.versions.length, vector)) })
          }
        }
        // Interleaved across subscribers, each subscriber's versions in order (sends in sequence,
        // small enough for the broker's request limit).
        const messages = rounds.flat()
        for (let i = 0; i < messages.length; i += 1000) await producer.send({ topic: config.topics.features, acks: -1, messages: messages.slice(i, i + 1000) })
        return messages.length
      }

      const kills: Array<{ wave: number, afterPartitions: number, stalled: boolean, lag: number, unfinished: number }> = []
      let counts: ScorerInvariantCounts = { events: 0, redelivered: 0, jobs: 0 }

      /** Waits until the scorer has committed everything, then checks the crash property. */
      const checkpoint = async (label: string, scorer: RoleProcess | undefined): Promise<void> => {
        try {
          await waitFor(async () => {
            if (scorer !== undefined && !scorer.alive()) throw new Error(`the scorer exited during ${label}: ${scorer.tail()}`)
            return await scorerLag(admin) === 0
          }, { timeoutMs: CATCH_UP_MS, what: `the scorer to catch up (${label})` })
        } catch (error) {
          // What the scorer was doing, for a wait that ran out.
          if (error instanceof Error && scorer !== undefined) error.message = `${error.message}; lag ${await scorerLag(admin).catch(() => -1)}; the scorer's log:\n${scorer.tail()}`
          throw error
        }
        try {
          counts = await assertScorerInvariants(config, subscribers, { risk })
        } catch (error) {
          if (error instanceof assert.AssertionError) {
            const at = `${label} (kills so far: ${JSON.stringify(kills)})`
            error.message = `${at}: ${error.message}`
            error.stack = `${at}: ${error.stack ?? ''}`
          }
          throw error
        }
      }

      // Waves 1..WAVES-3 that are killed mid-scoring, never two in a row (the wave after a kill
      // arrives while the scorer is down).
      const killWaves = spacedDraws(random, KILLS, 1, WAVES - 3, 2)
      let produced = 0

      let scorer = startScorer()
      children.push(scorer)
      for (let wave = 0; wave < WAVES - 1; wave++) {
        if (!killWaves.includes(wave)) {
          produced += await produceWave(wave)
          await checkpoint(`wave ${wave}`, scorer)
          continue
        }
        // Kill once the scorer has published the events of 1-3 partitions' batches of this wave:
        // inside a batch (enqueuing, writing the store, committing) or between two.
        const baseline = await highs(admin, config.topics.churnRisk)
        const afterPartitions = random.int(1, 3)
        produced += await produceWave(wave)
        const running = scorer
        // Polled without pause: the kill should land while the wave is being scored.
        const deadline = Date.now() + CATCH_UP_MS
        for (;;) {
          if (!running.alive()) throw new Error(`the scorer exited by itself: ${running.tail()}`)
          const now = await highs(admin, config.topics.churnRisk)
          if ([...now].filter(([p, h]) => h > (baseline.get(p) ?? 0)).length >= afterPartitions) break
          if (Date.now() > deadline) throw new Error(`no churn-risk events from ${afterPartitions} partition(s) in wave ${wave} within ${CATCH_UP_MS} ms`)
          await sleep(1)
        }
        // Every third kill, from the second, lands inside a batch for certain: Redis stops taking
        // writes (a real stall of the real server, as in a failover), so the scorer, having
        // published a partition's events, waits on enqueueing their jobs; it is killed there.
        const stalled = kills.length % 3 === 1
        if (stalled) {
          const published = await highs(admin, config.topics.churnRisk)
          await redis.call('CLIENT', 'PAUSE', '5000', 'WRITE')
          const until = Date.now() + 500
          while (Date.now() < until && [...await highs(admin, config.topics.churnRisk)].every(([p, h]) => h === published.get(p))) await sleep(5)
        } else {
          await sleep(random.int(0, 5))
        }
        try {
          assert.ok(running.alive(), 'the scorer is running when killed')
          running.child.kill('SIGKILL')
          assert.equal(await running.exited, null, 'killed, not exited')
          assert.equal(running.child.signalCode, 'SIGKILL')
        } finally {
          if (stalled) await redis.call('CLIENT', 'UNPAUSE')
        }
        // For the report: subscribers whose events went out in a batch the killed scorer did not
        // finish (what the restart has to make good).
        const unfinished = (await unannouncedSubscribers(config, subscribers, risk)).length
        const lag = await scorerLag(admin)
        kills.push({ wave, afterPartitions, stalled, lag, unfinished })
        assert.ok(lag > 0, `the scorer was killed mid-stream in wave ${wave} (it had not committed the wave)`)
        // The next wave arrives while the scorer is down; the restarted scorer replays the killed
        // batches with it.
        produced += await produceWave(++wave)
        scorer = startScorer()
        children.push(scorer)
        await checkpoint(`restart after the kill in wave ${wave - 1}`, scorer)
      }
      assert.equal(kills.length, KILLS)

      // Stop the long-running scorer cleanly; a last wave is scored by --until-caught-up.
      assert.equal(await scorer.stop(), 0, `the scorer stops on SIGTERM: ${scorer.tail()}`)
      produced += await produceWave(WAVES - 1)
      const final = startScorer(['--until-caught-up'])
      children.push(final)
      assert.equal(await final.exited, 0, `the final run catches up and exits: ${final.tail()}`)
      await checkpoint('the end', undefined)

      const versions = subscribers.reduce((sum, s) => sum + s.versions.length, 0)
      assert.equal(versions, produced)
      process.stderr.write(`# scorer kill test${LONG ? ' (long)' : ''}: ${KILLS} SIGKILLs survived, ${WAVES} waves, ${SUBSCRIBERS} subscribers, ${produced} changelog records, ${counts.events} churn-risk events (${counts.redelivered} redelivered), ${counts.jobs} jobs, kills ${JSON.stringify(kills)}\n`)
    } finally {
      for (const c of children) if (c.alive()) c.child.kill('SIGKILL')
      await risk.close()
      await producer.disconnect().catch(() => {})
      await admin.disconnect().catch(() => {})
      await redis.call('CLIENT', 'UNPAUSE').catch(() => {})
      redis.disconnect()
    }
  })
})
