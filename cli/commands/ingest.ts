import { parseArgs } from 'node:util'
import { runIngest } from '../../streams/ingest-role.ts'
import { UsageError } from '../errors.ts'
import { renderTable } from '../table.ts'
import type { Command } from '../context.ts'

export const ingestCommand: Command = {
  name: 'ingest',
  summary: 'land the source topics in the lakehouse exactly once and publish changed Gold rows (until SIGTERM, or --until-caught-up)',
  usage: 'ingest [--until-caught-up]',
  run: async (args, context) => {
    let values: { 'until-caught-up'?: boolean }
    try {
      ({ values } = parseArgs({ args: [...args], options: { 'until-caught-up': { type: 'boolean' } } }))
    } catch (error) {
      throw new UsageError(error instanceof Error ? error.message : String(error))
    }
    const stop = new AbortController()
    const onSignal = (): void => { stop.abort() }
    process.once('SIGINT', onSignal)
    process.once('SIGTERM', onSignal)
    try {
      const summary = await runIngest({ config: context.config, logger: context.logger, untilCaughtUp: values['until-caught-up'] === true, signal: stop.signal })
      context.out.write(renderTable(['batches', 'messages', 'bronze', 'silver', 'quarantined', 'dead-lettered', 'changelog', 'lag', 'seconds'], [[
        String(summary.batches), String(summary.messages), String(summary.bronze), String(summary.silver), String(summary.quarantined),
        String(summary.deadLettered), String(summary.changelogPublished), String(summary.lag), (summary.ms / 1000).toFixed(1)
      ]]))
      return 0
    } finally {
      process.off('SIGINT', onSignal)
      process.off('SIGTERM', onSignal)
    }
  }
}
