/**
 * The whole chain on the real stack: synthetic traffic produced to the source topics, ingest run
 * until caught up (Bronze, Silver, Gold, the feature changelog), a model trained on synthetic Gold
 * from the same generator promoted before the scorer starts, the scorer run until caught up, and
 * the churn-risk topic read back by an independent consumer group and decoded through the
 * registry.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { Config } from '../../../config/index.ts'
import { createRedis } from '../../../core/redis.ts'
import { AvroCodec, SOURCE_STREAMS, avroType, latestSchema } from '../../../schemas/index.ts'
import type { ChurnRiskEvent, FeatureChange } from '../../../schemas/types.generated.ts'
import { TIER_CHANNELS, campaignJobId } from '../../../scoring/campaign.ts'
import type { CampaignJobData, Channel } from '../../../scoring/campaign.ts'
import { campaignQueues } from '../../../scoring/queues.ts'
import type { CampaignQueue } from '../../../scoring/queues.ts'
import { runScorer } from '../../../scoring/scorer-role.ts'
import { OnlineStore } from '../../../scoring/store.ts'
import { runIngest } from '../../../streams/ingest-role.ts'
import { createKafka } from '../../../streams/kafka.ts'
import { produceTraffic } from '../../../streams/producer.ts'
import { lakehouseFeatureHash } from '../../../training/sets.ts'
import { isolatedConfig, logger } from '../../helpers/context.ts'
import { readSourceEvents, readTopic } from '../../helpers/topics.ts'
import { trainPromoted } from '../../helpers/scoring.ts'

type CampaignJob = Awaited<ReturnType<CampaignQueue['getJob']>> & object

const SUBSCRIBERS = 2500
const EVENTS = 30_000

let config: Config
let cleanup: () => Promise<void>

describe('the chain from a produced event to a churn-risk event', () => {
  before(async () => { ({ config, cleanup } = await isolatedConfig()) })
  after(async () => { await cleanup() })

  it('scores what was produced, ingested and published, and the events decode through the registry', async () => {
    // Thirty days of traffic ending now: subscribers of high hidden propensity decline towards
    // the end of the window, and those who churn fall silent.
    const produced = await produceTraffic({ config, logger, subscribers: SUBSCRIBERS, events: EVENTS, days: 30, seed: 11 })
    assert.ok(produced.sent >= EVENTS)

    // A model trained on synthetic Gold from the same generator, promoted before the scorer runs.
    const { outcome } = await trainPromoted(config)
    assert.equal(outcome.artifact.features.hash, lakehouseFeatureHash())

    const ingest = await runIngest({ config, logger, untilCaughtUp: true })
    assert.equal(ingest.lag, 0, 'ingest caught up with the source topics')
    const scorer = await runScorer({ config, logger, untilCaughtUp: true })
    assert.equal(scorer.lag, 0, 'the scorer caught up with the changelog')
    assert.equal(scorer.modelVersion, 1)
    assert.equal(scorer.hashMismatch, 0)
    assert.equal(scorer.deadLettered, 0)

    const kafka = createKafka({ brokers: config.kafka.brokers, clientId: 'test-chain-reader', logger })
    const codec = new AvroCodec({ registryUrl: config.registry.url })

    // Who was produced, as the source topics hold it.
    const sources = await readSourceEvents(config, logger)
    const producedIds = new Set<string>()
    for (const source of SOURCE_STREAMS) for (const m of sources.get(source.stream) ?? []) producedIds.add(String(m.value.subscriberId))
    assert.ok(producedIds.size > SUBSCRIBERS / 2, `${producedIds.size} subscribers on the source topics`)

    // The feature changelog ingest published: every record under the model's feature definition.
    const changelogReader = avroType((await latestSchema('feature-changelog')).schema)
    const changelogMessages = await readTopic(kafka, config.topics.features)
    assert.ok(changelogMessages.length > 0, 'ingest published feature changes')
    await codec.loadWriters(changelogMessages.map(m => (m.value as Buffer).readInt32BE(1)))
    const changes = new Map<string, FeatureChange>()
    for (const m of changelogMessages) {
      const change = codec.decode<FeatureChange>(m.value, changelogReader).value
      assert.equal(change.featureHash, lakehouseFeatureHash(), `changelog record ${m.partition}/${m.offset}`)
      assert.equal(m.key?.toString(), change.subscriberId)
      assert.ok(producedIds.has(change.subscriberId), `${change.subscriberId} on the changelog was produced`)
      changes.set(`${change.subscriberId}/${change.version}`, change)
    }

    // The churn-risk events, read with a fresh group and decoded as the latest schema.
    const riskReader = avroType((await latestSchema('churn-risk')).schema)
    const messages = await readTopic(kafka, config.topics.churnRisk)
    await codec.loadWriters(messages.map(m => (m.value as Buffer).readInt32BE(1)))
    const events = messages.map(m => {
      const event = codec.decode<ChurnRiskEvent>(m.value, riskReader).value
      assert.equal(m.key?.toString(), event.subscriberId, 'keyed by subscriber')
      assert.equal(String(m.headers['churn.event-id']), event.eventId)
      return event
    })
    assert.ok(events.length >= 1, 'at least one churn-risk event')
    assert.ok(events.some(e => e.tier === 'high'), `some subscriber is high risk: ${JSON.stringify(scorer.events)}`)
    assert.equal(scorer.events.low + scorer.events.medium + scorer.events.high, events.length, 'the topic holds what the scorer published, once')

    const redis = createRedis({ url: config.redis.url })
    const store = new OnlineStore(redis, config.redis.prefix)
    try {
      for (const e of events) {
        assert.ok(producedIds.has(e.subscriberId), `${e.subscriberId} was produced`)
        assert.equal(e.modelVersion, 1)
        assert.equal(e.modelName, config.serving.modelName)
        assert.equal(e.eventId, `${e.subscriberId}/${e.featureVersion}/1`)
        assert.ok(e.probability >= 0 && e.probability <= 1)
        // The features scored are a version the changelog carried...
        const change = changes.get(`${e.subscriberId}/${e.featureVersion}`)
        assert.ok(change !== undefined, `${e.eventId}: its feature version is on the changelog`)
        assert.equal(e.featureTime, change.featureTime, e.eventId)
        // ...and the online store holds that one or a newer one.
        const entry = await store.get(e.subscriberId)
        assert.ok(entry !== undefined, `${e.subscriberId} is in the online store`)
        assert.ok(entry.version >= e.featureVersion, `${e.eventId}: the store holds v${entry.version}`)
        if (entry.version === e.featureVersion) assert.equal(entry.featureTime, e.featureTime, e.eventId)
        else assert.ok(entry.featureTime >= e.featureTime, e.eventId)
        assert.equal(entry.modelVersion, 1)
      }
    } finally {
      redis.disconnect()
    }

    // One campaign job per (channel, subscriber, tier) announced as high (CRM) or medium (SMS).
    const announced = new Map<string, ChurnRiskEvent[]>()
    for (const e of events) {
      for (const channel of TIER_CHANNELS[e.tier]) {
        const key = `${channel}/${e.subscriberId}/${e.tier}`
        announced.set(key, [...(announced.get(key) ?? []), e])
      }
    }
    const campaign = campaignQueues(config)
    try {
      const counts = await campaign.counts()
      for (const [key, triggers] of announced) {
        const channel = key.split('/')[0] as Channel
        const jobs: CampaignJob[] = []
        for (const e of triggers) {
          const job: CampaignJob | undefined = await campaign.queues[channel].getJob(campaignJobId(channel, e))
          if (job !== undefined) jobs.push(job)
        }
        assert.equal(jobs.length, 1, `exactly one ${channel} job for ${key} (events ${triggers.map(e => e.eventId).join(', ')})`)
        const data: CampaignJobData = (jobs[0] as CampaignJob).data
        assert.equal(data.channel, channel)
        assert.ok(triggers.some(e => e.eventId === data.event.eventId), `${key}: the job carries one of its events`)
      }
      const total = (channel: Channel): number => { const c = counts[channel]; return c.waiting + c.active + c.delayed + c.completed + c.failed }
      assert.equal(total('crm'), [...announced.keys()].filter(k => k.startsWith('crm/')).length, 'no other CRM job')
      assert.equal(total('sms'), [...announced.keys()].filter(k => k.startsWith('sms/')).length, 'no other SMS job')
    } finally {
      await campaign.close()
    }
    process.stderr.write(`# chain: ${produced.sent} events produced, ${changelogMessages.length} changelog records, ${events.length} churn-risk events ${JSON.stringify(scorer.events)}, jobs ${JSON.stringify(scorer.jobs)}\n`)
  })
})
