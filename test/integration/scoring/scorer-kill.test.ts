/**
 * The scorer under SIGKILL: `churn score` runs as its own process while waves of feature changelog
 * records arrive, and is killed in the middle of scoring a wave (after 1-3 partitions' churn-risk
 * events went out, before the wave is committed); the second kill comes while Redis stalls writes,
 * so it lands for certain inside a batch, before its Redis writes (the jobs, the store) are done. The next wave
 * arrives while the scorer is down, as records do in production; then it is restarted. A last wave
 * is scored by `churn score --until-caught-up`.
 *
 * Every subscriber's versions move between feature vectors whose scores sit clearly inside one tier
 * (outside the hysteresis bands), so the tier of a version is a function of its vector alone and
 * the expected state is known without the scorer. Whenever the scorer has caught up (after every
 * wave, and at the end) the test checks the crash property the scorer's header promises:
 * - the online store holds each subscriber's newest version and the tier its vector gives;
 * - the last churn-risk event on the topic for each subscriber carries the tier and probability
 *   the store says were last announced (none when nothing was): no tier change is lost, so a
 *   consumer of the topic always ends up with each subscriber's current tier;
 * and at the end: every event's tier and probability are those of its version's vector; at most one
 * campaign job per channel, subscriber and tier (the cooldown covers the whole test); exactly one
 * job for every (subscriber, tier) announced as high or medium, for an event that is on the topic.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import path from 'node:path'
import { createInterface } from 'node:readline'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Admin, Consumer, Producer } from 'kafkajs'
import type { Config } from '../../../config/index.ts'
import { createRedis } from '../../../core/redis.ts'
import { DAY_MS, DAYS_SINCE_LAST_ACTIVITY } from '../../../lakehouse/features.ts'
import { AvroCodec, avroType, latestSchema } from '../../../schemas/index.ts'
import { encodeFramed } from '../../../schemas/codec.ts'
import { registerDerivedSchemas } from '../../../schemas/register.ts'
import { createSchemaRegistry } from '../../../schemas/registry.ts'
import type { ChurnRiskEvent, FeatureChange } from '../../../schemas/types.generated.ts'
import { CHANNELS, TIER_CHANNELS, campaignJobId } from '../../../scoring/campaign.ts'
import type { Channel } from '../../../scoring/campaign.ts'
import { campaignQueues } from '../../../scoring/queues.ts'
import { OnlineStore } from '../../../scoring/store.ts'
import type { StoredState } from '../../../scoring/store.ts'
import { nextTier, tierOf } from '../../../scoring/tiers.ts'
import type { RiskTier } from '../../../scoring/tiers.ts'
import { createKafka } from '../../../streams/kafka.ts'
import { ensureProjectTopics } from '../../../streams/topics.ts'
import { ChurnModel } from '../../../training/model.ts'
import { lakehouseFeatureHash } from '../../../training/sets.ts'
import { isolatedConfig, logger } from '../../helpers/context.ts'
import { seededRandom } from '../../helpers/random.ts'
import { trainPromoted } from '../../helpers/scoring.ts'

const CLI = path.resolve(import.meta.dirname, '../../../cli/main.ts')
const KILLS = 3
/** Waves 0..WAVES-1; the last one is scored by `--until-caught-up`. */
const WAVES = 9
const SUBSCRIBERS = 480
const TIERS: readonly RiskTier[] = ['low', 'medium', 'high']

/** A feature vector from the training set whose score lies well inside one tier. */
interface Vector { named: Record<string, number | null>, probability: number, tier: RiskTier }

interface Subscriber {
  id: string
  /** The tier of the even waves' last version, and of the odd waves'. */
  home: RiskTier
  away: RiskTier
  /** Every version produced so far, in order (version n at index n - 1). */
  versions: Vector[]
}

interface RiskMessage { partition: number, offset: number, value: Buffer }

let config: Config
let env: Record<string, string | undefined>
let cleanup: () => Promise<void>
let changelogId: number
const vectors: Record<RiskTier, Vector[]> = { low: [], medium: [], high: [] }

