/** Consumer-group lag from Kafka's committed offsets: what autoscaling and the main job watch. */
import type { Admin } from 'kafkajs'

/** How long a stopping role waits for Kafka to tell it the lag it leaves behind (informational). */
export const STOP_LAG_MS = 5000

/**
 * Messages on `topics` past the group's committed offsets (a partition the group never committed
 * counts from its low watermark).
 */
export async function consumerGroupLag (admin: Admin, groupId: string, topics: readonly string[]): Promise<number> {
  let lag = 0n
  const committed = await admin.fetchOffsets({ groupId, topics: [...topics] })
  for (const topic of topics) {
    const offsets = committed.find(c => c.topic === topic)?.partitions ?? []
    for (const p of await admin.fetchTopicOffsets(topic)) {
      const c = BigInt(offsets.find(x => x.partition === p.partition)?.offset ?? '-1')
      const behind = BigInt(p.high) - (c < 0n ? BigInt(p.low) : c)
      if (behind > 0n) lag += behind
    }
  }
  return Number(lag)
}
