/**
 * kafkajs's default partitioner (murmur2 of the key, as the Java client places keys), remembering
 * each string key's partition. Producers here send the same hundred thousand subscriber keys over
 * and over; hashing each anew, and filtering the partition list per message as the default
 * partitioner does, cost more than a second per million messages in the ingest profile.
 */
import { Partitioners } from 'kafkajs'
import type { ICustomPartitioner } from 'kafkajs'

/** Keys remembered per topic before the memory is dropped and rebuilt. */
const MAX_KEYS = 1_000_000

export const CachedKeyPartitioner: ICustomPartitioner = () => {
  const hash = Partitioners.DefaultPartitioner()
  const topics = new Map<string, { partitions: number, byKey: Map<string, number> }>()
  return args => {
    const { topic, partitionMetadata, message } = args
    if (message.partition !== null && message.partition !== undefined) return message.partition
    const key = message.key
    if (typeof key !== 'string') return hash(args)
    let known = topics.get(topic)
    if (known === undefined || known.partitions !== partitionMetadata.length || known.byKey.size >= MAX_KEYS) {
      known = { partitions: partitionMetadata.length, byKey: new Map() }
      topics.set(topic, known)
    }
    let partition = known.byKey.get(key)
    if (partition === undefined) {
      partition = hash(args)
      known.byKey.set(key, partition)
    }
    return partition
  }
}
