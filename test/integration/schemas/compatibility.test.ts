import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { Partitioners } from 'kafkajs'
import { loadConfig } from '../../../config/index.ts'
import {
  AvroCodec, avroType, createSchemaRegistry, encodeFramed, latestSchema, registerAvroSchema, registerSourceSchemas, schemaVersions, subjectForTopic
} from '../../../schemas/index.ts'
import type { BillingEvent, RegisteredSubject } from '../../../schemas/index.ts'
import { createKafka } from '../../../streams/kafka.ts'
import { config, logger } from '../../helpers/context.ts'

const run = randomUUID().slice(0, 8)
/** Topics (hence subjects) of this test only. */
const topics = loadConfig({
  TOPIC_BILLING: `test.billing.${run}`,
  TOPIC_NETWORK: `test.network.${run}`,
  TOPIC_DEVICE: `test.device.${run}`,
  TOPIC_CRM_OUTCOMES: `test.crm.${run}`
}, { cwd: process.cwd() }).topics

const registry = createSchemaRegistry({ url: config.registry.url })
let registered: RegisteredSubject[] = []

async function deleteSubject (subject: string): Promise<void> {
  const url = `${config.registry.url}/subjects/${encodeURIComponent(subject)}`
  await fetch(url, { method: 'DELETE' })
  await fetch(`${url}?permanent=true`, { method: 'DELETE' })
}

function billingEvent (): BillingEvent {
  return {
    eventId: randomUUID(), subscriberId: 'SUB-000001', eventTime: Date.now(), qualityScore: 91.5,
    invoiceId: 'INV-1', billingCycle: '2026-11', planCode: 'POST-20GB', currency: 'ZMW', billAmount: 349.9,
    dataUsedMb: 18000, voiceMinutes: 320, smsCount: 12, daysOverdue: 0, paymentStatus: 'PAID', paymentMethod: 'direct-debit', topUpAmount: null
  }
}

async function billingV1 (): Promise<Record<string, unknown>> {
  const [v1] = await schemaVersions('billing')
  assert.ok(v1 !== undefined)
  return v1.schema
}

/** A compatible v2: v1 plus an optional field. Test-only; the product's v2 would be a new file. */
async function billingV2 (): Promise<Record<string, unknown>> {
  const v1 = await billingV1()
  return { ...v1, fields: [...v1.fields as object[], { name: 'roamingCharges', type: ['null', 'double'], default: null, doc: 'Roaming charges in the period.' }] }
}

/** Round-trips one framed message through a real topic and returns the bytes that arrived. */
async function throughKafka (topic: string, value: Buffer): Promise<Buffer> {
  const kafka = createKafka({ brokers: config.kafka.brokers, clientId: `test-${run}`, logger })
  const admin = kafka.admin()
  const producer = kafka.producer({ idempotent: true, createPartitioner: Partitioners.DefaultPartitioner })
  const consumer = kafka.consumer({ groupId: `test-${randomUUID()}` })
  await admin.connect()
  try {
    await admin.createTopics({ waitForLeaders: true, topics: [{ topic, numPartitions: 1, replicationFactor: config.topics.replicationFactor }] })
    await producer.connect()
    await producer.send({ topic, messages: [{ key: 'SUB-000001', value }] })
    await consumer.connect()
    await consumer.subscribe({ topics: [topic], fromBeginning: true })
    return await new Promise<Buffer>((resolve, reject) => {
      consumer.run({ eachMessage: async ({ message }) => { if (message.value !== null) resolve(message.value); await Promise.resolve() } }).catch(reject)
    })
  } finally {
    await consumer.disconnect()
    await producer.disconnect()
    await admin.deleteTopics({ topics: [topic] }).catch(() => {})
    await admin.disconnect()
  }
}

