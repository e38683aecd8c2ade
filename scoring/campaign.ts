/**
 * Campaign jobs: the contract between the scorer, which enqueues, and the campaign workers, which
 * deliver. One BullMQ queue per channel; a job's data is the churn-risk event that caused it.
 *
 * Deduplication, so a replay, a restart or a rebalance never makes a second job: the job id is
 * fixed by what triggered it (channel, subscriber, tier, feature version), so re-adding the same
 * trigger is a no-op while the job is kept (completed and failed jobs are kept for the cooldown);
 * and BullMQ's throttle deduplication on (channel, subscriber, tier) with the cooldown as its TTL
 * refuses any other job for that subscriber and tier within the window.
 */
import type { JobsOptions } from 'bullmq'
import type { ChurnRiskEvent } from '../schemas/types.generated.ts'
import type { RiskTier } from './tiers.ts'

export const CHANNELS = ['crm', 'sms'] as const
export type Channel = typeof CHANNELS[number]

/** Which channels a tier triggers: CRM retention for high risk, SMS win-back for medium. */
export const TIER_CHANNELS: Readonly<Record<RiskTier, readonly Channel[]>> = { high: ['crm'], medium: ['sms'], low: [] }

/** The BullMQ job name on every campaign queue. */
export const CAMPAIGN_JOB = 'churn-risk'

export interface CampaignJobData {
  channel: Channel
  event: ChurnRiskEvent
}

export interface CampaignSettings {
  /** Redis key prefix of the project; BullMQ's is `<prefix>:bull`. */
  prefix: string
  cooldownMs: number
  attempts: number
  backoffMs: number
}

export function queueName (channel: Channel): string {
  return `campaign-${channel}`
}

export function bullPrefix (prefix: string): string {
  return `${prefix}:bull`
}

/** BullMQ forbids ':' in custom ids; subscriber ids are escaped so no two map to one id. */
function idPart (text: string): string {
  return text.replace(/%/g, '%25').replace(/:/g, '%3A')
}

export function campaignJobId (channel: Channel, event: Pick<ChurnRiskEvent, 'subscriberId' | 'tier' | 'featureVersion'>): string {
  return `${channel}.${event.tier}.${event.featureVersion}.${idPart(event.subscriberId)}`
}

/** The options every campaign job is added with. */
export function campaignJobOptions (channel: Channel, event: ChurnRiskEvent, settings: CampaignSettings): JobsOptions {
  const keepSeconds = Math.ceil(settings.cooldownMs / 1000)
  return {
    jobId: campaignJobId(channel, event),
    deduplication: { id: `${channel}.${event.tier}.${idPart(event.subscriberId)}`, ttl: settings.cooldownMs },
    attempts: settings.attempts,
    backoff: { type: 'exponential', delay: settings.backoffMs },
    removeOnComplete: { age: keepSeconds },
    removeOnFail: { age: keepSeconds }
  }
}
