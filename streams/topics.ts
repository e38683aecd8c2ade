/**
 * The project's topics and how they are created: the source streams and their dead-letter topics,
 * the compacted feature changelog and the churn-risk topic. Names and partition counts come from
 * configuration; creating them is idempotent, and a topic that already exists is left as it is
 * (an operator may have tuned it).
 */
import type { Admin, ITopicConfig, Kafka } from 'kafkajs'
import type { Config } from '../config/index.ts'
import { SOURCE_STREAMS } from '../schemas/catalog.ts'
import { StreamError } from './errors.ts'

const DAY_MS = 24 * 60 * 60 * 1000

export interface TopicSpec {
  topic: string
  partitions: number
  /** Topic-level configuration (cleanup policy, retention). */
  config: Record<string, string>
}

/** The source topics ingest consumes, in catalog order. */
export function sourceTopics (topics: Config['topics']): string[] {
  return SOURCE_STREAMS.map(source => topics[source.topicKey])
}

export function projectTopics (topics: Config['topics']): TopicSpec[] {
  const partitions = topics.partitions
  const sources = sourceTopics(topics)
  return [
    ...sources.map(topic => ({ topic, partitions, config: { 'cleanup.policy': 'delete', 'retention.ms': String(30 * DAY_MS) } })),
    // A dead-letter topic keeps its messages long enough for a person to look and replay.
    ...[...sources, topics.features].map(topic => ({ topic: topics.deadLetter(topic), partitions: 1, config: { 'cleanup.policy': 'delete', 'retention.ms': String(90 * DAY_MS) } })),
    // The changelog holds the latest feature row per subscriber forever: compaction, no retention.
    { topic: topics.features, partitions, config: { 'cleanup.policy': 'compact', 'min.compaction.lag.ms': String(60 * 60 * 1000) } },
    { topic: topics.churnRisk, partitions, config: { 'cleanup.policy': 'delete', 'retention.ms': String(30 * DAY_MS) } }
  ]
}

/**
 * Creates whichever of `specs` do not exist yet and waits for their leaders. Returns the names it
 * created.
 */
export async function ensureTopics (admin: Admin, specs: readonly TopicSpec[], replicationFactor: number): Promise<string[]> {
  const existing = new Set(await admin.listTopics())
  const missing = specs.filter(spec => !existing.has(spec.topic))
  if (missing.length === 0) return []
  const topics: ITopicConfig[] = missing.map(spec => ({
    topic: spec.topic,
    numPartitions: spec.partitions,
    replicationFactor,
    configEntries: Object.entries(spec.config).map(([name, value]) => ({ name, value }))
  }))
  // Another process may create the same topic between the listing and this call; kafkajs then
  // answers false for the batch, and the topics exist either way.
  try {
    await admin.createTopics({ waitForLeaders: true, topics })
  } catch (error) {
    throw topicsRefused(error) ?? error
  }
  return missing.map(spec => spec.topic)
}

interface TopicError { topic?: unknown, message?: unknown, type?: unknown, retriable?: unknown }

/**
 * kafkajs's "Topic creation errors" (one error per topic) as one error that says what Kafka
 * answered for which topics, e.g. an invalid replication factor; retriable only when every
 * answer was. Undefined for anything else, or when every topic merely exists already.
 */
function topicsRefused (error: unknown): StreamError | undefined {
  const errors = (error as { errors?: unknown } | null)?.errors
  if (!Array.isArray(errors)) return undefined
  const refusals = (errors as TopicError[]).filter(e => e.type !== 'TOPIC_ALREADY_EXISTS')
  if (refusals.length === 0) return undefined
  const byReason = new Map<string, string[]>()
  for (const refusal of refusals) {
    const reason = `${String(refusal.message)}${typeof refusal.type === 'string' ? ` (${refusal.type})` : ''}`
    byReason.set(reason, [...byReason.get(reason) ?? [], String(refusal.topic)])
  }
  const described = [...byReason].map(([reason, topics]) => `${reason} for ${topics.length === 1 ? 'topic' : `${topics.length} topics`} ${topics.join(', ')}`)
  return new StreamError('CHURN_TOPICS_REFUSED', `Kafka refused to create topics: ${described.join('; ')}. Check TOPIC_PARTITIONS, TOPIC_REPLICATION_FACTOR and the topic names against the cluster.`, {
    cause: error,
    retriable: refusals.every(r => r.retriable === true)
  })
}

/** Creates whichever of the project's topics do not exist yet, with an admin client of its own. */
export async function ensureProjectTopics (kafka: Kafka, topics: Config['topics']): Promise<string[]> {
  const admin = kafka.admin()
  await admin.connect()
  try {
    return await ensureTopics(admin, projectTopics(topics), topics.replicationFactor)
  } finally {
    await admin.disconnect()
  }
}
