/**
 * The campaign queues as BullMQ `Queue`s, one per channel: what the scorer enqueues into and the
 * dashboard shows. The workers consume them in `workers.ts`.
 */
import { Queue } from 'bullmq'
import type { Redis } from 'ioredis'
import type { Config } from '../config/index.ts'
import type { Logger } from '../core/logger.ts'
import { createRedis } from '../core/redis.ts'
import { CHANNELS, bullPrefix, queueName } from './campaign.ts'
import type { CampaignJobData, Channel } from './campaign.ts'

export type CampaignQueue = Queue<CampaignJobData>

/** The job states an operator watches, by count. */
export interface QueueCounts {
  waiting: number
  active: number
  delayed: number
  completed: number
  failed: number
}

export interface CampaignQueues {
  readonly queues: Readonly<Record<Channel, CampaignQueue>>
  /** Counts by state, per channel. */
  counts: () => Promise<Record<Channel, QueueCounts>>
  /** Closes the queues and their connection. */
  close: () => Promise<void>
}

/**
 * One `Queue` per channel on `queueName(channel)` under `bullPrefix(prefix)`, sharing one
 * connection (BullMQ leaves a connection it was given open; `close` ends it).
 */
export function campaignQueues (config: Pick<Config, 'redis'>, logger?: Logger): CampaignQueues {
  const connection: Redis = createRedis({ url: config.redis.url, name: 'campaign-queues', ...(logger === undefined ? {} : { logger }) })
  const prefix = bullPrefix(config.redis.prefix)
  const queues = Object.fromEntries(CHANNELS.map(channel => {
    const queue = new Queue<CampaignJobData>(queueName(channel), { connection, prefix })
    // BullMQ re-emits every connection error on each queue, and one without a listener prints
    // it to stderr on every reconnect attempt. The connection logs the outage once (createRedis);
    // failing adds and counts reach their callers.
    queue.on('error', () => {})
    return [channel, queue]
  })) as Record<Channel, CampaignQueue>
  let closing: Promise<void> | undefined
  return {
    queues,
    counts: async () => await queueCounts(queues),
    close: async () => {
      closing ??= (async () => {
        try {
          await Promise.all(Object.values(queues).map(async queue => { await queue.close() }))
        } finally {
          connection.disconnect()
        }
      })()
      await closing
    }
  }
}

/** Counts by state of each channel's queue. */
export async function queueCounts (queues: Readonly<Record<Channel, CampaignQueue>>): Promise<Record<Channel, QueueCounts>> {
  const entries = await Promise.all(CHANNELS.map(async channel => {
    const counts = await queues[channel].getJobCounts('waiting', 'active', 'delayed', 'completed', 'failed')
    const count = (state: keyof QueueCounts): number => counts[state] ?? 0
    return [channel, { waiting: count('waiting'), active: count('active'), delayed: count('delayed'), completed: count('completed'), failed: count('failed') }] as const
  }))
  return Object.fromEntries(entries) as Record<Channel, QueueCounts>
}
