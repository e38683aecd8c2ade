import { parseArgs } from 'node:util'
import { Lakehouse } from '../../lakehouse/lakehouse.ts'
import { UsageError } from '../errors.ts'
import { renderTable } from '../table.ts'
import type { Command } from '../context.ts'

const ACTIONS = ['report', 'export', 'verify'] as const

/**
 * Looks into the lakehouse file. DuckDB lets one process open it, so these work when ingest is
 * not running (ingest serves the same report over HTTP while it runs).
 */
export const lakehouseCommand: Command = {
  name: 'lakehouse',
  summary: 'the data-quality report (JSON), a Parquet export of Silver and Gold, or verify Gold against its recompute',
  usage: `lakehouse ${ACTIONS.join('|')} [--dir <folder>]`,
  run: async (args, context) => {
    let parsed: { positionals: string[], values: { dir?: string } }
    try {
      parsed = parseArgs({ args: [...args], allowPositionals: true, options: { dir: { type: 'string' } } })
    } catch (error) {
      throw new UsageError(error instanceof Error ? error.message : String(error))
    }
    const action = parsed.positionals[0]
    if (!(ACTIONS as readonly string[]).includes(action ?? '')) throw new UsageError(`lakehouse takes one of ${ACTIONS.join(', ')}; got ${action ?? 'nothing'}`)
    const lakehouse = await Lakehouse.open(context.config.lakehouse)
    try {
      switch (action) {
        case 'report':
          context.out.write(`${JSON.stringify(await lakehouse.qualityReport(), null, 2)}\n`)
          return 0
        case 'export': {
          const written = await lakehouse.exportParquet(parsed.values.dir ?? context.config.lakehouse.exportDir)
          context.out.write(renderTable(['table', 'rows', 'file'], written.map(w => [w.table, String(w.rows), w.file])))
          return 0
        }
        default: {
          const differences = await lakehouse.goldDifferences()
          if (differences.length === 0) {
            context.out.write('Gold equals Gold recomputed from Silver.\n')
            return 0
          }
          context.out.write(`Gold differs from its recompute for ${differences.length} subscriber(s) (first ones):\n${JSON.stringify(differences, (_k, v: unknown) => typeof v === 'bigint' ? Number(v) : v, 2)}\n`)
          return 1
        }
      }
    } finally {
      lakehouse.close()
    }
  }
}
