export { loadConfig, renderConfigTable, maskSecret } from './config.ts'
export type { Config, LoadConfigOptions } from './config.ts'
export { ConfigError, CONFIG_ERROR_CODES } from './errors.ts'
export type { ConfigProblem } from './errors.ts'
