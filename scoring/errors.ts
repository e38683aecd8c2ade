import { ChurnError } from '../core/errors.ts'
import type { ChurnErrorOptions } from '../core/errors.ts'

export const SCORING_ERROR_CODES = [
  'CHURN_SCORE_BAD_SUBSCRIBER',
  'CHURN_SCORE_NO_MODEL',
  'CHURN_SCORE_REDIS',
  'CHURN_SCORE_PUBLISH_FAILED',
  // Logged, not thrown: a Kafka client did not disconnect in time at shutdown (see ScorerService.stop).
  'CHURN_SCORE_STOP_TIMEOUT'
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
  'CHURN_CAMPAIGN_PERMANENT',
  // Logged, not thrown: the workers gave up waiting for BullMQ's close (see CampaignWorkers.close).
  'CHURN_CAMPAIGN_CLOSE_TIMEOUT'
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

/**
 * The HTTP API's refusals of a request (prediction, model, subscriber and page data routes), each
 * answered with its `statusCode`; input the model refuses keeps its own code (`CHURN_MODEL_BAD_INPUT`).
 */
export const REQUEST_ERROR_CODES = [
  'CHURN_API_BAD_REQUEST',
  'CHURN_API_NOT_FOUND',
  'CHURN_API_MODEL_UNSUITED',
  'CHURN_API_STORE_UNAVAILABLE',
  'CHURN_API_QUALITY_UNPUBLISHED'
] as const
export type RequestErrorCode = typeof REQUEST_ERROR_CODES[number]

export class RequestError extends ChurnError<RequestErrorCode> {
  /** The HTTP status the error handler answers with. */
  readonly statusCode: number

  constructor (code: RequestErrorCode, statusCode: number, message: string, options: ChurnErrorOptions = {}) {
    super(code, message, options)
    this.name = 'RequestError'
    this.statusCode = statusCode
  }
}

/**
 * Access to the HTTP API (`http/auth.ts`, `http/dashboard.ts`): the `code` of the 4xx/503 bodies
 * the auth hook, the rate limit and the read-only dashboard answer with. Not thrown inside the
 * process; listed so clients can branch on them.
 */
export const API_ACCESS_ERROR_CODES = [
  'CHURN_API_KEY_MISSING',
  'CHURN_API_KEY_INVALID',
  'CHURN_API_NO_KEYS',
  'CHURN_API_RATE_LIMITED',
  'CHURN_API_READ_ONLY'
] as const
export type ApiAccessErrorCode = typeof API_ACCESS_ERROR_CODES[number]
