/**
 * Scorer test fixtures: a model trained on synthetic Gold and promoted in the test's models
 * folder, the feature vectors of its least and most at-risk training rows, feature changelog
 * records produced through the registry, and churn-risk events read back by an independent
 * consumer and decoded through the registry.
 */
import assert from 'node:assert/strict'
import type { Config } from '../../config/index.ts'
import { DAY_MS, DAYS_SINCE_LAST_ACTIVITY } from '../../lakehouse/features.ts'
import { AvroCodec, avroType, latestSchema } from '../../schemas/index.ts'
import { encodeFramed } from '../../schemas/codec.ts'
import { registerDerivedSchemas } from '../../schemas/register.ts'
import { createSchemaRegistry } from '../../schemas/registry.ts'
import type { ChurnRiskEvent, FeatureChange } from '../../schemas/types.generated.ts'
import { campaignQueues } from '../../scoring/queues.ts'
import type { QueueCounts } from '../../scoring/queues.ts'
import { createKafka } from '../../streams/kafka.ts'
import { ensureProjectTopics } from '../../streams/topics.ts'
import { fitWith } from '../../training/engines.ts'
import { ChurnModel } from '../../training/model.ts'
import { runTraining } from '../../training/pipeline.ts'
import type { GateSettings, RunOutcome } from '../../training/pipeline.ts'
import { ModelRegistry } from '../../training/registry.ts'
import { lakehouseFeatureHash } from '../../training/sets.ts'
import { syntheticTrainingSet } from '../../training/synthetic.ts'
import type { TrainingSet } from '../../training/train.ts'
import { logger } from './context.ts'
import { readTopic } from './topics.ts'

export type NamedFeatures = Record<string, number | null>

export interface ScoringFixture {
  /** Features of the training row the model scores lowest (low tier). */
  healthy: NamedFeatures
  /** Features of the training row it scores highest (high tier). */
  degraded: NamedFeatures
  /** Schema id of the feature changelog's newest version. */
  changelogId: number
}

/** What a test trains on: synthetic Gold of `subscribers`, or the Telco CSV. */
export interface TrainForTest {
  /** @defaultValue config.serving.modelName */
  name?: string
  /** Synthetic Gold of this many subscribers (default 1500), unless `set` is given. */
  subscribers?: number
  set?: TrainingSet
  /** @defaultValue 60 */
  trees?: number
  /** @defaultValue 3 */
  seed?: number
  /** The gate; by default the configuration's. */
  gate?: GateSettings
}

/** Trains a model quickly (no cross-validation) into `config.model.dir` and asserts it was promoted. */
export async function trainPromoted (config: Config, options: TrainForTest = {}): Promise<{ set: TrainingSet, outcome: RunOutcome }> {
  const set = options.set ?? await syntheticTrainingSet({ subscribers: options.subscribers ?? 1500 })
  const outcome = await runTraining(set, {
    name: options.name ?? config.serving.modelName,
    registry: new ModelRegistry(config.model.dir),
    train: { engine: 'forest', fit: fitWith('forest'), forest: { nEstimators: options.trees ?? 60, seed: options.seed ?? 3 }, folds: 0, tiers: config.risk },
    gate: options.gate ?? config.model.gate,
    logger
  })
  assert.ok(outcome.promoted, outcome.decision.reason)
  return { set, outcome }
}

/** Trains and promotes `config.serving.modelName` v1, registers the derived subjects, creates the topics. */
export async function scoringFixture (config: Config): Promise<ScoringFixture> {
  const { set, outcome } = await trainPromoted(config)
  const model = new ChurnModel(outcome.artifact)
  const columns = set.schema.names.length
  const imputed = Float64Array.from(set.x)
  for (let r = 0; r < set.rows; r++) model.vector(imputed.subarray(r * columns, (r + 1) * columns), imputed.subarray(r * columns, (r + 1) * columns))
  const scores = model.predictBatch(imputed, set.rows)
  let low = 0
  let high = 0
  for (let r = 0; r < set.rows; r++) {
    if ((scores[r] as number) < (scores[low] as number)) low = r
    if ((scores[r] as number) > (scores[high] as number)) high = r
  }
  assert.ok((scores[high] as number) >= config.risk.high && (scores[low] as number) < config.risk.medium, `the model separates: ${scores[low]} .. ${scores[high]}`)
  const named = (r: number): NamedFeatures => Object.fromEntries(set.schema.names.map((n, c) => {
    const v = set.x[r * columns + c] as number
    return [n, Number.isNaN(v) ? null : v]
  }))
  const derived = await registerDerivedSchemas({ registry: createSchemaRegistry({ url: config.registry.url }), url: config.registry.url, topics: config.topics })
  await ensureProjectTopics(createKafka({ brokers: config.kafka.brokers, clientId: 'test-topics', logger }), config.topics)
  return { healthy: named(low), degraded: named(high), changelogId: derived.find(d => d.name === 'feature-changelog')?.latestId ?? -1 }
}

/** A changelog record as ingest writes it; `days_since_last_activity` becomes the feature time. */
export function featureChange (subscriberId: string, version: number, named: NamedFeatures, hash = lakehouseFeatureHash()): FeatureChange {
  const features = { ...named }
  const days = features[DAYS_SINCE_LAST_ACTIVITY] ?? 0
  delete features[DAYS_SINCE_LAST_ACTIVITY]
  const featureTime = Date.now() - days * DAY_MS
  return { subscriberId, version, featureTime, firstEventTime: featureTime - 20 * DAY_MS, updatedAt: Date.now(), features: features as unknown as FeatureChange['features'], featureHash: hash }
}

/** Produces records (and raw `poison` values) to the changelog topic, keyed by subscriber. */
export async function produceChanges (config: Config, changelogId: number, changes: readonly FeatureChange[], poison: readonly Buffer[] = []): Promise<void> {
  const type = avroType((await latestSchema('feature-changelog')).schema)
  const producer = createKafka({ brokers: config.kafka.brokers, clientId: 'test-changelog', logger }).producer()
  await producer.connect()
  try {
    await producer.send({
      topic: config.topics.features,
      acks: -1,
      messages: [...changes.map(c => ({ key: c.subscriberId, value: encodeFramed(changelogId, type, c) })), ...poison.map(value => ({ key: 'POISON', value }))]
    })
  } finally {
    await producer.disconnect()
  }
}

/** Every churn-risk event on the topic, read by a fresh group and decoded through the registry. */
export async function riskEvents (config: Config): Promise<ChurnRiskEvent[]> {
  const kafka = createKafka({ brokers: config.kafka.brokers, clientId: 'test-risk-reader', logger })
  const codec = new AvroCodec({ registryUrl: config.registry.url })
  const reader = avroType((await latestSchema('churn-risk')).schema)
  const messages = await readTopic(kafka, config.topics.churnRisk)
  await codec.loadWriters(messages.map(m => (m.value as Buffer).readInt32BE(1)))
  return messages.map(m => codec.decode<ChurnRiskEvent>(m.value, reader).value)
}

/** Jobs of a channel's queue in any state. */
export async function jobCount (config: Config, channel: 'crm' | 'sms'): Promise<number> {
  const campaign = campaignQueues(config)
  try {
    const counts: QueueCounts = (await campaign.counts())[channel]
    return counts.waiting + counts.active + counts.delayed + counts.completed + counts.failed
  } finally {
    await campaign.close()
  }
}