interface ScorerChild { child: ChildProcess, exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }>, log: string[] }

/** Starts `churn score` as its own process (JSON logs at info, kept for failure messages). */
function startScorer (args: string[] = []): ScorerChild {
  const child = spawn(process.execPath, [CLI, 'score', ...args], {
    env: { ...env, LOG_LEVEL: 'info', LOG_FORMAT: 'json' },
    stdio: ['ignore', 'ignore', 'pipe']
  })
  const log: string[] = []
  createInterface({ input: child.stderr as NodeJS.ReadableStream }).on('line', line => {
    if (log.length < 40) log.push(line)
  })
  const exited = new Promise<{ code: number | null, signal: NodeJS.Signals | null }>(resolve => child.once('exit', (code, signal) => { resolve({ code, signal }) }))
  return { child, exited, log }
}

async function waitFor (condition: () => Promise<boolean> | boolean, what: string, timeoutMs: number, everyMs = 50): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!await condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(everyMs)
  }
}

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

function change (subscriberId: string, version: number, vector: Vector): FeatureChange {
  const features = { ...vector.named }
  delete features[DAYS_SINCE_LAST_ACTIVITY]
  // Fresh features: days since last activity is ~0 when scored, as the vectors were scored.
  const featureTime = Date.now()
  return { subscriberId, version, featureTime, firstEventTime: featureTime - 20 * DAY_MS, updatedAt: featureTime, features: features as unknown as FeatureChange['features'], featureHash: lakehouseFeatureHash() }
}

