import { ChurnError } from '../core/errors.ts'
import type { ChurnErrorOptions } from '../core/errors.ts'

export const STACK_ERROR_CODES = [
  'CHURN_STACK_TOOL_MISSING',
  'CHURN_STACK_PORT_IN_USE',
  'CHURN_STACK_NOT_LOCAL',
  'CHURN_STACK_FETCH_FAILED',
  'CHURN_STACK_PYTHON_ENV_FAILED',
  'CHURN_STACK_START_FAILED',
  'CHURN_STACK_STOP_FAILED'
] as const
export type StackErrorCode = typeof STACK_ERROR_CODES[number]

export class StackError extends ChurnError<StackErrorCode> {
  constructor (code: StackErrorCode, message: string, options: ChurnErrorOptions = {}) {
    super(code, message, options)
    this.name = 'StackError'
  }
}
