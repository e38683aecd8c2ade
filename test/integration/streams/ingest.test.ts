/**
 * Ingest against the real stack: valid events land in Bronze exactly once, every undecodable
 * message reaches its dead-letter topic with its bytes and its reason, bad values are quarantined,
 * changed Gold rows reach the changelog, and a restart (even with Kafka's committed offsets
 * rewound) lands nothing twice.
 */
import assert from 'node:assert/strict'
import { randomBytes, randomUUID } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { Partitioners } from 'kafkajs'
import type { Message } from 'kafkajs'
import type { Type } from 'avsc'
import type { Config } from '../../../config/index.ts'
import { Lakehouse } from '../../../lakehouse/lakehouse.ts'
import { AvroCodec, avroType, createSchemaRegistry, encodeFramed, latestSchema, registerSourceSchemas } from '../../../schemas/index.ts'
import type { BillingEvent, DeviceEvent, FeatureChange, NetworkEvent, RegisteredSubject } from '../../../schemas/index.ts'
import { DLQ_HEADERS } from '../../../streams/ingest.ts'
import { runIngest } from '../../../streams/ingest-role.ts'
import { createKafka } from '../../../streams/kafka.ts'
import { ensureTopics, projectTopics } from '../../../streams/topics.ts'
import { isolatedConfig, logger } from '../../helpers/context.ts'
import { readTopic } from '../../helpers/topics.ts'

let config: Config
let cleanup: () => Promise<void>
let ids: Record<string, number>
const types: Record<string, Type> = {}

const DAY = 86_400_000
const now = Date.now()

function network (subscriberId: string, i: number): NetworkEvent {
  return {
    eventId: randomUUID(), subscriberId, eventTime: now - (i % 20) * DAY / 2 - i, qualityScore: 60 + (i % 40),
    cellId: `CELL-${i % 7}`, radioTechnology: 'LTE_4G', signalDbm: -70 - (i % 40), latencyMs: 20 + (i % 90), packetLossPct: (i % 10) / 3,
    throughputMbps: 5 + (i % 50), droppedCalls: i % 3, sessionMinutes: i % 60
  }
}
function billing (subscriberId: string, i: number): BillingEvent {
  return {
    eventId: randomUUID(), subscriberId, eventTime: now - (i % 30) * DAY, qualityScore: 90,
    invoiceId: `INV-${i}`, billingCycle: '2026-10', planCode: 'POST-20GB', currency: 'ZMW', billAmount: 100 + (i % 300),
    dataUsedMb: 1000 + i, voiceMinutes: i % 500, smsCount: i % 20, daysOverdue: i % 5 === 0 ? 12 : 0,
    paymentStatus: i % 5 === 0 ? 'OVERDUE' : 'PAID', paymentMethod: 'card', topUpAmount: null
  }
}
function device (subscriberId: string, i: number): DeviceEvent {
  return {
    eventId: randomUUID(), subscriberId, eventTime: now - (i % 10) * DAY, qualityScore: 75,
    deviceId: `DEV-${subscriberId}`, deviceModel: 'Phone X', osVersion: 'Android 15', batteryPct: i % 100,
    appSessions: i % 9, activeMinutes: i % 300, storageFreePct: 40
  }
}

type Stream = 'billing' | 'network' | 'device'
const makers = { billing, network, device }

/** Valid events for `subscribers` subscribers, keyed by subscriber id. */
function validMessages (count: number, offset: number): { byTopic: Record<Stream, Message[]>, ids: string[] } {
  const byTopic: Record<Stream, Message[]> = { billing: [], network: [], device: [] }
  const eventIds: string[] = []
  for (let i = offset; i < offset + count; i++) {
    const stream: Stream = i % 10 === 0 ? 'billing' : i % 3 === 0 ? 'device' : 'network'
    const subscriberId = `SUB-${String(i % 37).padStart(6, '0')}`
    const event = makers[stream](subscriberId, i)
    eventIds.push(event.eventId)
    byTopic[stream].push({ key: subscriberId, value: encodeFramed(ids[stream] ?? -1, types[stream] as Type, event) })
  }
  return { byTopic, ids: eventIds }
}

async function produce (messages: Partial<Record<Stream, Message[]>>): Promise<void> {
  const kafka = createKafka({ brokers: config.kafka.brokers, clientId: 'test-produce', logger })
  const producer = kafka.producer({ idempotent: true, createPartitioner: Partitioners.DefaultPartitioner })
  await producer.connect()
  try {
    // In slices: one request over the broker's message.max.bytes is refused whole.
    for (let start = 0; ; start += 5000) {
      const topicMessages = Object.entries(messages)
        .map(([stream, list]) => ({ topic: config.topics[stream as Stream], messages: list.slice(start, start + 5000) }))
        .filter(t => t.messages.length > 0)
      if (topicMessages.length === 0) break
      await producer.sendBatch({ acks: -1, topicMessages })
    }
  } finally {
    await producer.disconnect()
  }
}

