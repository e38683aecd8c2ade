/**
 * The scorer's crash and rebalance properties, checked from the outside once it has caught up:
 * feature vectors whose scores sit clearly inside one tier (so the expected tier of a version is
 * known without the scorer), and the checks on the store, the churn-risk topic and the campaign
 * queues that the scorer's header promises.
 */
import assert from 'node:assert/strict'
import type { Config } from '../../config/index.ts'
import { createRedis } from '../../core/redis.ts'
import { DAY_MS, DAYS_SINCE_LAST_ACTIVITY } from '../../lakehouse/features.ts'
import { AvroCodec, avroType, latestSchema } from '../../schemas/index.ts'
import type { ChurnRiskEvent, FeatureChange } from '../../schemas/types.generated.ts'
import { CHANNELS, TIER_CHANNELS, campaignJobId } from '../../scoring/campaign.ts'
import type { Channel } from '../../scoring/campaign.ts'
import { campaignQueues } from '../../scoring/queues.ts'
import { OnlineStore } from '../../scoring/store.ts'
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

/**
 * Asserts, once the scorer group has committed everything: the store holds each subscriber's
 * newest version and the tier its vector gives; each subscriber's events are on one partition and
 * the last one carries the tier and probability the store says were last announced (none when
 * nothing was); every event is the score of its version's vector under `modelVersion`; at most one
 * campaign job per channel, subscriber and tier, and one for every announced high or medium
 * (subscriber, tier), each for an event on the topic (the cooldown must cover the whole test).
 */
export async function assertScorerInvariants (config: Config, subscribers: readonly TrackedSubscriber[], modelVersion = 1): Promise<ScorerInvariantCounts> {
  const kafka = createKafka({ brokers: config.kafka.brokers, clientId: 'test-invariants', logger })
  const codec = new AvroCodec({ registryUrl: config.registry.url })
  const reader = avroType((await latestSchema('churn-risk')).schema)
  const messages = (await readTopic(kafka, config.topics.churnRisk)).sort((a, b) => a.partition - b.partition || Number(BigInt(a.offset) - BigInt(b.offset)))
  await codec.loadWriters(messages.map(m => (m.value as Buffer).readInt32BE(1)))
  const all = messages.map(m => ({ ...codec.decode<ChurnRiskEvent>(m.value, reader).value, partition: m.partition }))
  const byId = new Map<string, typeof all>()
  for (const e of all) byId.set(e.subscriberId, [...(byId.get(e.subscriberId) ?? []), e])

  const redis = createRedis({ url: config.redis.url })
  const states = await new OnlineStore(redis, config.redis.prefix).states(subscribers.map(s => s.id)).finally(() => { redis.disconnect() })
  const problems: string[] = []
  for (const [i, s] of subscribers.entries()) {
    const state = states[i] ?? null
    const own = byId.get(s.id) ?? []
    const story = `events ${JSON.stringify(own.map(e => `v${e.featureVersion}:${e.tier}<-${e.previousTier ?? '-'}@${e.partition}`))}, version tiers ${s.versions.map(v => v.tier[0]).join('')}, store ${JSON.stringify(state)}`
    const newest = s.versions[s.versions.length - 1]
    if (newest === undefined) continue
    if (state?.version !== s.versions.length) problems.push(`${s.id}: the store holds version ${state?.version ?? 'none'}, not ${s.versions.length}; ${story}`)
    else if (state.tier !== newest.tier) problems.push(`${s.id}: the store's tier is ${state.tier}, version ${s.versions.length} scores ${newest.tier}; ${story}`)
    if (new Set(own.map(e => e.partition)).size > 1) problems.push(`${s.id}: events on several partitions; ${story}`)
    const last = own[own.length - 1]
    const announced = state?.emittedProbability ?? null
    if (last === undefined ? announced !== null : last.tier !== state?.tier || last.probability !== announced) problems.push(`${s.id}: the last event on the topic is not what the store last announced; ${story}`)
  }
  assert.deepEqual(problems.slice(0, 5), [], `${problems.length} subscriber(s) not at their newest version and tier, or whose last event is not their current tier`)

  const tracked = new Map(subscribers.map(s => [s.id, s]))
  for (const e of all) {
    const vector = tracked.get(e.subscriberId)?.versions[e.featureVersion - 1]
    assert.ok(vector !== undefined, `event ${e.eventId} is for a produced version`)
    assert.equal(e.tier, vector.tier, `event ${e.eventId}`)
    assert.equal(e.probability, vector.probability, `event ${e.eventId}`)
    assert.equal(e.eventId, `${e.subscriberId}/${e.featureVersion}/${modelVersion}`)
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
