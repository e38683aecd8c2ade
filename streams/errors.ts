import { ChurnError } from '../core/errors.ts'
import type { ChurnErrorOptions } from '../core/errors.ts'

export const STREAM_ERROR_CODES = [
  'CHURN_PRODUCE_FAILED',
  'CHURN_INGEST_FAILED',
  'CHURN_INGEST_DEAD_LETTER_FAILED',
  'CHURN_INGEST_CHANGELOG_FAILED',
  'CHURN_TOPICS_REFUSED'
] as const
export type StreamErrorCode = typeof STREAM_ERROR_CODES[number]

export class StreamError extends ChurnError<StreamErrorCode> {
  constructor (code: StreamErrorCode, message: string, options: ChurnErrorOptions = {}) {
    super(code, message, options)
    this.name = 'StreamError'
  }
}
