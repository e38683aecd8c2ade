#!/usr/bin/env node
/**
 * The `churn` command line: the one entry point. It reads the environment once, builds the root
 * logger, and hands both to the subcommand.
 */
import { ConfigError, loadConfig } from '../config/index.ts'
import type { Config } from '../config/index.ts'
import { describeError, errorCode } from '../core/errors.ts'
import { createRootLogger } from '../core/logger.ts'
import { routeProcessWarnings } from '../core/warnings.ts'
import { exitIfHeld } from './exit.ts'
import { bootstrapCommand } from './commands/bootstrap.ts'
import { configCommand } from './commands/config.ts'
import { ingestCommand } from './commands/ingest.ts'
import { lakehouseCommand } from './commands/lakehouse.ts'
import { modelCommand } from './commands/model.ts'
import { optOutCommand } from './commands/opt-out.ts'
import { produceCommand } from './commands/produce.ts'
import { runCommand } from './commands/run.ts'
import { schemasCommand } from './commands/schemas.ts'
import { scoreCommand } from './commands/score.ts'
import { serveCommand } from './commands/serve.ts'
import { smokeCommand } from './commands/smoke.ts'
import { stackCommand } from './commands/stack.ts'
import { trainCommand } from './commands/train.ts'
import { workCommand } from './commands/work.ts'
import type { Command } from './context.ts'

export const COMMANDS: readonly Command[] = [runCommand, stackCommand, schemasCommand, smokeCommand, produceCommand, ingestCommand, lakehouseCommand, trainCommand, modelCommand, scoreCommand, workCommand, optOutCommand, serveCommand, bootstrapCommand, configCommand]

function help (): string {
  const width = Math.max(...COMMANDS.map(c => c.usage.length))
  return [
    'usage: churn <command> [options]',
    '',
    ...COMMANDS.map(c => `  ${c.usage.padEnd(width)}  ${c.summary}`),
    '',
    'Configuration comes from environment variables; `churn config --doc` lists them.',
    ''
  ].join('\n')
}

async function main (argv: readonly string[]): Promise<number> {
  const [name, ...args] = argv
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    process.stdout.write(help())
    return name === undefined ? 2 : 0
  }
  const command = COMMANDS.find(c => c.name === name)
  if (command === undefined) {
    process.stderr.write(`churn: unknown command ${JSON.stringify(name)}\n\n${help()}`)
    return 2
  }

  let config: Config
  try {
    config = loadConfig(process.env, { cwd: process.cwd() })
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`churn: ${error.message}\n`)
      return 2
    }
    throw error
  }
  const pretty = config.log.format === 'pretty' || (config.log.format === 'auto' && process.stderr.isTTY)
  const logger = await createRootLogger({ name: `churn-${command.name}`, level: config.log.level, pretty })
  routeProcessWarnings(logger)
  const tools = { searchPath: process.env.PATH ?? '', env: process.env, isRoot: process.getuid?.() === 0, logger }
  try {
    const code = await command.run(args, { config, logger, tools, out: process.stdout })
    exitIfHeld(logger, code)
    return code
  } catch (error) {
    if (errorCode(error) === 'CHURN_CLI_USAGE') {
      process.stderr.write(`churn ${command.name}: ${describeError(error)}\nusage: churn ${command.usage}\n`)
      return 2
    }
    logger.error({ err: error }, `${command.name} failed`)
    logger.flush()
    exitIfHeld(logger, 1)
    return 1
  }
}

// Only as the entry point: the deployment tests import COMMANDS to check the manifests' commands.
if (import.meta.main) process.exitCode = await main(process.argv.slice(2))
