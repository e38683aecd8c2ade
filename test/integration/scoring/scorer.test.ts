/**
 * The scorer on the real stack: feature changelog records produced to Kafka through the registry,
 * a model trained on synthetic Gold and promoted in a models folder, the online store and the
 * campaign queues in Redis, churn-risk events read back and decoded by an independent consumer.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { Config } from '../../../config/index.ts'
import { createRedis } from '../../../core/redis.ts'
import type { ChurnRiskEvent, FeatureChange } from '../../../schemas/types.generated.ts'
import { runScorer } from '../../../scoring/scorer-role.ts'
import { OnlineStore } from '../../../scoring/store.ts'
import { createKafka } from '../../../streams/kafka.ts'
import { isolatedConfig, logger } from '../../helpers/context.ts'
import { featureChange, jobCount, produceChanges as produce, riskEvents as readRiskEvents, scoringFixture } from '../../helpers/scoring.ts'
import type { ScoringFixture } from '../../helpers/scoring.ts'
import { readTopic } from '../../helpers/topics.ts'

let config: Config
let cleanup: () => Promise<void>
let fixture: ScoringFixture

const produceChanges = async (changes: FeatureChange[], poison: Buffer[] = []): Promise<void> => { await produce(config, fixture.changelogId, changes, poison) }
const riskEvents = async (): Promise<ChurnRiskEvent[]> => await readRiskEvents(config)
const crmJobs = async (): Promise<number> => await jobCount(config, 'crm')

describe('scorer', () => {
  before(async () => {
    ({ config, cleanup } = await isolatedConfig({ MODEL_POLL_MS: '200' }))
    fixture = await scoringFixture(config)
  })
  after(async () => { await cleanup() })

  it('turns a degrading subscriber into one high-tier event and one CRM job; the same update twice adds nothing', async () => {
    await produceChanges([featureChange('SUB-A', 1, fixture.healthy)])
    let summary = await runScorer({ config, logger, untilCaughtUp: true })
    assert.equal(summary.scored, 1)
    assert.deepEqual(summary.events, { low: 0, medium: 0, high: 0 }, 'a healthy first score is recorded, not announced')

    await produceChanges([featureChange('SUB-A', 2, fixture.degraded)])
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
    await produceChanges([featureChange('SUB-A', 2, fixture.degraded), featureChange('SUB-A', 3, fixture.degraded)])
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
    await produceChanges([featureChange('SUB-A', 4, fixture.healthy)])
    summary = await runScorer({ config, logger, untilCaughtUp: true })
    assert.equal(summary.events.low, 1)
    events = await riskEvents()
    assert.deepEqual(events.map(e => [e.tier, e.previousTier]), [['high', null], ['low', 'high']])
    assert.equal(await crmJobs(), 1)
  })

  it('does not score features of another definition, and dead-letters what does not decode', async () => {
    await produceChanges([featureChange('SUB-B', 1, fixture.degraded, 'sha256:another-definition')], [Buffer.from('not avro at all')])
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