describe('source schemas in the registry', () => {
  before(async () => {
    registered = await registerSourceSchemas({ registry, url: config.registry.url, topics })
  })
  after(async () => {
    for (const subject of registered) await deleteSubject(subject.subject)
  })

  it('registers every subject under <topic>-value with BACKWARD compatibility', async () => {
    assert.deepEqual(registered.map(r => r.subject), [topics.billing, topics.network, topics.device, topics.crmOutcomes].map(subjectForTopic))
    for (const subject of registered) {
      assert.ok(subject.latestId > 0)
      const level = await (await fetch(`${config.registry.url}/config/${encodeURIComponent(subject.subject)}`)).json() as { compatibilityLevel: string }
      assert.equal(level.compatibilityLevel, 'BACKWARD', subject.subject)
    }
  })

  it('is idempotent: registering again returns the same ids', async () => {
    const again = await registerSourceSchemas({ registry, url: config.registry.url, topics })
    assert.deepEqual(again.map(r => r.ids), registered.map(r => r.ids))
  })

  describe('when a new version breaks compatibility', () => {
    it('is refused at registration', async () => {
      const v1 = await billingV1()
      const breaking = { ...v1, fields: (v1.fields as Array<{ name: string }>).map(f => f.name === 'billAmount' ? { name: 'billAmount', type: 'string' } : f) }
      await assert.rejects(registerAvroSchema({ registry, url: config.registry.url, subject: subjectForTopic(topics.billing), schema: breaking }), { code: 'CHURN_SCHEMA_INCOMPATIBLE' })
      const newRequiredField = { ...v1, fields: [...v1.fields as object[], { name: 'mandatoryNew', type: 'string' }] }
      await assert.rejects(registerAvroSchema({ registry, url: config.registry.url, subject: subjectForTopic(topics.billing), schema: newRequiredField }), { code: 'CHURN_SCHEMA_INCOMPATIBLE' })
    })
  })

  describe('when a compatible v2 adds an optional field', () => {
    it('a v1 consumer reads v2 events, and a v2 consumer reads v1 events, through Kafka', async () => {
      const subject = subjectForTopic(topics.billing)
      const v2Schema = await billingV2()
      const v2Id = await registerAvroSchema({ registry, url: config.registry.url, subject, schema: v2Schema })
      const v1Id = registered[0]?.latestId ?? -1
      assert.notEqual(v2Id, v1Id)
      const v1Reader = avroType((await latestSchema('billing')).schema)
      const v2Reader = avroType(v2Schema)

      const codec = new AvroCodec({ registryUrl: config.registry.url })
      const event = billingEvent()
      const fromV2 = await throughKafka(`${topics.billing}.v2`, encodeFramed(v2Id, v2Reader, { ...event, roamingCharges: 12.5 }))
      await codec.loadWriters([v2Id])
      const readByV1 = codec.decode<BillingEvent>(fromV2, v1Reader)
      assert.equal(readByV1.schemaId, v2Id)
      assert.deepEqual({ ...readByV1.value }, event)

      const fromV1 = await throughKafka(`${topics.billing}.v1`, encodeFramed(v1Id, v1Reader, event))
      await codec.loadWriters([v1Id])
      const readByV2 = codec.decode<BillingEvent & { roamingCharges: number | null }>(fromV1, v2Reader)
      assert.deepEqual({ ...readByV2.value }, { ...event, roamingCharges: null })
    })
  })

  describe('when a message names a schema id the registry does not know', () => {
    it('looks it up again, then classifies it as unknown', async () => {
      const codec = new AvroCodec({ registryUrl: config.registry.url, unknownIdRetries: 2, retryDelayMs: 10 })
      const id = 2_000_000_000
      await codec.loadWriters([id])
      const reader = avroType(await billingV1())
      assert.throws(() => codec.decode(encodeFramed(id, reader, billingEvent()), reader), { code: 'CHURN_AVRO_UNKNOWN_SCHEMA', message: /unknown to the registry/ })
    })
  })

  describe('when the registry is down', () => {
    it('reports it as retriable rather than as poison', async () => {
      const codec = new AvroCodec({ registryUrl: 'http://127.0.0.1:1/apis/ccompat/v7', requestTimeoutMs: 1000 })
      await assert.rejects(codec.loadWriters([1]), (error: Error & { code?: string, retriable?: boolean }) => {
        assert.equal(error.code, 'CHURN_SCHEMA_REGISTRY_UNAVAILABLE')
        assert.equal(error.retriable, true)
        return true
      })
    })
  })
})
