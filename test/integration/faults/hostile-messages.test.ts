/**
 * Hostile messages between valid traffic, on the source topics (ingest) and on the feature
 * changelog (the scorer). Each kind ends where its documented rule says (RELIABILITY.md):
 * - undecodable (random bytes, wrong magic byte, unknown schema id, a valid Avro body of another
 *   schema): the topic's dead-letter topic, original bytes, reason and code in headers;
 * - decodable but unacceptable: ingest lands it in Bronze and the gate quarantines it (a subscriber
 *   id with control characters: `invalid_subscriber_id`; a 900 KB text field: `text_too_long`), so
 *   it never reaches Silver, Gold or the changelog; the scorer counts it and scores nothing
 *   (`invalid`, `hashMismatch`), so no Redis key is ever built from it;
 * - over the broker's message limit: the producer is refused, nothing reaches a consumer;
 * - a null key, or a key other than the value's subscriber: the value is the truth, the event
 *   counts as any other (only its partition, and so its ordering, differs); on the compacted
 *   changelog the broker refuses a keyless record outright.
 * Valid traffic around them is unaffected: ingest's Silver and Gold equal those of a control run
 * over the same valid events without the hostile ones; the scorer scores every valid record once.
 */
import assert from 'node:assert/strict'
import { randomBytes, randomUUID } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import type { Type } from 'avsc'
import type { Message } from 'kafkajs'
import type { Config } from '../../../config/index.ts'
import { createRedis } from '../../../core/redis.ts'
import { avroType, createSchemaRegistry, encodeFramed, latestSchema, registerSourceSchemas } from '../../../schemas/index.ts'
import type { BillingEvent, FeatureChange, NetworkEvent } from '../../../schemas/index.ts'
import { runScorer } from '../../../scoring/scorer-role.ts'
import { OnlineStore } from '../../../scoring/store.ts'
import { DLQ_HEADERS } from '../../../streams/ingest.ts'
import { runIngest } from '../../../streams/ingest-role.ts'
import { createKafka } from '../../../streams/kafka.ts'
import { ensureProjectTopics } from '../../../streams/topics.ts'
import { isolatedConfig, logger } from '../../helpers/context.ts'
import { assertSameGold, goldSnapshot, silverEventIds, withLakehouse } from '../../helpers/lakehouse.ts'
import { featureChange, jobCount, riskEvents, scoringFixture } from '../../helpers/scoring.ts'
import type { ScoringFixture } from '../../helpers/scoring.ts'
import { readTopic } from '../../helpers/topics.ts'
import type { ReadMessage } from '../../helpers/topics.ts'

const DAY = 86_400_000
const now = Date.now()
/** A value that fits under the broker's message.max.bytes (1 MB by default) with room to spare. */
const NEAR_LIMIT = 900_000
const CONTROL_ID = 'SUB-\u0007\u001b[31m\u0000'

interface Run { config: Config, cleanup: () => Promise<void>, ids: Record<string, number>, types: Record<'network' | 'billing', Type> }

function network (subscriberId: string, i: number, eventId = `net-${i}`): NetworkEvent {
  return {
    eventId, subscriberId, eventTime: now - (i % 20) * DAY / 2 - i, qualityScore: 60 + (i % 40),
    cellId: `CELL-${i % 7}`, radioTechnology: 'LTE_4G', signalDbm: -70 - (i % 40), latencyMs: 20 + (i % 90), packetLossPct: (i % 10) / 3,
    throughputMbps: 5 + (i % 50), droppedCalls: i % 3, sessionMinutes: i % 60
  }
}
function billing (subscriberId: string, i: number): BillingEvent {
  return {
    eventId: `bill-${i}`, subscriberId, eventTime: now - (i % 30) * DAY, qualityScore: 90,
    invoiceId: `INV-${i}`, billingCycle: '2026-10', planCode: 'POST-20GB', currency: 'ZMW', billAmount: 100 + (i % 300),
    dataUsedMb: 1000 + i, voiceMinutes: i % 500, smsCount: i % 20, daysOverdue: i % 5 === 0 ? 12 : 0,
    paymentStatus: i % 5 === 0 ? 'OVERDUE' : 'PAID', paymentMethod: 'card', topUpAmount: null
  }
}

