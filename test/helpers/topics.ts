/** Reading a whole topic back in tests. */
import { randomUUID } from 'node:crypto'
import type { IHeaders, Kafka } from 'kafkajs'
import type { Config } from '../../config/index.ts'
import type { Logger } from '../../core/logger.ts'
import { AvroCodec, SOURCE_STREAMS, avroType, latestSchema } from '../../schemas/index.ts'
import type { SourceStream } from '../../schemas/index.ts'
import { createKafka } from '../../streams/kafka.ts'

export interface ReadMessage {
  partition: number
  offset: string
  key: Buffer | null
  value: Buffer | null
  headers: IHeaders
}

/**
 * Every message on `topic` up to its high watermarks at the time of the call, read with a fresh
 * consumer group. Waits for them however long the broker takes, up to `timeoutMs`.
 */
export async function readTopic (kafka: Kafka, topic: string, timeoutMs = 60_000): Promise<ReadMessage[]> {
  const admin = kafka.admin()
  await admin.connect()
  const ends = new Map((await admin.fetchTopicOffsets(topic)).map(o => [o.partition, { low: BigInt(o.low), high: BigInt(o.high) }]))
  await admin.disconnect()
  const expected = [...ends.values()].reduce((sum, o) => sum + Number(o.high - o.low), 0)
  const messages: ReadMessage[] = []
  if (expected === 0) return messages
  const consumer = kafka.consumer({ groupId: `test-read-${randomUUID()}` })
  await consumer.connect()
  try {
    await consumer.subscribe({ topics: [topic], fromBeginning: true })
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => { reject(new Error(`read ${messages.length} of ${expected} messages from ${topic} within ${timeoutMs} ms`)) }, timeoutMs)
      consumer.run({
        eachMessage: async ({ partition, message }) => {
          const end = ends.get(partition)
          if (end !== undefined && BigInt(message.offset) < end.high) {
            messages.push({ partition, offset: message.offset, key: message.key, value: message.value, headers: message.headers ?? {} })
          }
          if (messages.length >= expected) {
            clearTimeout(timer)
            resolve()
          }
          await Promise.resolve()
        }
      }).catch((error: unknown) => { clearTimeout(timer); reject(error instanceof Error ? error : new Error(String(error))) })
    })
  } finally {
    await consumer.disconnect()
  }
  return messages
}

export interface DecodedMessage {
  key: string
  partition: number
  offset: string
  schemaId: number
  value: Record<string, unknown>
}

/** Every message on each source topic, decoded as the stream's latest schema. */
export async function readSourceEvents (config: Config, logger: Logger, timeoutMs?: number): Promise<Map<SourceStream, DecodedMessage[]>> {
  const kafka = createKafka({ brokers: config.kafka.brokers, clientId: `test-read-${randomUUID()}`, logger })
  const codec = new AvroCodec({ registryUrl: config.registry.url })
  const decoded = new Map<SourceStream, DecodedMessage[]>()
  for (const source of SOURCE_STREAMS) {
    const reader = avroType((await latestSchema(source.subject)).schema)
    const messages = await readTopic(kafka, config.topics[source.topicKey], timeoutMs)
    await codec.loadWriters(messages.map(m => (m.value as Buffer).readInt32BE(1)))
    decoded.set(source.stream, messages.map(m => {
      const { value, schemaId } = codec.decode<Record<string, unknown>>(m.value, reader)
      return { key: m.key?.toString() ?? '', partition: m.partition, offset: m.offset, schemaId, value }
    }))
  }
  return decoded
}
