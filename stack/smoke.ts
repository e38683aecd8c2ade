/**
 * The smoke chain: proof that the stack's parts work together as the product uses them. It
 * registers an Avro schema through the registry client, sends an Avro message through Kafka and
 * reads it back decoded, and has a BullMQ worker complete a job. Every name is fresh, and every
 * resource it creates is removed afterwards.
 */
import { randomUUID } from 'node:crypto'
import { once } from 'node:events'
import { Partitioners } from 'kafkajs'
import { Queue, Worker } from 'bullmq'
import type { Config } from '../config/index.ts'
import type { Logger } from '../core/logger.ts'
import { createRedis } from '../core/redis.ts'
import { createSchemaRegistry, registerAvroSchema } from '../schemas/index.ts'
import { createKafka } from '../streams/kafka.ts'

export const SMOKE_SCHEMA = {
  type: 'record',
  name: 'SmokeEvent',
  namespace: 'dev.churnscorer.smoke',
  doc: 'A throwaway event that proves the registry, Kafka and the Avro codec agree.',
  fields: [
    { name: 'id', type: 'string' },
    { name: 'subscriberId', type: 'string' },
    { name: 'eventTime', type: { type: 'long', logicalType: 'timestamp-millis' } },
    { name: 'value', type: 'double' }
  ]
} as const

/** `eventTime` stays epoch milliseconds: the registry client decodes without logical types. */
export interface SmokeEvent { id: string, subscriberId: string, eventTime: number, value: number }

export interface SmokeReport {
  subject: string
  schemaId: number
  topic: string
  sent: SmokeEvent
  received: { event: SmokeEvent, partition: number, offset: string, key: string, schemaId: number }
  job: { queue: string, id: string, result: unknown }
  ms: { register: number, kafka: number, queue: number }
}

export interface SmokeOptions {
  config: Pick<Config, 'kafka' | 'registry' | 'redis' | 'topics'>
  logger: Logger
  /** How long each step may take. @defaultValue 30000 */
  timeoutMs?: number
}

async function withTimeout<T> (promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms)
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

export async function runSmokeChain (options: SmokeOptions): Promise<SmokeReport> {
  const { config, logger } = options
  const timeoutMs = options.timeoutMs ?? 30_000
  const run = randomUUID()
  const topic = `churn.smoke.${run}`
  const subject = `${topic}-value`
  const queueName = `churn-smoke-${run}`

  let started = Date.now()
  const registry = createSchemaRegistry({ url: config.registry.url })
  const schemaId = await registerAvroSchema({ registry, url: config.registry.url, subject, schema: SMOKE_SCHEMA })
  const registerMs = Date.now() - started

  started = Date.now()
  const kafka = createKafka({ brokers: config.kafka.brokers, clientId: `${config.kafka.clientId}-smoke`, logger })
  const admin = kafka.admin()
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner })
  const consumer = kafka.consumer({ groupId: `churn-smoke-${run}` })
  const sent: SmokeEvent = { id: randomUUID(), subscriberId: 'SUB-SMOKE-0001', eventTime: Date.now(), value: 42.5 }
  let received: SmokeReport['received']
  try {
    await admin.connect()
    await admin.createTopics({ waitForLeaders: true, topics: [{ topic, numPartitions: 1, replicationFactor: config.topics.replicationFactor }] })
    await Promise.all([producer.connect(), consumer.connect()])
    await consumer.subscribe({ topics: [topic], fromBeginning: true })
    const arrived = new Promise<SmokeReport['received']>((resolve, reject) => {
      consumer.run({
        eachMessage: async ({ message, partition }) => {
          if (message.value === null) return
          try {
            // avsc decodes into an instance of a generated record class; the report holds plain data.
            const event = { ...await registry.decode(message.value) as SmokeEvent }
            resolve({ event, partition, offset: message.offset, key: message.key?.toString('utf8') ?? '', schemaId: message.value.readInt32BE(1) })
          } catch (error) {
            reject(error instanceof Error ? error : new Error(String(error)))
          }
        }
      }).catch(reject)
    })
    await producer.send({ topic, acks: -1, messages: [{ key: sent.subscriberId, value: await registry.encode(schemaId, sent) }] })
    received = await withTimeout(arrived, timeoutMs, `Reading the smoke message back from ${topic}`)
  } finally {
    await consumer.disconnect().catch(() => {})
    await producer.disconnect().catch(() => {})
    await admin.deleteTopics({ topics: [topic] }).catch((error: unknown) => logger.warn({ err: error, topic }, 'could not delete the smoke topic'))
    await admin.disconnect().catch(() => {})
  }
  const kafkaMs = Date.now() - started

  started = Date.now()
  const connection = createRedis({ url: config.redis.url })
  const queue = new Queue(queueName, { connection })
  const worker = new Worker<{ n: number }>(queueName, async job => await Promise.resolve({ doubled: job.data.n * 2 }), { connection, autorun: false })
  let job: SmokeReport['job']
  try {
    const completed = once(worker, 'completed') as Promise<[{ id?: string }, unknown]>
    void worker.run()
    const added = await queue.add('smoke', { n: 21 }, { removeOnComplete: false })
    const [finished, result] = await withTimeout(completed, timeoutMs, `Completing the smoke job on ${queueName}`)
    job = { queue: queueName, id: finished.id ?? added.id ?? '', result }
  } finally {
    await worker.close()
    await queue.obliterate({ force: true }).catch(() => {})
    await queue.close()
    connection.disconnect()
  }
  const queueMs = Date.now() - started

  await fetch(`${config.registry.url}/subjects/${encodeURIComponent(subject)}`, { method: 'DELETE' })
    .then(async () => await fetch(`${config.registry.url}/subjects/${encodeURIComponent(subject)}?permanent=true`, { method: 'DELETE' }))
    .catch(() => {})

  return { subject, schemaId, topic, sent, received, job, ms: { register: registerMs, kafka: kafkaMs, queue: queueMs } }
}
