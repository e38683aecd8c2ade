/**
 * The scorer on the real stack: feature changelog records produced to Kafka through the registry,
 * a model trained on synthetic Gold and promoted in a models folder, the online store and the
 * campaign queues in Redis, churn-risk events read back and decoded by an independent consumer.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { Config } from '../../../config/index.ts'
import { createRedis } from '../../../core/redis.ts'
import { DAY_MS, DAYS_SINCE_LAST_ACTIVITY } from '../../../lakehouse/features.ts'
import { AvroCodec, avroType, latestSchema } from '../../../schemas/index.ts'
import { encodeFramed } from '../../../schemas/codec.ts'
import { registerDerivedSchemas } from '../../../schemas/register.ts'
import { createSchemaRegistry } from '../../../schemas/registry.ts'
import type { ChurnRiskEvent, FeatureChange } from '../../../schemas/types.generated.ts'
import { campaignQueues } from '../../../scoring/queues.ts'
import type { QueueCounts } from '../../../scoring/queues.ts'
import { runScorer } from '../../../scoring/scorer-role.ts'
import { OnlineStore } from '../../../scoring/store.ts'
import { createKafka } from '../../../streams/kafka.ts'
import { ensureProjectTopics } from '../../../streams/topics.ts'
import { fitWith } from '../../../training/engines.ts'
import { ChurnModel } from '../../../training/model.ts'
import { runTraining } from '../../../training/pipeline.ts'
import { ModelRegistry } from '../../../training/registry.ts'
import { lakehouseFeatureHash } from '../../../training/sets.ts'
import { syntheticTrainingSet } from '../../../training/synthetic.ts'
import { isolatedConfig, logger } from '../../helpers/context.ts'
import { readTopic } from '../../helpers/topics.ts'

let config: Config
let cleanup: () => Promise<void>
/** Named features of the least and the most at-risk training rows. */
let healthy: Record<string, number | null>
let degraded: Record<string, number | null>
let changelogId: number

async function produceChanges (changes: FeatureChange[], raw: Buffer[] = []): Promise<void> {
  const type = avroType((await latestSchema('feature-changelog')).schema)
  const producer = createKafka({ brokers: config.kafka.brokers, clientId: 'test-changelog', logger }).producer()
  await producer.connect()
  await producer.send({
    topic: config.topics.features,
    acks: -1,
    messages: [...changes.map(c => ({ key: c.subscriberId, value: encodeFramed(changelogId, type, c) })), ...raw.map(value => ({ key: 'POISON', value }))]
  })
  await producer.disconnect()
}

function change (subscriberId: string, version: number, named: Record<string, number | null>, hash = lakehouseFeatureHash()): FeatureChange {
  const features = { ...named }
  const days = features[DAYS_SINCE_LAST_ACTIVITY] ?? 0
  delete features[DAYS_SINCE_LAST_ACTIVITY]
  const featureTime = Date.now() - days * DAY_MS
  return { subscriberId, version, featureTime, firstEventTime: featureTime - 20 * DAY_MS, updatedAt: Date.now(), features: features as unknown as FeatureChange['features'], featureHash: hash }
}

async function riskEvents (): Promise<ChurnRiskEvent[]> {
  const kafka = createKafka({ brokers: config.kafka.brokers, clientId: 'test-risk-reader', logger })
  const codec = new AvroCodec({ registryUrl: config.registry.url })
  const reader = avroType((await latestSchema('churn-risk')).schema)
  const messages = await readTopic(kafka, config.topics.churnRisk)
  await codec.loadWriters(messages.map(m => (m.value as Buffer).readInt32BE(1)))
  return messages.map(m => codec.decode<ChurnRiskEvent>(m.value, reader).value)
}

async function crmJobs (): Promise<number> {
  const campaign = campaignQueues(config)
  try {
    const crm: QueueCounts = (await campaign.counts()).crm
    return crm.waiting + crm.active + crm.delayed + crm.completed + crm.failed
  } finally {
    await campaign.close()
  }
}

