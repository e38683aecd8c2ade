import { ChurnError } from '../core/errors.ts'

export const CLI_ERROR_CODES = ['CHURN_CLI_USAGE', 'CHURN_EXIT_LINGERING'] as const
export type CliErrorCode = typeof CLI_ERROR_CODES[number]

/** A command line the CLI does not understand; exit code 2. */
export class UsageError extends ChurnError<CliErrorCode> {
  constructor (message: string) {
    super('CHURN_CLI_USAGE', message)
    this.name = 'UsageError'
  }
}
