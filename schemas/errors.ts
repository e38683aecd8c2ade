import { ChurnError } from '../core/errors.ts'
import type { ChurnErrorOptions } from '../core/errors.ts'

export const SCHEMA_ERROR_CODES = [
  'CHURN_SCHEMA_INCOMPATIBLE',
  'CHURN_SCHEMA_INVALID',
  'CHURN_SCHEMA_REGISTRY_UNAVAILABLE',
  'CHURN_SCHEMA_REGISTRY_REFUSED',
  'CHURN_AVRO_BAD_FRAME',
  'CHURN_AVRO_UNKNOWN_SCHEMA',
  'CHURN_AVRO_WRONG_SCHEMA',
  'CHURN_AVRO_CORRUPT'
] as const
export type SchemaErrorCode = typeof SCHEMA_ERROR_CODES[number]

export class SchemaError extends ChurnError<SchemaErrorCode> {
  constructor (code: SchemaErrorCode, message: string, options: ChurnErrorOptions = {}) {
    super(code, message, options)
    this.name = 'SchemaError'
  }
}
