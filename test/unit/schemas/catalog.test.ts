import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import path from 'node:path'
import { generateTypes } from '../../../schemas/codegen.ts'
import { SOURCE_STREAMS, SUBJECTS, avroType, schemaVersions } from '../../../schemas/index.ts'

describe('schemas/avro', () => {
  for (const subject of SUBJECTS) {
    describe(subject, () => {
      it('has versions 1..N that avsc accepts', async () => {
        const versions = await schemaVersions(subject)
        assert.ok(versions.length >= 1)
        for (const version of versions) assert.doesNotThrow(() => avroType(version.schema), version.file)
      })

      it('carries the event envelope every source stream shares', { skip: !SOURCE_STREAMS.some(s => s.subject === subject) && 'not a source stream' }, async () => {
        for (const { schema, file } of await schemaVersions(subject)) {
          const fields = new Map((schema.fields as Array<{ name: string, type: unknown }>).map(f => [f.name, f.type]))
          assert.equal(fields.get('eventId'), 'string', file)
          assert.equal(fields.get('subscriberId'), 'string', file)
          assert.deepEqual(fields.get('eventTime'), { type: 'long', logicalType: 'timestamp-millis' }, file)
          assert.equal(fields.get('qualityScore'), 'double', file)
        }
      })

      it('documents every field', async () => {
        for (const { schema, file } of await schemaVersions(subject)) {
          for (const field of schema.fields as Array<{ name: string, doc?: string }>) assert.ok((field.doc ?? '') !== '', `${file}: ${field.name} has no doc`)
        }
      })
    })
  }

  it('covers every source stream ingest consumes', () => {
    assert.deepEqual(SOURCE_STREAMS.map(s => s.subject), ['billing', 'network', 'device', 'crm-outcome'])
  })

  it('holds the reference design\'s Gold inputs', async () => {
    const names = async (subject: typeof SUBJECTS[number]): Promise<string[]> => ((await schemaVersions(subject))[0]?.schema.fields as Array<{ name: string }>).map(f => f.name)
    for (const field of ['billAmount', 'dataUsedMb', 'daysOverdue', 'paymentStatus']) assert.ok((await names('billing')).includes(field), field)
    for (const field of ['signalDbm', 'latencyMs', 'packetLossPct']) assert.ok((await names('network')).includes(field), field)
    assert.ok((await names('device')).includes('batteryPct'))
    for (const field of ['outcome', 'effectiveDate']) assert.ok((await names('crm-outcome')).includes(field), field)
  })
})

describe('schemas/avro/feature-changelog', () => {
  it('carries exactly the Gold features, each nullable, in the lakehouse\'s order', async () => {
    const { FEATURES } = await import('../../../lakehouse/features.ts')
    const [latest] = (await schemaVersions('feature-changelog')).slice(-1)
    const features = (latest?.schema.fields as Array<{ name: string, type: { fields: Array<{ name: string, type: unknown, default: unknown }> } }>).find(f => f.name === 'features')
    assert.ok(features !== undefined)
    assert.deepEqual(features.type.fields.map(f => [f.name, f.type, f.default]), FEATURES.map(f => [f.name, ['null', f.type], null]))
  })
})

describe('schemas/types.generated.ts', () => {
  it('is current with the schemas (regenerate with `npm run schemas:types`)', async () => {
    const committed = await readFile(path.resolve(import.meta.dirname, '../../../schemas/types.generated.ts'), 'utf8')
    assert.equal(committed, await generateTypes())
  })
})