async function sourceRun (): Promise<Run> {
  const { config, cleanup } = await isolatedConfig({ TOPIC_PARTITIONS: '3', INGEST_BATCH_MESSAGES: '150', INGEST_BATCH_WAIT_MS: '50' }, 'hostile')
  await ensureProjectTopics(createKafka({ brokers: config.kafka.brokers, clientId: 'test-topics', logger }), config.topics)
  const registered = await registerSourceSchemas({ registry: createSchemaRegistry({ url: config.registry.url }), url: config.registry.url, topics: config.topics })
  const ids = Object.fromEntries(registered.map(r => [r.name, r.latestId]))
  return { config, cleanup, ids, types: { network: avroType((await latestSchema('network')).schema), billing: avroType((await latestSchema('billing')).schema) } }
}

/** Sends each group of messages in its own request, in order (a near-limit message must travel alone). */
async function produceInOrder (config: Config, topic: string, groups: ReadonlyArray<readonly Message[]>): Promise<void> {
  const producer = createKafka({ brokers: config.kafka.brokers, clientId: 'test-hostile', logger }).producer({ idempotent: true })
  await producer.connect()
  try {
    for (const messages of groups) if (messages.length > 0) await producer.send({ topic, acks: -1, messages: [...messages] })
  } finally {
    await producer.disconnect()
  }
}

function framedWith (schemaId: number, body: Buffer, magic = 0): Buffer {
  const header = Buffer.alloc(5)
  header.writeUInt8(magic, 0)
  header.writeInt32BE(schemaId, 1)
  return Buffer.concat([header, body])
}

/**
 * Runs a role until it has caught up, stopping it after `ms` instead of hanging: its summary
 * (lag, stats, last error) then says why it did not catch up.
 */
async function caughtUpWithin<T> (ms: number, run: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const stop = new AbortController()
  const timer = setTimeout(() => { stop.abort() }, ms)
  try {
    return await run(stop.signal)
  } finally {
    clearTimeout(timer)
  }
}

interface Poison { name: string, code: string, message: Message }

/** Asserts the dead-letter topic holds exactly `poison`, each with its code, reason, provenance and original bytes. */
function assertDeadLettered (dead: readonly ReadMessage[], poison: readonly Poison[], topic: string): void {
  assert.equal(dead.length, poison.length, `dead-lettered: ${dead.map(d => d.key?.toString() ?? 'null').join(', ')}`)
  for (const p of poison) {
    const found = dead.find(d => d.key?.toString() === p.message.key)
    assert.ok(found !== undefined, `${p.name} is dead-lettered`)
    assert.equal(found.headers[DLQ_HEADERS.code]?.toString(), p.code, p.name)
    assert.ok((found.headers[DLQ_HEADERS.reason]?.toString() ?? '').length > 10, `${p.name} carries its reason`)
    assert.equal(found.headers[DLQ_HEADERS.topic]?.toString(), topic)
    assert.match(found.headers[DLQ_HEADERS.offset]?.toString() ?? '', /^\d+$/)
    assert.deepEqual(found.value, p.message.value, `${p.name} keeps its original bytes`)
  }
}

