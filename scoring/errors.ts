import { ChurnError } from '../core/errors.ts'
import type { ChurnErrorOptions } from '../core/errors.ts'

export const SCORING_ERROR_CODES = [
  'CHURN_SCORE_BAD_SUBSCRIBER',
  'CHURN_SCORE_NO_MODEL',
  'CHURN_SCORE_REDIS',
  'CHURN_SCORE_PUBLISH_FAILED'
] as const
export type ScoringErrorCode = typeof SCORING_ERROR_CODES[number]

export class ScoringError extends ChurnError<ScoringErrorCode> {
  constructor (code: ScoringErrorCode, message: string, options: ChurnErrorOptions = {}) {
    super(code, message, options)
    this.name = 'ScoringError'
  }
}

/** Campaign delivery (the workers and their channel adapters). */
export const CAMPAIGN_ERROR_CODES = [
  'CHURN_CAMPAIGN_DELIVERY_FAILED',
  'CHURN_CAMPAIGN_PERMANENT'
] as const
export type CampaignErrorCode = typeof CAMPAIGN_ERROR_CODES[number]

export class CampaignError extends ChurnError<CampaignErrorCode> {
  constructor (code: CampaignErrorCode, message: string, options: ChurnErrorOptions = {}) {
    super(code, message, options)
    this.name = 'CampaignError'
  }
}

/**
 * A delivery the channel refused for good (a 4xx other than 408, 425 and 429): sending the same
 * job again cannot succeed, so the worker fails it at once instead of burning its attempts.
 */
export class PermanentDeliveryError extends CampaignError {
  constructor (message: string, options: Omit<ChurnErrorOptions, 'retriable'> = {}) {
    super('CHURN_CAMPAIGN_PERMANENT', message, { ...options, retriable: false })
    this.name = 'PermanentDeliveryError'
  }
}