describe('scorer under SIGKILL', () => {
  before(async () => {
    ({ config, env, cleanup } = await isolatedConfig({ KAFKA_SESSION_TIMEOUT_MS: '6000', MODEL_POLL_MS: '500' }))
    const { set, outcome } = await trainPromoted(config)
    const model = new ChurnModel(outcome.artifact)
    const columns = set.schema.names.length
    const { high, medium, hysteresis } = config.risk
    // Scores clear of the thresholds and of their hysteresis bands, so the tier does not depend
    // on the tier before (nextTier = tierOf) nor on the seconds between producing and scoring.
    const clear = (p: number): boolean => p < medium - hysteresis - 0.02 || (p >= medium + 0.02 && p < high - hysteresis - 0.02) || p >= high + 0.02
    const score = (named: Record<string, number | null>, days: number): number => model.predict(model.vector(model.names.map(n => n === DAYS_SINCE_LAST_ACTIVITY ? days : named[n] ?? null)))
    const seen = new Set<number>()
    for (let r = 0; r < set.rows; r++) {
      const named: Record<string, number | null> = Object.fromEntries(set.schema.names.map((n, c) => { const v = set.x[r * columns + c] as number; return [n, Number.isNaN(v) ? null : v] }))
      named[DAYS_SINCE_LAST_ACTIVITY] = 0
      const probability = score(named, 0)
      if (!clear(probability) || score(named, 0.01) !== probability || seen.has(probability)) continue
      seen.add(probability)
      const tier = tierOf(probability, config.risk)
      for (const current of [null, ...TIERS]) assert.equal(nextTier(probability, current, config.risk), tier)
      if (vectors[tier].length < 4) vectors[tier].push({ named, probability, tier })
    }
    for (const tier of TIERS) assert.ok(vectors[tier].length >= 2, `training rows scoring clearly ${tier}: ${vectors[tier].length}`)

    const derived = await registerDerivedSchemas({ registry: createSchemaRegistry({ url: config.registry.url }), url: config.registry.url, topics: config.topics })
    changelogId = derived.find(d => d.name === 'feature-changelog')?.latestId ?? -1
    await ensureProjectTopics(createKafka({ brokers: config.kafka.brokers, clientId: 'test-topics', logger }), config.topics)
  })
  after(async () => { await cleanup() })

  it(`loses no tier change and makes no second job through ${KILLS} SIGKILLs mid-wave`, async () => {
    const random = seededRandom(4242)
    const kafka = createKafka({ brokers: config.kafka.brokers, clientId: 'test-scorer-kill', logger })
    const admin = kafka.admin()
    const producer: Producer = kafka.producer()
    const watcher: Consumer = kafka.consumer({ groupId: `test-risk-watch-${config.redis.prefix}`, maxWaitTimeInMs: 100 })
    const redis = createRedis({ url: config.redis.url })
    const store = new OnlineStore(redis, config.redis.prefix)
    const codec = new AvroCodec({ registryUrl: config.registry.url })
    const riskReader = avroType((await latestSchema('churn-risk')).schema)
    const changelogType = avroType((await latestSchema('feature-changelog')).schema)
    const children: ScorerChild[] = []
    try {
      await admin.connect()
      await producer.connect()

      // An independent consumer of the churn-risk topic, reading from the start for the whole test.
      const risk: RiskMessage[] = []
      const consumed = new Map<number, number>()
      await watcher.connect()
      await watcher.subscribe({ topics: [config.topics.churnRisk], fromBeginning: true })
      await watcher.run({
        eachMessage: async ({ partition, message }) => {
          risk.push({ partition, offset: Number(message.offset), value: message.value as Buffer })
          consumed.set(partition, Number(message.offset) + 1)
          await Promise.resolve()
        }
      })

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
            ;(rounds[n] as Array<{ key: string, value: Buffer }>).push({ key: s.id, value: encodeFramed(changelogId, changelogType, change(s.id, s.versions.length, vector)) })
          }
        }
        // Interleaved across subscribers, each subscriber's versions in order.
        const messages = rounds.flat()
        await producer.send({ topic: config.topics.features, acks: -1, messages })
        return messages.length
      }

      const kills: Array<{ wave: number, afterPartitions: number, stalled: boolean, lag: number, unfinished: number }> = []
      const decoded = new Map<string, ChurnRiskEvent>()
      const events = async (): Promise<Array<ChurnRiskEvent & { at: RiskMessage }>> => {
        const fresh = risk.filter(m => !decoded.has(`${m.partition}/${m.offset}`))
        await codec.loadWriters(fresh.map(m => m.value.readInt32BE(1)))
        for (const m of fresh) decoded.set(`${m.partition}/${m.offset}`, codec.decode<ChurnRiskEvent>(m.value, riskReader).value)
        return [...risk].sort((a, b) => a.partition - b.partition || a.offset - b.offset).map(m => ({ ...decoded.get(`${m.partition}/${m.offset}`) as ChurnRiskEvent, at: m }))
      }

      /** Each subscriber's events on the topic (read to its end), and what the store holds. */
      const readBack = async (label: string): Promise<{ byId: Map<string, Array<ChurnRiskEvent & { at: RiskMessage }>>, states: Array<StoredState | null> }> => {
        const riskHighs = await highs(admin, config.topics.churnRisk)
        await waitFor(() => [...riskHighs].every(([p, h]) => (consumed.get(p) ?? 0) >= h), `the churn-risk topic read to its end (${label})`, 30_000, 20)
        const byId = new Map<string, Array<ChurnRiskEvent & { at: RiskMessage }>>()
        for (const e of await events()) {
          const list = byId.get(e.subscriberId) ?? []
          list.push(e)
          byId.set(e.subscriberId, list)
        }
        return { byId, states: await store.states(subscribers.map(s => s.id)) }
      }
      const story = (s: Subscriber, own: Array<ChurnRiskEvent & { at: RiskMessage }>, state: StoredState | null): string =>
        `events ${JSON.stringify(own.map(e => `v${e.featureVersion}:${e.tier}<-${e.previousTier ?? '-'}@${e.at.partition}/${e.at.offset}`))}, version tiers ${s.versions.map(v => v.tier[0]).join('')}, store ${JSON.stringify(state)}`
      /** Subscribers whose last event on the topic is not the tier and probability the store says were last announced. */
      const unannounced = (byId: Map<string, Array<ChurnRiskEvent & { at: RiskMessage }>>, states: Array<StoredState | null>): string[] => {
        const problems: string[] = []
        for (const [i, s] of subscribers.entries()) {
          const state = states[i] ?? null
          const own = byId.get(s.id) ?? []
          const last = own[own.length - 1]
          const announced = state?.emittedProbability ?? null
          if (last === undefined ? announced !== null : last.tier !== state?.tier || last.probability !== announced) {
            problems.push(`${s.id}: the last event on the topic (${last === undefined ? 'none' : `v${last.featureVersion} ${last.tier} p=${last.probability}`}) is not what the store last announced (${state?.tier ?? 'nothing'} p=${announced ?? 'none'}); ${story(s, own, state)}`)
          }
        }
        return problems
      }

      /** Waits until the scorer has committed everything and the watcher has read every event, then checks the crash property. */
      const checkpoint = async (label: string, scorer: ScorerChild | undefined): Promise<void> => {
        await waitFor(async () => {
          if (scorer !== undefined && scorer.child.exitCode !== null) throw new Error(`the scorer exited during ${label}: ${scorer.log.join('\n')}`)
          return await scorerLag(admin) === 0
        }, `the scorer to catch up (${label})`, 60_000, 100)
        const { byId, states } = await readBack(label)
        const problems: string[] = []
        for (const [i, s] of subscribers.entries()) {
          const state = states[i] ?? null
          const newest = s.versions.length
          const expected = (s.versions[newest - 1] as Vector).tier
          const own = byId.get(s.id) ?? []
          if (state?.version !== newest) problems.push(`${s.id}: the store holds version ${state?.version ?? 'none'}, not ${newest}; ${story(s, own, state)}`)
          else if (state.tier !== expected) problems.push(`${s.id}: the store's tier is ${state.tier}, version ${newest} scores ${expected}; ${story(s, own, state)}`)
          if (new Set(own.map(e => e.at.partition)).size > 1) problems.push(`${s.id}: events on several partitions`)
        }
        assert.deepEqual(problems.slice(0, 5), [], `${label}: ${problems.length} subscriber(s) not at their newest version and its tier`)
        const lost = unannounced(byId, states)
        assert.deepEqual(lost.slice(0, 5), [], `${label}: ${lost.length} subscriber(s) whose last churn-risk event on the topic is not their current tier (kills so far: ${JSON.stringify(kills)})`)
      }

      // Waves 1..WAVES-2 that are killed mid-scoring, never two in a row (the wave after a kill
      // arrives while the scorer is down).
      let killWaves: number[]
      do {
        killWaves = [random.int(1, WAVES - 3), random.int(1, WAVES - 3), random.int(1, WAVES - 3)].sort((a, b) => a - b)
      } while (killWaves[1] as number - (killWaves[0] as number) < 2 || killWaves[2] as number - (killWaves[1] as number) < 2)
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
        await waitFor(async () => {
          if (running.child.exitCode !== null) throw new Error(`the scorer exited by itself: ${running.log.join('\n')}`)
          const now = await highs(admin, config.topics.churnRisk)
          return [...now].filter(([p, h]) => h > (baseline.get(p) ?? 0)).length >= afterPartitions
        }, `churn-risk events from ${afterPartitions} partition(s) in wave ${wave}`, 60_000, 1)
        // The second kill lands inside a batch for certain: Redis stops taking writes (a real
        // stall of the real server, as in a failover), so the scorer, having published a
        // partition's events, waits on enqueueing their jobs; it is killed there.
        const stalled = kills.length === 1
        if (stalled) {
          const published = await highs(admin, config.topics.churnRisk)
          await redis.call('CLIENT', 'PAUSE', '5000', 'WRITE')
          const until = Date.now() + 500
          while (Date.now() < until && [...await highs(admin, config.topics.churnRisk)].every(([p, h]) => h === published.get(p))) await sleep(5)
        } else {
          await sleep(random.int(0, 5))
        }
        try {
          assert.equal(running.child.exitCode, null, 'the scorer is running when killed')
          running.child.kill('SIGKILL')
          assert.deepEqual(await running.exited, { code: null, signal: 'SIGKILL' }, 'killed, not exited')
        } finally {
          if (stalled) await redis.call('CLIENT', 'UNPAUSE')
        }
        // For the report: subscribers whose events went out in a batch the killed scorer did not
        // finish (what the restart has to make good).
        const { byId, states } = await readBack(`the kill in wave ${wave}`)
        const unfinished = unannounced(byId, states).length
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
      scorer.child.kill('SIGTERM')
      assert.equal((await scorer.exited).code, 0, `the scorer stops on SIGTERM: ${scorer.log.join('\n')}`)
      produced += await produceWave(WAVES - 1)
      const final = startScorer(['--until-caught-up'])
      children.push(final)
      assert.equal((await final.exited).code, 0, `the final run catches up and exits: ${final.log.join('\n')}`)
      await checkpoint('the end', undefined)

      // Every event is the score of its version's vector.
      const all = await events()
      const ids = new Map(subscribers.map(s => [s.id, s]))
      for (const e of all) {
        const vector = ids.get(e.subscriberId)?.versions[e.featureVersion - 1]
        assert.ok(vector !== undefined, `event ${e.eventId} is for a produced version`)
        assert.equal(e.tier, vector.tier, `event ${e.eventId}`)
        assert.equal(e.probability, vector.probability, `event ${e.eventId}`)
        assert.equal(e.eventId, `${e.subscriberId}/${e.featureVersion}/1`)
        assert.equal(e.modelVersion, 1)
      }

      // Campaign jobs: at most one per channel, subscriber and tier; one for every announced
      // high or medium (subscriber, tier); each for an event on the topic.
      const eventIds = new Map(all.map(e => [e.eventId, e]))
      const announced = new Set(all.filter(e => e.tier !== 'low').map(e => `${TIER_CHANNELS[e.tier][0] as Channel}/${e.subscriberId}/${e.tier}`))
      const jobKeys = new Map<string, string>()
      const campaign = campaignQueues(config)
      let jobCount = 0
      try {
        for (const channel of CHANNELS) {
          const jobs = await campaign.queues[channel].getJobs(['waiting', 'active', 'delayed', 'prioritized', 'completed', 'failed', 'waiting-children'], 0, -1)
          const jobIds = jobs.map(j => j.id)
          assert.equal(new Set(jobIds).size, jobIds.length, `${channel}: no job id twice`)
          for (const job of jobs) {
            jobCount++
            const data = job.data
            assert.equal(data.channel, channel)
            assert.equal(job.id, campaignJobId(channel, data.event))
            assert.ok(TIER_CHANNELS[data.event.tier].includes(channel), `${job.id}: tier ${data.event.tier} triggers ${channel}`)
            assert.equal(eventIds.get(data.event.eventId)?.tier, data.event.tier, `${job.id}: its event is on the topic`)
            const key = `${channel}/${data.event.subscriberId}/${data.event.tier}`
            assert.ok(!jobKeys.has(key), `a second job for ${key}: ${jobKeys.get(key) ?? ''} and ${job.id ?? ''}`)
            jobKeys.set(key, job.id ?? '')
          }
        }
      } finally {
        await campaign.close()
      }
      const missing = [...announced].filter(k => !jobKeys.has(k))
      assert.deepEqual(missing.slice(0, 10), [], `${missing.length} announced (channel, subscriber, tier) without a campaign job`)
      assert.equal(jobKeys.size, announced.size)

      const replayed = all.length - new Set(all.map(e => e.eventId)).size
      process.stderr.write(`# scorer kill test: ${produced} changelog records, ${all.length} churn-risk events (${replayed} redelivered), ${jobCount} jobs, kills ${JSON.stringify(kills)}\n`)
    } finally {
      for (const c of children) if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill('SIGKILL')
      await watcher.disconnect().catch(() => {})
      await producer.disconnect().catch(() => {})
      await admin.disconnect().catch(() => {})
      await redis.call('CLIENT', 'UNPAUSE').catch(() => {})
      redis.disconnect()
    }
  })
})
