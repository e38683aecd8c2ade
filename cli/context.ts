import type { Config } from '../config/index.ts'
import type { Logger } from '../core/logger.ts'
import type { ToolEnvironment } from '../stack/index.ts'

/** What every subcommand receives from the entry point; nothing below it reads the environment. */
export interface CommandContext {
  config: Config
  logger: Logger
  tools: ToolEnvironment
  /** Where a command writes its output for people or scripts (logs go to stderr). */
  out: NodeJS.WritableStream
}

export interface Command {
  name: string
  summary: string
  usage: string
  /** The process exit code, or a promise of it. */
  run: (args: readonly string[], context: CommandContext) => number | Promise<number>
}
