import { ChurnError } from '../core/errors.ts'
import type { ChurnErrorOptions } from '../core/errors.ts'

export const LAKEHOUSE_ERROR_CODES = [
  'CHURN_LAKEHOUSE_OPEN_FAILED',
  'CHURN_LAKEHOUSE_LOCKED',
  'CHURN_LAKEHOUSE_SCHEMA_UNSUPPORTED',
  'CHURN_LAKEHOUSE_BATCH_FAILED',
  'CHURN_LAKEHOUSE_BAD_VALUE',
  'CHURN_LAKEHOUSE_EXPORT_FAILED'
] as const
export type LakehouseErrorCode = typeof LAKEHOUSE_ERROR_CODES[number]

export class LakehouseError extends ChurnError<LakehouseErrorCode> {
  constructor (code: LakehouseErrorCode, message: string, options: ChurnErrorOptions = {}) {
    super(code, message, options)
    this.name = 'LakehouseError'
  }
}