describe('hostile messages', () => {
  describe('when they arrive on the source topics between valid events', () => {
    let hostile: Run
    let control: Run
    before(async () => { [hostile, control] = await Promise.all([sourceRun(), sourceRun()]) }, { timeout: 90_000 })
    after(async () => { await Promise.all([hostile.cleanup(), control.cleanup()]) })

    it('dead-letters the undecodable, quarantines the unacceptable, and lands the valid events as a control run does', { timeout: 120_000 }, async () => {
      // Valid traffic: the same events for both runs (each run encodes them with its own schema ids).
      const validEvents = Array.from({ length: 600 }, (_, i) => network(`SUB-${String(i % 29).padStart(6, '0')}`, i))
      const bills = Array.from({ length: 60 }, (_, i) => billing(`SUB-${String(i % 29).padStart(6, '0')}`, i))
      const keyless = network('SUB-000900', 9001)
      const misKeyed = network('SUB-000901', 9002)
      const encode = (run: Run, e: NetworkEvent): Buffer => encodeFramed(run.ids.network ?? -1, run.types.network, e)
      const keyed = (run: Run, events: readonly NetworkEvent[]): Message[] => events.map(e => ({ key: e.subscriberId, value: encode(run, e) }))

      const body = hostile.types.network.toBuffer(network('SUB-000001', 1))
      const poison: Poison[] = [
        { name: 'random bytes', code: 'CHURN_AVRO_BAD_FRAME', message: { key: 'P-random', value: Buffer.concat([Buffer.from([7]), randomBytes(256)]) } },
        { name: 'wrong magic byte', code: 'CHURN_AVRO_BAD_FRAME', message: { key: 'P-magic', value: framedWith(hostile.ids.network ?? -1, body, 1) } },
        { name: 'unknown schema id', code: 'CHURN_AVRO_UNKNOWN_SCHEMA', message: { key: 'P-unknown', value: framedWith(987_654_321, body) } },
        { name: 'valid Avro of another schema', code: 'CHURN_AVRO_WRONG_SCHEMA', message: { key: 'P-other', value: encodeFramed(hostile.ids.billing ?? -1, hostile.types.billing, billing('SUB-000002', 7)) } }
      ]
      const controlled = network(CONTROL_ID, 9003)
      const oversize = { ...network('SUB-000003', 9004), cellId: 'C'.repeat(NEAR_LIMIT) }
      const oversizeValue = encode(hostile, oversize)
      assert.ok(oversizeValue.length > NEAR_LIMIT && oversizeValue.length < 1_000_000)

      // Past the broker's limit nothing is even accepted.
      const producer = createKafka({ brokers: hostile.config.kafka.brokers, clientId: 'test-too-large', logger }).producer({ retry: { retries: 0 } })
      await producer.connect()
      try {
        await assert.rejects(producer.send({ topic: hostile.config.topics.network, acks: -1, messages: [{ key: 'SUB-000004', value: encode(hostile, { ...network('SUB-000004', 9005), cellId: 'C'.repeat(1_200_000) }) }] }), /larger than the max message size/)
      } finally {
        await producer.disconnect()
      }

      await produceInOrder(hostile.config, hostile.config.topics.network, [
        keyed(hostile, validEvents.slice(0, 300)),
        poison.map(p => p.message),
        [{ key: CONTROL_ID, value: encode(hostile, controlled) }, { key: null, value: encode(hostile, keyless) }, { key: 'SUB-000123', value: encode(hostile, misKeyed) }],
        [{ key: oversize.subscriberId, value: oversizeValue }],
        keyed(hostile, validEvents.slice(300))
      ])
      await produceInOrder(hostile.config, hostile.config.topics.billing, [bills.map(b => ({ key: b.subscriberId, value: encodeFramed(hostile.ids.billing ?? -1, hostile.types.billing, b) }))])
      await produceInOrder(control.config, control.config.topics.network, [keyed(control, [...validEvents, keyless, misKeyed])])
      await produceInOrder(control.config, control.config.topics.billing, [bills.map(b => ({ key: b.subscriberId, value: encodeFramed(control.ids.billing ?? -1, control.types.billing, b) }))])

      const summary = await caughtUpWithin(45_000, async signal => await runIngest({ config: hostile.config, logger, untilCaughtUp: true, signal }))
      const controlSummary = await caughtUpWithin(45_000, async signal => await runIngest({ config: control.config, logger, untilCaughtUp: true, signal }))
      assert.equal(summary.lag, 0, `ingest caught up: ${JSON.stringify(summary)}`)
      assert.equal(controlSummary.lag, 0, `the control run caught up: ${JSON.stringify(controlSummary)}`)
      assert.equal(summary.messages, 600 + 60 + 2 + poison.length + 2)
      assert.equal(summary.deadLettered, poison.length)
      assert.equal(summary.quarantined, 2)
      assert.equal(controlSummary.deadLettered + controlSummary.quarantined, 0)

      const kafka = createKafka({ brokers: hostile.config.kafka.brokers, clientId: 'test-read', logger })
      assertDeadLettered(await readTopic(kafka, hostile.config.topics.deadLetter(hostile.config.topics.network)), poison, hostile.config.topics.network)

      const controlView = await withLakehouse(control.config, async lakehouse => ({ silver: await silverEventIds(lakehouse), gold: await goldSnapshot(lakehouse) }))
      await withLakehouse(hostile.config, async lakehouse => {
        const quarantined = (await lakehouse.connection.runAndReadAll('SELECT event_id, subscriber_id, reasons FROM quarantine ORDER BY event_id')).getRowsJson()
        assert.deepEqual(quarantined, [[controlled.eventId, CONTROL_ID, ['invalid_subscriber_id']], [oversize.eventId, oversize.subscriberId, ['text_too_long']]])
        const report = await lakehouse.qualityReport()
        assert.equal(report.pipeline.dead_lettered, poison.length)
        assert.equal(report.pipeline.bronze_total, 600 + 60 + 2 + 2, 'every decodable message is in Bronze')
        assert.deepEqual(await silverEventIds(lakehouse), controlView.silver, 'Silver holds exactly the valid events, as without the hostile ones')
        assertSameGold(await goldSnapshot(lakehouse), controlView.gold)
        assert.deepEqual(await lakehouse.goldDifferences(), [])
      })
      assert.ok(controlView.gold.has(keyless.subscriberId) && controlView.gold.has(misKeyed.subscriberId), 'a keyless and a mis-keyed event count for the subscriber in their value')
      assert.ok(!controlView.gold.has('SUB-000123'))

      // Nothing of the quarantined events reaches the changelog (the scorer's input).
      const changelogKeys = new Set((await readTopic(kafka, hostile.config.topics.features)).map(m => m.key?.toString()))
      assert.deepEqual([...changelogKeys].sort(), [...controlView.gold.keys()].sort())
    })
  })

  describe('when they arrive on the feature changelog between valid records', () => {
    let config: Config
    let cleanup: () => Promise<void>
    let fixture: ScoringFixture
    let networkId: number
    before(async () => {
      ({ config, cleanup } = await isolatedConfig({ TOPIC_PARTITIONS: '3' }, 'hostile'))
      fixture = await scoringFixture(config)
      const registered = await registerSourceSchemas({ registry: createSchemaRegistry({ url: config.registry.url }), url: config.registry.url, topics: config.topics })
      networkId = registered.find(r => r.name === 'network')?.latestId ?? -1
    }, { timeout: 90_000 })
    after(async () => { await cleanup() })

    it('dead-letters the undecodable, counts and skips the unscorable, and scores every valid record once', { timeout: 120_000 }, async () => {
      const type = avroType((await latestSchema('feature-changelog')).schema)
      const record = (change: FeatureChange, key: string | null = change.subscriberId): Message => ({ key, value: encodeFramed(fixture.changelogId, type, change) })
      const valid = Array.from({ length: 40 }, (_, i) => featureChange(`SUB-V${String(i).padStart(3, '0')}`, 1, i % 2 === 0 ? fixture.degraded : fixture.healthy))
      // Keyed by another subscriber: the value is the truth (the store and the event are the value's).
      const misKeyed = featureChange('SUB-MISKEYED', 1, fixture.degraded)
      const body = type.toBuffer(featureChange('SUB-P', 1, fixture.degraded))
      const poison: Poison[] = [
        { name: 'random bytes', code: 'CHURN_AVRO_BAD_FRAME', message: { key: 'P-random', value: randomBytes(300) } },
        { name: 'wrong magic byte', code: 'CHURN_AVRO_BAD_FRAME', message: { key: 'P-magic', value: framedWith(fixture.changelogId, body, 1) } },
        { name: 'unknown schema id', code: 'CHURN_AVRO_UNKNOWN_SCHEMA', message: { key: 'P-unknown', value: framedWith(987_654_321, body) } },
        { name: 'valid Avro of another schema', code: 'CHURN_AVRO_WRONG_SCHEMA', message: { key: 'P-other', value: encodeFramed(networkId, avroType((await latestSchema('network')).schema), network('SUB-P', 1, randomUUID())) } }
      ]
      const oversize = featureChange('S'.repeat(NEAR_LIMIT), 1, fixture.degraded)
      const unscorable = [
        record(featureChange(CONTROL_ID, 1, fixture.degraded), 'SUB-CONTROL'),
        record(featureChange('SUB-OTHER-DEFINITION', 1, fixture.degraded, 'sha256:another-definition'))
      ]
      await produceInOrder(config, config.topics.features, [
        valid.slice(0, 20).map(c => record(c)),
        poison.map(p => p.message),
        unscorable,
        [record(oversize, 'SUB-OVERSIZE')],
        [record(misKeyed, 'SUB-V000')],
        valid.slice(20).map(c => record(c))
      ])
      // The changelog is compacted: the broker refuses a record without a key outright.
      const producer = createKafka({ brokers: config.kafka.brokers, clientId: 'test-keyless', logger }).producer({ retry: { retries: 0 } })
      await producer.connect()
      try {
        await assert.rejects(producer.send({ topic: config.topics.features, acks: -1, messages: [record(featureChange('SUB-KEYLESS', 1, fixture.degraded), null)] }), (error: Error & { type?: string }) => error.type === 'INVALID_RECORD')
      } finally {
        await producer.disconnect()
      }

      const summary = await caughtUpWithin(60_000, async signal => await runScorer({ config, logger, untilCaughtUp: true, signal }))
      assert.equal(summary.lag, 0, `the scorer caught up: ${JSON.stringify(summary)}`)
      assert.equal(summary.deadLettered, poison.length)
      assert.equal(summary.invalid, 2, 'the control-character and the 900 KB subscriber ids')
      assert.equal(summary.hashMismatch, 1)
      assert.equal(summary.scored, valid.length + 1)

      const kafka = createKafka({ brokers: config.kafka.brokers, clientId: 'test-read', logger })
      assertDeadLettered(await readTopic(kafka, config.topics.deadLetter(config.topics.features)), poison, config.topics.features)

      // Every valid subscriber scored once: the degraded ones announced high with one CRM job each.
      const scoredIds = [...valid, misKeyed].map(c => c.subscriberId)
      const high = [...valid.filter((_, i) => i % 2 === 0), misKeyed].map(c => c.subscriberId).sort()
      const events = await riskEvents(config)
      assert.deepEqual(events.map(e => e.subscriberId).sort(), high)
      assert.ok(events.every(e => e.tier === 'high' && e.featureVersion === 1))
      assert.equal(await jobCount(config, 'crm'), high.length)

      const redis = createRedis({ url: config.redis.url })
      try {
        const states = await new OnlineStore(redis, config.redis.prefix).states(scoredIds)
        assert.ok(states.every(s => s?.version === 1), 'every valid subscriber is in the store')
        // No key was built from an id the scorer refused.
        const keys: string[] = []
        let cursor = '0'
        do {
          const [next, found] = await redis.scan(cursor, 'MATCH', `${config.redis.prefix}:*`, 'COUNT', 1000)
          cursor = next
          keys.push(...found)
        } while (cursor !== '0')
        assert.ok(keys.length > 0)
        assert.deepEqual(keys.filter(k => /[\p{Cc}]|SSSS|OTHER-DEFINITION/u.test(k)), [])
      } finally {
        redis.disconnect()
      }
    })
  })
})
