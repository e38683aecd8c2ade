/**
 * Runs a command (the integration tests) with the local stack up: starts whatever is not already
 * answering, runs the command, then stops only the services this run started. A stack that was
 * running before is left running.
 *
 * Usage: node test/with-stack.ts <command> [args...]
 */
import { spawn } from 'node:child_process'
import { loadConfig } from '../config/index.ts'
import { createRootLogger } from '../core/logger.ts'
import { routeProcessWarnings } from '../core/warnings.ts'
import { assertUp, stackDown, stackUp } from '../stack/index.ts'
import type { ServiceName } from '../stack/index.ts'

const [command, ...args] = process.argv.slice(2)
if (command === undefined) {
  process.stderr.write('usage: node test/with-stack.ts <command> [args...]\n')
  process.exit(2)
}

const config = loadConfig(process.env, { cwd: process.cwd() })
const logger = await createRootLogger({ name: 'with-stack', level: config.log.level, pretty: process.stderr.isTTY })
routeProcessWarnings(logger)
const tools = { searchPath: process.env.PATH ?? '', env: process.env, isRoot: process.getuid?.() === 0, logger }

const outcomes = await stackUp({ config, tools })
const started: ServiceName[] = outcomes.filter(o => o.state === 'started').map(o => o.service)
const stopStarted = async (): Promise<void> => {
  if (started.length === 0) return
  const stopped = await stackDown({ config, tools, services: started })
  logger.info({ stopped: stopped.map(s => `${s.service}:${s.state}`) }, 'stopped the services this test run started')
}

try {
  assertUp(outcomes)
} catch (error) {
  logger.error({ err: error }, 'the local stack did not come up; integration tests cannot run')
  await stopStarted()
  process.exit(1)
}
logger.info({ services: outcomes.map(o => `${o.service}:${o.state}`) }, 'local stack up')

const child = spawn(command, args, { stdio: 'inherit' })
const forward = (signal: NodeJS.Signals): void => { child.kill(signal) }
process.on('SIGINT', forward)
process.on('SIGTERM', forward)
const code = await new Promise<number>((resolve) => {
  child.once('exit', (exitCode, signal) => resolve(exitCode ?? (signal === null ? 1 : 128)))
  child.once('error', (error) => {
    logger.error({ err: error, command }, 'could not run the command')
    resolve(127)
  })
})
await stopStarted()
process.exit(code)
