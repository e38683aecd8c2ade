/**
 * The scorer's crash and rebalance properties, checked from the outside once it has caught up:
 * feature vectors whose scores sit clearly inside one tier (so the expected tier of a version is
 * known without the scorer), and the checks on the store, the churn-risk topic and the campaign
 * queues that the scorer's header promises.
 */
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Type } from 'avsc'
import type { Consumer, Kafka } from 'kafkajs'
import type { Config } from '../../config/index.ts'
import { createRedis } from '../../core/redis.ts'
import { DAY_MS, DAYS_SINCE_LAST_ACTIVITY } from '../../lakehouse/features.ts'
import { AvroCodec, avroType, latestSchema } from '../../schemas/index.ts'
import type { ChurnRiskEvent, FeatureChange } from '../../schemas/types.generated.ts'
import { CHANNELS, TIER_CHANNELS, campaignJobId } from '../../scoring/campaign.ts'
import type { Channel } from '../../scoring/campaign.ts'
import { campaignQueues } from '../../scoring/queues.ts'
import { OnlineStore } from '../../scoring/store.ts'
import type { StoredState } from '../../scoring/store.ts'
import { nextTier, tierOf } from '../../scoring/tiers.ts'
import type { RiskTier } from '../../scoring/tiers.ts'
import { createKafka } from '../../streams/kafka.ts'
import { ChurnModel } from '../../training/model.ts'
import type { ModelArtifact } from '../../training/artifact.ts'
import { lakehouseFeatureHash } from '../../training/sets.ts'
import type { TrainingSet } from '../../training/train.ts'
import { logger } from './context.ts'
import { readTopic } from './topics.ts'

export const TIERS: readonly RiskTier[] = ['low', 'medium', 'high']

/** A feature vector from the training set whose score lies well inside one tier. */
export interface TierVector { named: Record<string, number | null>, probability: number, tier: RiskTier }

/** A subscriber of a test: every version produced so far, in order (version n at index n - 1). */
export interface TrackedSubscriber { id: string, versions: TierVector[] }

/**
 * Up to `perTier` training rows per tier whose scores are clear of the thresholds and of their
 * hysteresis bands, so the tier does not depend on the tier before nor on the seconds between
 * producing and scoring.
 */
export function clearTierVectors (config: Config, set: TrainingSet, artifact: ModelArtifact, perTier = 4): Record<RiskTier, TierVector[]> {
  const model = new ChurnModel(artifact)
  const columns = set.schema.names.length
  const { high, medium, hysteresis } = config.risk
  const clear = (p: number): boolean => p < medium - hysteresis - 0.02 || (p >= medium + 0.02 && p < high - hysteresis - 0.02) || p >= high + 0.02
  const score = (named: Record<string, number | null>, days: number): number => model.predict(model.vector(model.names.map(n => n === DAYS_SINCE_LAST_ACTIVITY ? days : named[n] ?? null)))
  const vectors: Record<RiskTier, TierVector[]> = { low: [], medium: [], high: [] }
  const seen = new Set<number>()
  for (let r = 0; r < set.rows; r++) {
    const named: Record<string, number | null> = Object.fromEntries(set.schema.names.map((n, c) => { const v = set.x[r * columns + c] as number; return [n, Number.isNaN(v) ? null : v] }))
    named[DAYS_SINCE_LAST_ACTIVITY] = 0
    const probability = score(named, 0)
    if (!clear(probability) || score(named, 0.01) !== probability || seen.has(probability)) continue
    seen.add(probability)
    const tier = tierOf(probability, config.risk)
    for (const current of [null, ...TIERS]) assert.equal(nextTier(probability, current, config.risk), tier)
    if (vectors[tier].length < perTier) vectors[tier].push({ named, probability, tier })
  }
  for (const tier of TIERS) assert.ok(vectors[tier].length >= 2, `training rows scoring clearly ${tier}: ${vectors[tier].length}`)
  return vectors
}

/** A changelog record of `vector`, fresh (days since last activity ~0 when scored). */
export function vectorChange (subscriberId: string, version: number, vector: TierVector): FeatureChange {
  const features = { ...vector.named }
  delete features[DAYS_SINCE_LAST_ACTIVITY]
  const featureTime = Date.now()
  return { subscriberId, version, featureTime, firstEventTime: featureTime - 20 * DAY_MS, updatedAt: featureTime, features: features as unknown as FeatureChange['features'], featureHash: lakehouseFeatureHash() }
}

export interface ScorerInvariantCounts { events: number, redelivered: number, jobs: number }

/** A churn-risk event with where it sits on the topic. */
export type PlacedRiskEvent = ChurnRiskEvent & { partition: number, offset: number }