describe('scorer', () => {
  before(async () => {
    ({ config, cleanup } = await isolatedConfig({ MODEL_POLL_MS: '200' }))
    const set = await syntheticTrainingSet({ subscribers: 1500 })
    const registry = new ModelRegistry(config.model.dir)
    const outcome = await runTraining(set, {
      name: config.serving.modelName,
      registry,
      train: { engine: 'forest', fit: fitWith('forest'), forest: { nEstimators: 60, seed: 3 }, folds: 0, tiers: config.risk },
      gate: config.model.gate,
      logger
    })
    assert.ok(outcome.promoted, outcome.decision.reason)
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
    const named = (r: number): Record<string, number | null> => Object.fromEntries(set.schema.names.map((n, c) => { const v = set.x[r * columns + c] as number; return [n, Number.isNaN(v) ? null : v] }))
    healthy = named(low)
    degraded = named(high)
    const schemaRegistry = createSchemaRegistry({ url: config.registry.url })
    const derived = await registerDerivedSchemas({ registry: schemaRegistry, url: config.registry.url, topics: config.topics })
    changelogId = derived.find(d => d.name === 'feature-changelog')?.latestId ?? -1
    await ensureProjectTopics(createKafka({ brokers: config.kafka.brokers, clientId: 'test-topics', logger }), config.topics)
  })
  after(async () => { await cleanup() })

  it('turns a degrading subscriber into one high-tier event and one CRM job; the same update twice adds nothing', async () => {
    await produceChanges([change('SUB-A', 1, healthy)])
    let summary = await runScorer({ config, logger, untilCaughtUp: true })
    assert.equal(summary.scored, 1)
    assert.deepEqual(summary.events, { low: 0, medium: 0, high: 0 }, 'a healthy first score is recorded, not announced')

    await produceChanges([change('SUB-A', 2, degraded)])
    summary = await runScorer({ config, logger, untilCaughtUp: true })
    assert.equal(summary.events.high, 1)
    assert.equal(summary.jobs.added, 1)
    let events = await riskEvents()
    assert.equal(events.length, 1)
    const event = events[0] as ChurnRiskEvent
    assert.equal(event.subscriberId, 'SUB-A')
    assert.equal(event.tier, 'high')
    assert.equal(event.previousTier, null)
    assert.equal(event.featureVersion, 2)
    assert.equal(event.modelVersion, 1)
    assert.equal(event.recommendedAction, 'Assign retention manager & offer loyalty bundle immediately.')
    assert.ok(event.reasons.length > 0 && event.reasons.every(r => r.contribution > 0), 'reasons that pushed the score up')
    assert.equal(await crmJobs(), 1)

    // The same feature update delivered again, and a newer one that changes nothing that matters.
    await produceChanges([change('SUB-A', 2, degraded), change('SUB-A', 3, degraded)])
    summary = await runScorer({ config, logger, untilCaughtUp: true })
    assert.deepEqual(summary.events, { low: 0, medium: 0, high: 0 })
    events = await riskEvents()
    assert.equal(events.length, 1, 'no second event')
    assert.equal(await crmJobs(), 1, 'no second job')

    const redis = createRedis({ url: config.redis.url })
    const entry = await new OnlineStore(redis, config.redis.prefix).get('SUB-A')
    redis.disconnect()
    assert.equal(entry?.version, 3)
    assert.equal(entry?.tier, 'high')

    // Back to healthy: a tier change (high -> low) is announced, and low triggers no channel.
    await produceChanges([change('SUB-A', 4, healthy)])
    summary = await runScorer({ config, logger, untilCaughtUp: true })
    assert.equal(summary.events.low, 1)
    events = await riskEvents()
    assert.deepEqual(events.map(e => [e.tier, e.previousTier]), [['high', null], ['low', 'high']])
    assert.equal(await crmJobs(), 1)
  })

  it('does not score features of another definition, and dead-letters what does not decode', async () => {
    await produceChanges([change('SUB-B', 1, degraded, 'sha256:another-definition')], [Buffer.from('not avro at all')])
    const summary = await runScorer({ config, logger, untilCaughtUp: true })
    assert.equal(summary.hashMismatch, 1)
    assert.equal(summary.deadLettered, 1)
    assert.equal(summary.scored, 0)
    const kafka = createKafka({ brokers: config.kafka.brokers, clientId: 'test-dlq-reader', logger })
    const dead = await readTopic(kafka, config.topics.deadLetter(config.topics.features))
    assert.equal(dead.length, 1)
    assert.match(String(dead[0]?.headers['churn.dlq.code']), /CHURN_AVRO_BAD_FRAME/)
    assert.ok((await riskEvents()).every(e => e.subscriberId !== 'SUB-B'))
  })
})