async function bronzeIds (): Promise<string[]> {
  const lakehouse = await Lakehouse.open({ path: config.lakehouse.path })
  try {
    const reader = await lakehouse.connection.runAndReadAll('SELECT event_id FROM bronze_billing UNION ALL SELECT event_id FROM bronze_network UNION ALL SELECT event_id FROM bronze_device')
    return reader.getRows().map(([id]) => String(id))
  } finally {
    lakehouse.close()
  }
}

before(async () => {
  ({ config, cleanup } = await isolatedConfig({ TOPIC_PARTITIONS: '3', INGEST_BATCH_MESSAGES: '150', INGEST_BATCH_WAIT_MS: '50' }))
  const kafka = createKafka({ brokers: config.kafka.brokers, clientId: 'test-setup', logger })
  const admin = kafka.admin()
  await admin.connect()
  await ensureTopics(admin, projectTopics(config.topics), config.topics.replicationFactor)
  await admin.disconnect()
  const registered: RegisteredSubject[] = await registerSourceSchemas({ registry: createSchemaRegistry({ url: config.registry.url }), url: config.registry.url, topics: config.topics })
  ids = Object.fromEntries(registered.map(r => [r.name, r.latestId]))
  for (const stream of ['billing', 'network', 'device'] as const) types[stream] = avroType((await latestSchema(stream)).schema)
})

after(async () => {
  await cleanup()
})