function byPlace (a: { partition: number, offset: number }, b: { partition: number, offset: number }): number {
  return a.partition - b.partition || a.offset - b.offset
}

/**
 * The churn-risk topic read from its start by a consumer of its own for as long as a test runs,
 * decoded as it arrives, so a test that checks the topic after every wave reads each event once.
 */
export class ChurnRiskReader {
  readonly #config: Config
  readonly #kafka: Kafka
  readonly #consumer: Consumer
  readonly #codec: AvroCodec
  readonly #raw: Array<{ partition: number, offset: number, value: Buffer }> = []
  readonly #consumed = new Map<number, number>()
  readonly #decoded: PlacedRiskEvent[] = []
  #reader: Type | undefined

  private constructor (config: Config) {
    this.#config = config
    this.#kafka = createKafka({ brokers: config.kafka.brokers, clientId: 'test-risk-reader', logger })
    this.#consumer = this.#kafka.consumer({ groupId: `test-risk-reader-${randomUUID()}`, maxWaitTimeInMs: 100 })
    this.#codec = new AvroCodec({ registryUrl: config.registry.url })
  }

  static async open (config: Config): Promise<ChurnRiskReader> {
    const reader = new ChurnRiskReader(config)
    reader.#reader = avroType((await latestSchema('churn-risk')).schema)
    await reader.#consumer.connect()
    await reader.#consumer.subscribe({ topics: [config.topics.churnRisk], fromBeginning: true })
    await reader.#consumer.run({
      eachMessage: async ({ partition, message }) => {
        reader.#raw.push({ partition, offset: Number(message.offset), value: message.value as Buffer })
        reader.#consumed.set(partition, Number(message.offset) + 1)
        await Promise.resolve()
      }
    })
    return reader
  }

  /** Every event on the topic up to its high watermarks at the time of the call, in partition and offset order. */
  async events (timeoutMs = 60_000): Promise<PlacedRiskEvent[]> {
    const admin = this.#kafka.admin()
    await admin.connect()
    const highs = await admin.fetchTopicOffsets(this.#config.topics.churnRisk).finally(async () => { await admin.disconnect() })
    const deadline = Date.now() + timeoutMs
    while (!highs.every(h => (this.#consumed.get(h.partition) ?? 0) >= Number(h.high))) {
      if (Date.now() > deadline) throw new Error(`the churn-risk topic not read to its end within ${timeoutMs} ms`)
      await sleep(20)
    }
    const fresh = this.#raw.splice(0)
    await this.#codec.loadWriters(fresh.map(m => m.value.readInt32BE(1)))
    for (const m of fresh) this.#decoded.push({ ...this.#codec.decode<ChurnRiskEvent>(m.value, this.#reader as Type).value, partition: m.partition, offset: m.offset })
    return [...this.#decoded].sort(byPlace)
  }

  async close (): Promise<void> {
    await this.#consumer.disconnect().catch(() => {})
  }
}

/** Every event on the churn-risk topic, from `risk` or else read afresh. */
async function riskEvents (config: Config, risk: ChurnRiskReader | undefined): Promise<PlacedRiskEvent[]> {
  if (risk !== undefined) return await risk.events()
  const kafka = createKafka({ brokers: config.kafka.brokers, clientId: 'test-invariants', logger })
  const codec = new AvroCodec({ registryUrl: config.registry.url })
  const reader = avroType((await latestSchema('churn-risk')).schema)
  const messages = await readTopic(kafka, config.topics.churnRisk)
  await codec.loadWriters(messages.map(m => (m.value as Buffer).readInt32BE(1)))
  return messages.map(m => ({ ...codec.decode<ChurnRiskEvent>(m.value, reader).value, partition: m.partition, offset: Number(m.offset) })).sort(byPlace)
}

interface ScorerView { all: PlacedRiskEvent[], byId: Map<string, PlacedRiskEvent[]>, states: Array<StoredState | null> }

async function scorerView (config: Config, subscribers: readonly TrackedSubscriber[], risk: ChurnRiskReader | undefined): Promise<ScorerView> {
  const all = await riskEvents(config, risk)
  const byId = new Map<string, PlacedRiskEvent[]>()
  for (const e of all) {
    const own = byId.get(e.subscriberId)
    if (own === undefined) byId.set(e.subscriberId, [e])
    else own.push(e)
  }
  const redis = createRedis({ url: config.redis.url })
  const states = await new OnlineStore(redis, config.redis.prefix).states(subscribers.map(s => s.id)).finally(() => { redis.disconnect() })
  return { all, byId, states }
}

function story (s: TrackedSubscriber, own: readonly PlacedRiskEvent[], state: StoredState | null): string {
  return `events ${JSON.stringify(own.map(e => `v${e.featureVersion}:${e.tier}<-${e.previousTier ?? '-'}@${e.partition}/${e.offset}`))}, version tiers ${s.versions.map(v => v.tier[0]).join('')}, store ${JSON.stringify(state)}`
}

/** Subscribers whose last event on the topic is not the tier and probability the store says were last announced (none when nothing was). */
function unannounced (subscribers: readonly TrackedSubscriber[], { byId, states }: ScorerView): string[] {
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

/**
 * The subscribers whose last churn-risk event on the topic is not what the store says was last
 * announced: right after a crash, the ones whose events went out in a batch the scorer did not
 * finish (what a restart has to make good); once the scorer has caught up, none.
 */
export async function unannouncedSubscribers (config: Config, subscribers: readonly TrackedSubscriber[], risk?: ChurnRiskReader): Promise<string[]> {
  return unannounced(subscribers, await scorerView(config, subscribers, risk))
}

export interface ScorerInvariantOptions {
  /** The model version every event was scored with. @defaultValue 1 */
  modelVersion?: number
  /** Reads the churn-risk topic through it instead of afresh (for tests that check after every wave). */
  risk?: ChurnRiskReader
}

/**
 * Asserts, once the scorer group has committed everything: the store holds each subscriber's
 * newest version and the tier its vector gives; each subscriber's events are on one partition and
 * the last one carries the tier and probability the store says were last announced (none when
 * nothing was); every event is the score of its version's vector under `modelVersion`; at most one
 * campaign job per channel, subscriber and tier, and one for every announced high or medium
 * (subscriber, tier), each for an event on the topic (the cooldown must cover the whole test).
 */
export async function assertScorerInvariants (config: Config, subscribers: readonly TrackedSubscriber[], options: ScorerInvariantOptions = {}): Promise<ScorerInvariantCounts> {
  const { modelVersion = 1, risk } = options
  const view = await scorerView(config, subscribers, risk)
  const { all, byId, states } = view
  const problems: string[] = []
  for (const [i, s] of subscribers.entries()) {
    const state = states[i] ?? null
    const own = byId.get(s.id) ?? []
    const newest = s.versions[s.versions.length - 1]
    if (newest === undefined) continue
    if (state?.version !== s.versions.length) problems.push(`${s.id}: the store holds version ${state?.version ?? 'none'}, not ${s.versions.length}; ${story(s, own, state)}`)
    else if (state.tier !== newest.tier) problems.push(`${s.id}: the store's tier is ${state.tier}, version ${s.versions.length} scores ${newest.tier}; ${story(s, own, state)}`)
    if (new Set(own.map(e => e.partition)).size > 1) problems.push(`${s.id}: events on several partitions; ${story(s, own, state)}`)
  }
  assert.deepEqual(problems.slice(0, 5), [], `${problems.length} subscriber(s) not at their newest version and its tier, or with events on several partitions`)
  const lost = unannounced(subscribers, view)
  assert.deepEqual(lost.slice(0, 5), [], `${lost.length} subscriber(s) whose last churn-risk event on the topic is not their current tier`)

  const tracked = new Map(subscribers.map(s => [s.id, s]))
  for (const e of all) {
    const vector = tracked.get(e.subscriberId)?.versions[e.featureVersion - 1]
    assert.ok(vector !== undefined, `event ${e.eventId} is for a produced version`)
    assert.equal(e.tier, vector.tier, `event ${e.eventId}`)
    assert.equal(e.probability, vector.probability, `event ${e.eventId}`)
    assert.equal(e.eventId, `${e.subscriberId}/${e.featureVersion}/${modelVersion}`)
    assert.equal(e.modelVersion, modelVersion, `event ${e.eventId}`)
  }

  const eventIds = new Map(all.map(e => [e.eventId, e]))
  const announced = new Set(all.filter(e => e.tier !== 'low').map(e => `${TIER_CHANNELS[e.tier][0] as Channel}/${e.subscriberId}/${e.tier}`))
  const jobKeys = new Map<string, string>()
  const campaign = campaignQueues(config)
  try {
    for (const channel of CHANNELS) {
      const jobs = await campaign.queues[channel].getJobs(['waiting', 'active', 'delayed', 'prioritized', 'completed', 'failed', 'waiting-children'], 0, -1)
      assert.equal(new Set(jobs.map(j => j.id)).size, jobs.length, `${channel}: no job id twice`)
      for (const job of jobs) {
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
  return { events: all.length, redelivered: all.length - new Set(all.map(e => e.eventId)).size, jobs: jobKeys.size }
}
