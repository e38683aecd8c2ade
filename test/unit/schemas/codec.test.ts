import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { AvroCodec, avroType, encodeFramed, frameSchemaId } from '../../../schemas/index.ts'

const V1 = { type: 'record', name: 'Reading', namespace: 't', fields: [{ name: 'id', type: 'string' }, { name: 'level', type: 'double' }, { name: 'state', type: { type: 'enum', name: 'State', symbols: ['UNKNOWN', 'ON', 'OFF'], default: 'UNKNOWN' } }] }
const V2 = { ...V1, fields: [...V1.fields, { name: 'note', type: ['null', 'string'], default: null }] }
const V2_MORE_STATES = { ...V1, fields: [V1.fields[0], V1.fields[1], { name: 'state', type: { type: 'enum', name: 'State', symbols: ['UNKNOWN', 'ON', 'OFF', 'STANDBY'] } }] }
const OTHER = { type: 'record', name: 'Other', namespace: 't', fields: [{ name: 'x', type: 'int' }] }

function codecWith (writers: Record<number, object>): AvroCodec {
  const codec = new AvroCodec({ registryUrl: 'http://registry.invalid' })
  for (const [id, schema] of Object.entries(writers)) codec.remember(Number(id), avroType(schema))
  return codec
}

describe('encodeFramed and frameSchemaId', () => {
  it('write and read the Confluent frame: magic byte 0, big-endian id, body', () => {
    const framed = encodeFramed(258, avroType(V1), { id: 'a', level: 1.5, state: 'ON' })
    assert.equal(framed[0], 0)
    assert.deepEqual([...framed.subarray(1, 5)], [0, 0, 1, 2])
    assert.equal(frameSchemaId(framed), 258)
  })

  describe('when the frame is wrong', () => {
    it('refuses a wrong magic byte, a short message and a null value as bad frames', () => {
      assert.throws(() => frameSchemaId(Buffer.from([1, 0, 0, 0, 1, 2])), { code: 'CHURN_AVRO_BAD_FRAME', message: /magic byte is 1/ })
      assert.throws(() => frameSchemaId(Buffer.from([0, 0, 1])), { code: 'CHURN_AVRO_BAD_FRAME', message: /3 bytes is shorter/ })
      assert.throws(() => frameSchemaId(null), { code: 'CHURN_AVRO_BAD_FRAME' })
    })
  })
})

describe('AvroCodec', () => {
  it('decodes what it encoded', () => {
    const codec = codecWith({ 1: V1 })
    const value = { id: 'a', level: 2.25, state: 'OFF' }
    assert.deepEqual({ ...codec.decode(encodeFramed(1, avroType(V1), value), avroType(V1)).value as object }, value)
  })

  it('reads a v2 event (new optional field) with a v1 reader', () => {
    const codec = codecWith({ 2: V2 })
    const { value, schemaId } = codec.decode<Record<string, unknown>>(encodeFramed(2, avroType(V2), { id: 'a', level: 1, state: 'ON', note: 'hi' }), avroType(V1))
    assert.equal(schemaId, 2)
    assert.deepEqual({ ...value }, { id: 'a', level: 1, state: 'ON' })
  })

  it('reads a v1 event with a v2 reader, filling the new field\'s default', () => {
    const codec = codecWith({ 1: V1 })
    const { value } = codec.decode<Record<string, unknown>>(encodeFramed(1, avroType(V1), { id: 'a', level: 1, state: 'ON' }), avroType(V2))
    assert.deepEqual({ ...value }, { id: 'a', level: 1, state: 'ON', note: null })
  })

  it('maps an enum symbol the reader does not know to the reader\'s default', () => {
    const codec = codecWith({ 3: V2_MORE_STATES })
    const { value } = codec.decode<{ state: string }>(encodeFramed(3, avroType(V2_MORE_STATES), { id: 'a', level: 1, state: 'STANDBY' }), avroType(V1))
    assert.equal(value.state, 'UNKNOWN')
  })

  describe('when a message is poison', () => {
    it('classifies a body of another schema as the wrong schema', () => {
      const codec = codecWith({ 9: OTHER })
      assert.throws(() => codec.decode(encodeFramed(9, avroType(OTHER), { x: 1 }), avroType(V1)), { code: 'CHURN_AVRO_WRONG_SCHEMA', message: /schema id 9 \(t\.Other\) cannot be read as t\.Reading/ })
    })

    it('classifies a truncated or padded body as corrupt', () => {
      const codec = codecWith({ 1: V1 })
      const framed = encodeFramed(1, avroType(V1), { id: 'abcdef', level: 1, state: 'ON' })
      assert.throws(() => codec.decode(framed.subarray(0, framed.length - 4), avroType(V1)), { code: 'CHURN_AVRO_CORRUPT' })
      assert.throws(() => codec.decode(Buffer.concat([framed, Buffer.from([1, 2, 3])]), avroType(V1)), { code: 'CHURN_AVRO_CORRUPT' })
    })

    it('refuses an id whose writer schema was never loaded', () => {
      const codec = codecWith({})
      assert.throws(() => codec.decode(encodeFramed(77, avroType(V1), { id: 'a', level: 1, state: 'ON' }), avroType(V1)), { code: 'CHURN_AVRO_UNKNOWN_SCHEMA' })
    })
  })
})
