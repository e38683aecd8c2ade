import { after, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createRedis } from '../../../core/redis.ts'
import { createSchemaRegistry, registerAvroSchema } from '../../../schemas/index.ts'
import { runSmokeChain } from '../../../stack/smoke.ts'
import { config, logger, uniqueName } from '../../helpers/context.ts'

const V1 = { type: 'record', name: 'Probe', namespace: 'dev.churnscorer.test', fields: [{ name: 'a', type: 'string' }] }
const V2_COMPATIBLE = { ...V1, fields: [...V1.fields, { name: 'b', type: ['null', 'string'], default: null }] }
const V2_BREAKING = { ...V1, fields: [{ name: 'a', type: 'int' }] }

async function deleteSubject (subject: string): Promise<void> {
  const url = `${config.registry.url}/subjects/${encodeURIComponent(subject)}`
  await fetch(url, { method: 'DELETE' })
  await fetch(`${url}?permanent=true`, { method: 'DELETE' })
}

describe('the smoke chain', () => {
  it('registers an Avro schema, round-trips an Avro event through Kafka and completes a BullMQ job', async () => {
    const report = await runSmokeChain({ config, logger })
    assert.ok(report.schemaId > 0)
    assert.equal(report.received.schemaId, report.schemaId, 'the message carries the registered schema id in its Confluent frame')
    assert.deepEqual(report.received.event, report.sent)
    assert.equal(report.received.key, report.sent.subscriberId)
    assert.deepEqual(report.job.result, { doubled: 42 })
  })

  it('leaves nothing behind', async () => {
    const report = await runSmokeChain({ config, logger })
    const subjects = await (await fetch(`${config.registry.url}/subjects`)).json() as string[]
    assert.ok(!subjects.includes(report.subject), 'the smoke subject was deleted')
    const redis = createRedis({ url: config.redis.url })
    after(() => redis.disconnect())
    assert.deepEqual(await redis.keys(`bull:${report.job.queue}:*`), [])
  })
})

describe('registerAvroSchema', () => {
  const registry = createSchemaRegistry({ url: config.registry.url })

  it('sets the subject to BACKWARD and accepts a compatible v2', async () => {
    const subject = uniqueName('test-register')
    after(async () => { await deleteSubject(subject) })
    const v1 = await registerAvroSchema({ registry, url: config.registry.url, subject, schema: V1 })
    const v2 = await registerAvroSchema({ registry, url: config.registry.url, subject, schema: V2_COMPATIBLE })
    assert.notEqual(v1, v2)
    const level = await (await fetch(`${config.registry.url}/config/${subject}`)).json() as { compatibilityLevel: string }
    assert.equal(level.compatibilityLevel, 'BACKWARD')
    assert.equal(await registerAvroSchema({ registry, url: config.registry.url, subject, schema: V1 }), v1, 'registering a known schema again returns its id')
  })

  it('refuses a breaking change at registration', async () => {
    const subject = uniqueName('test-register')
    after(async () => { await deleteSubject(subject) })
    await registerAvroSchema({ registry, url: config.registry.url, subject, schema: V1 })
    await assert.rejects(registerAvroSchema({ registry, url: config.registry.url, subject, schema: V2_BREAKING }), (error: Error & { code?: string }) => {
      assert.equal(error.code, 'CHURN_SCHEMA_INCOMPATIBLE')
      assert.match(error.message, /not BACKWARD compatible/)
      return true
    })
  })

  describe('when the subject already exists without a level of its own', () => {
    it('still refuses a breaking change (the bare client would check it against the registry\'s global NONE)', async () => {
      const subject = uniqueName('test-register')
      after(async () => { await deleteSubject(subject) })
      // Another producer registered v1 straight through the REST API, setting no subject level.
      const created = await fetch(`${config.registry.url}/subjects/${subject}/versions`, {
        method: 'POST',
        headers: { 'content-type': 'application/vnd.schemaregistry.v1+json' },
        body: JSON.stringify({ schema: JSON.stringify(V1) })
      })
      assert.equal(created.status, 200)
      await assert.rejects(registerAvroSchema({ registry, url: config.registry.url, subject, schema: V2_BREAKING }), { code: 'CHURN_SCHEMA_INCOMPATIBLE' })
    })
  })

  it('says when the schema is not valid Avro', async () => {
    const subject = uniqueName('test-register')
    after(async () => { await deleteSubject(subject) })
    await assert.rejects(registerAvroSchema({ registry, url: config.registry.url, subject, schema: { type: 'record', name: 'X', fields: [{ name: 'a', type: 'no-such-type' }] } }), { code: 'CHURN_SCHEMA_INVALID' })
  })
})

describe('the local Redis', () => {
  it('persists append-only and never evicts queued jobs', async () => {
    const redis = createRedis({ url: config.redis.url })
    after(() => redis.disconnect())
    assert.deepEqual(await redis.config('GET', 'appendonly'), ['appendonly', 'yes'])
    assert.deepEqual(await redis.config('GET', 'maxmemory-policy'), ['maxmemory-policy', 'noeviction'])
  })
})