describe('ingest', () => {
  const poison: Array<{ name: string, code: string, message: Message }> = []
  let firstIds: string[] = []

  it('lands valid events once, dead-letters undecodable ones with their reason, and quarantines bad values', async () => {
    const valid = validMessages(1200, 0)
    firstIds = valid.ids
    const body = (types.network as Type).toBuffer(network('SUB-000001', 1))
    const framed = (id: number, b: Buffer): Buffer => {
      const header = Buffer.alloc(5)
      header.writeInt32BE(id, 1)
      return Buffer.concat([header, b])
    }
    poison.push(
      { name: 'random bytes', code: 'CHURN_AVRO_BAD_FRAME', message: { key: 'SUB-000002', value: Buffer.concat([Buffer.from([7]), randomBytes(64)]) } },
      { name: 'wrong magic byte', code: 'CHURN_AVRO_BAD_FRAME', message: { key: 'SUB-000003', value: Buffer.concat([Buffer.from([1]), framed(ids.network ?? -1, body).subarray(1)]) } },
      { name: 'too short', code: 'CHURN_AVRO_BAD_FRAME', message: { key: 'SUB-000004', value: Buffer.from([0, 0]) } },
      { name: 'tombstone', code: 'CHURN_AVRO_BAD_FRAME', message: { key: 'SUB-000005', value: null } },
      { name: 'unknown schema id', code: 'CHURN_AVRO_UNKNOWN_SCHEMA', message: { key: 'SUB-000006', value: framed(987_654_321, body) } },
      { name: 'valid Avro of another schema', code: 'CHURN_AVRO_WRONG_SCHEMA', message: { key: 'SUB-000007', value: encodeFramed(ids.billing ?? -1, types.billing as Type, billing('SUB-000007', 3)) } },
      { name: 'truncated body', code: 'CHURN_AVRO_CORRUPT', message: { key: 'SUB-000008', value: framed(ids.network ?? -1, body.subarray(0, 20)) } }
    )
    // A subscriber id with control characters decodes fine and is quarantined by the gate; a valid
    // event without a key lands (the subscriber comes from the value).
    const controlled = network('SUB-\u0007\u001b[31m', 5)
    const keyless = network('SUB-000009', 6)
    const network_ = [...valid.byTopic.network]
    network_.splice(100, 0, ...poison.map(p => p.message))
    network_.splice(500, 0, { key: 'SUB-bad', value: encodeFramed(ids.network ?? -1, types.network as Type, controlled) }, { key: null, value: encodeFramed(ids.network ?? -1, types.network as Type, keyless) })
    await produce({ ...valid.byTopic, network: network_ })

    const summary = await runIngest({ config, logger, untilCaughtUp: true })
    assert.equal(summary.lag, 0)
    assert.equal(summary.messages, 1200 + poison.length + 2)
    assert.equal(summary.deadLettered, poison.length)

    const landed = await bronzeIds()
    assert.equal(landed.length, 1202, 'every decodable event is in Bronze once')
    assert.equal(new Set(landed).size, landed.length)
    for (const id of [...valid.ids, controlled.eventId, keyless.eventId]) assert.ok(landed.includes(id), id)

    const kafka = createKafka({ brokers: config.kafka.brokers, clientId: 'test-read', logger })
    const dead = await readTopic(kafka, config.topics.deadLetter(config.topics.network))
    assert.equal(dead.length, poison.length)
    for (const p of poison) {
      const found = dead.find(d => d.key?.toString() === p.message.key)
      assert.ok(found !== undefined, `${p.name} is dead-lettered`)
      assert.equal(found.headers[DLQ_HEADERS.code]?.toString(), p.code, p.name)
      assert.ok((found.headers[DLQ_HEADERS.reason]?.toString() ?? '').length > 10, `${p.name} carries its reason`)
      assert.equal(found.headers[DLQ_HEADERS.topic]?.toString(), config.topics.network)
      assert.match(found.headers[DLQ_HEADERS.partition]?.toString() ?? '', /^\d+$/)
      assert.match(found.headers[DLQ_HEADERS.offset]?.toString() ?? '', /^\d+$/)
      assert.deepEqual(found.value, p.message.value === null ? null : Buffer.from(p.message.value as Buffer), `${p.name} keeps its original bytes`)
    }

    const lakehouse = await Lakehouse.open({ path: config.lakehouse.path })
    try {
      const report = await lakehouse.qualityReport()
      assert.equal(report.pipeline.dead_lettered, poison.length)
      assert.ok((report.quarantine_reasons.invalid_subscriber_id ?? 0) >= 1)
      assert.equal(report.pipeline.bronze_total, report.pipeline.silver_total + report.pipeline.quarantined)
      assert.deepEqual(await lakehouse.goldDifferences(), [])
      assert.equal((await lakehouse.counts()).changelog_pending, 0, 'nothing is left unpublished')

      // The changelog holds, for every Gold subscriber, its current version.
      const codec = new AvroCodec({ registryUrl: config.registry.url })
      const changeType = avroType((await latestSchema('feature-changelog')).schema)
      const changes = await readTopic(kafka, config.topics.features)
      await codec.loadWriters(changes.map(c => (c.value as Buffer).readInt32BE(1)))
      const latest = new Map<string, number>()
      for (const c of changes) {
        const { value } = codec.decode<FeatureChange>(c.value, changeType)
        assert.equal(c.key?.toString(), value.subscriberId)
        latest.set(value.subscriberId, Math.max(latest.get(value.subscriberId) ?? 0, value.version))
      }
      const gold = await lakehouse.connection.runAndReadAll('SELECT subscriber_id, version FROM gold_features')
      const rows = gold.getRows()
      assert.ok(rows.length >= 30)
      for (const [subscriber, version] of rows) assert.equal(latest.get(String(subscriber)), Number(version), `changelog version of ${String(subscriber)}`)
    } finally {
      lakehouse.close()
    }
  })

  it('resumes from the lakehouse offsets: nothing twice even when Kafka\'s committed offsets are rewound', async () => {
    const more = validMessages(600, 5000)
    await produce(more.byTopic)
    // Kafka's committed offsets go back to the start: only the lakehouse knows what is landed.
    const kafka = createKafka({ brokers: config.kafka.brokers, clientId: 'test-rewind', logger })
    const admin = kafka.admin()
    await admin.connect()
    await admin.setOffsets({ groupId: config.ingest.groupId, topic: config.topics.network, partitions: [0, 1, 2].map(partition => ({ partition, offset: '0' })) })
    await admin.disconnect()

    const summary = await runIngest({ config, logger, untilCaughtUp: true })
    assert.equal(summary.messages, 600, 'only the new messages are landed')
    const landed = await bronzeIds()
    assert.equal(landed.length, 1202 + 600)
    assert.equal(new Set(landed).size, landed.length)
    for (const id of [...firstIds, ...more.ids]) assert.ok(landed.includes(id), id)
    const lakehouse = await Lakehouse.open({ path: config.lakehouse.path })
    try {
      assert.deepEqual(await lakehouse.goldDifferences(), [])
    } finally {
      lakehouse.close()
    }
  })

  it('publishes the changelog of a batch touching 40,000 subscribers, megabytes of it, in requests the broker accepts', async () => {
    const messages: Message[] = []
    for (let i = 0; i < 40_000; i++) {
      const subscriberId = `BIG-${String(i).padStart(6, '0')}`
      messages.push({ key: subscriberId, value: encodeFramed(ids.network ?? -1, types.network as Type, network(subscriberId, i)) })
    }
    await produce({ network: messages })
    const big = { ...config, ingest: { ...config.ingest, batchMessages: 40_000, batchWaitMs: 5000 } }
    const summary = await runIngest({ config: big, logger, untilCaughtUp: true })
    assert.equal(summary.messages, 40_000)
    assert.ok(summary.batches <= 3, `${summary.batches} batches`)
    assert.ok(summary.changelogPublished >= 40_000, `${summary.changelogPublished} changelog rows published`)
    const lakehouse = await Lakehouse.open({ path: config.lakehouse.path })
    try {
      assert.equal((await lakehouse.counts()).changelog_pending, 0, 'nothing is left unpublished')
    } finally {
      lakehouse.close()
    }
  })
})
