import { ChurnError } from '../core/errors.ts'

export const CONFIG_ERROR_CODES = ['CHURN_CONFIG_INVALID'] as const
export type ConfigErrorCode = typeof CONFIG_ERROR_CODES[number]

export interface ConfigProblem {
  variable: string
  /** The offending value as written, masked for secrets; undefined when the problem is a combination. */
  value: string | undefined
  expected: string
}

export class ConfigError extends ChurnError<ConfigErrorCode> {
  readonly problems: readonly ConfigProblem[]

  constructor (problems: readonly ConfigProblem[]) {
    const lines = problems.map(p => `  ${p.variable}${p.value === undefined ? '' : `=${JSON.stringify(p.value)}`}: expected ${p.expected}`)
    super('CHURN_CONFIG_INVALID', `Invalid configuration (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n${lines.join('\n')}`)
    this.problems = problems
  }
}
