// Small Kafka helpers for measure.sh (plain kafkajs; no project code, no configuration):
//   count <topic>...                 messages on the topics
//   wait-members <group> <n>         until the group is Stable with n members, each assigned partitions
//   wait-lag <group> <topic>...      until the group has committed and has no lag on the topics
//   create <from>=<to>...            creates each <to> with as many partitions as <from>
//   copy <from>=<to>...              copies every message, partition for partition, keys, values and headers as they are
import { Kafka, logLevel } from 'kafkajs'
import { setTimeout as sleep } from 'node:timers/promises'

const kafka = new Kafka({ brokers: (process.env.KAFKA_BROKERS ?? '127.0.0.1:9092').split(','), clientId: 'scale-measure', logLevel: logLevel.NOTHING })
const admin = kafka.admin()
await admin.connect()
const [action, ...args] = process.argv.slice(2)

async function count (topics) {
  let n = 0n
  for (const t of topics) for (const o of await admin.fetchTopicOffsets(t)) n += BigInt(o.high) - BigInt(o.low)
  return n
}

async function lag (group, topics) {
  let behind = 0n
  let committedAny = false
  const committed = await admin.fetchOffsets({ groupId: group, topics })
  for (const t of topics) {
    const parts = committed.find(c => c.topic === t)?.partitions ?? []
    for (const o of await admin.fetchTopicOffsets(t)) {
      const c = BigInt(parts.find(p => p.partition === o.partition)?.offset ?? '-1')
      if (c >= 0n) committedAny = true
      const d = BigInt(o.high) - (c < 0n ? BigInt(o.low) : c)
      if (d > 0n) behind += d
    }
  }
  return committedAny ? behind : -1n
}

if (action === 'count') {
  console.log(String(await count(args)))
} else if (action === 'wait-members') {
  const [group, n] = args
  for (;;) {
    const { groups: [g] } = await admin.describeGroups([group])
    if (g?.state === 'Stable' && g.members.length === Number(n) && g.members.every(m => m.memberAssignment.length > 8)) break
    await sleep(200)
  }
} else if (action === 'wait-lag') {
  const [group, ...topics] = args
  while (await lag(group, topics) !== 0n) await sleep(100)
} else if (action === 'create') {
  const existing = new Set(await admin.listTopics())
  const topics = []
  for (const pair of args) {
    const [from, to] = pair.split('=')
    if (!existing.has(to)) topics.push({ topic: to, numPartitions: (await admin.fetchTopicOffsets(from)).length, replicationFactor: 1 })
  }
  await admin.createTopics({ topics, waitForLeaders: true })
} else if (action === 'copy') {
  const producer = kafka.producer({ allowAutoTopicCreation: false })
  await producer.connect()
  for (const pair of args) {
    const [from, to] = pair.split('=')
    const high = new Map((await admin.fetchTopicOffsets(from)).map(o => [o.partition, BigInt(o.high)]))
    const consumer = kafka.consumer({ groupId: `scale-copy-${Date.now()}-${Math.random()}` })
    await consumer.connect()
    await consumer.subscribe({ topic: from, fromBeginning: true })
    const done = new Set([...high].filter(([, h]) => h === 0n).map(([p]) => p))
    await new Promise((resolve, reject) => {
      consumer.run({
        eachBatch: async ({ batch }) => {
          if (batch.messages.length === 0) return
          const messages = batch.messages.map(m => ({ partition: batch.partition, key: m.key, value: m.value, headers: m.headers, timestamp: m.timestamp }))
          // In slices: one fetched batch can exceed the broker's largest request.
          for (let i = 0; i < messages.length; i += 500) await producer.send({ topic: to, messages: messages.slice(i, i + 500) })
          if (BigInt(batch.lastOffset()) + 1n >= (high.get(batch.partition) ?? 0n)) done.add(batch.partition)
          if (done.size === high.size) resolve()
        }
      }).catch(reject)
      if (done.size === high.size) resolve()
    })
    await consumer.disconnect()
  }
  await producer.disconnect()
} else {
  throw new Error(`unknown action ${action}`)
}
await admin.disconnect()
