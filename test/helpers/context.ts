/**
 * What integration tests share: the configuration (from the environment, as the product reads
 * it), a quiet logger, and fresh resource names so no two tests touch the same topic, group,
 * subject or queue.
 */
import { randomUUID } from 'node:crypto'
import { pino } from 'pino'
import { loadConfig } from '../../config/index.ts'
import type { Config } from '../../config/index.ts'
import type { Logger } from '../../core/logger.ts'
import type { ToolEnvironment } from '../../stack/index.ts'

export const config: Config = loadConfig(process.env, { cwd: process.cwd() })

/** Silent unless TEST_LOG_LEVEL asks otherwise, so failures are not buried in client chatter. */
export const logger: Logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' })

export const tools: ToolEnvironment = { searchPath: process.env.PATH ?? '', env: process.env, isRoot: process.getuid?.() === 0, logger }

export function uniqueName (prefix: string): string {
  return `${prefix}-${randomUUID()}`
}
