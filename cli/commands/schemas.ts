import { parseArgs } from 'node:util'
import { createSchemaRegistry, registerDerivedSchemas, registerSourceSchemas } from '../../schemas/index.ts'
import { UsageError } from '../errors.ts'
import { renderTable } from '../table.ts'
import type { Command } from '../context.ts'

export const schemasCommand: Command = {
  name: 'schemas',
  summary: 'register every version of the source and feature-changelog subjects (BACKWARD) and print their ids',
  usage: 'schemas register',
  run: async (args, context) => {
    const { positionals } = parseArgs({ args: [...args], allowPositionals: true, options: {} })
    if (positionals[0] !== 'register') throw new UsageError(`schemas takes register; got ${positionals[0] ?? 'nothing'}`)
    const registry = createSchemaRegistry({ url: context.config.registry.url })
    const options = { registry, url: context.config.registry.url, topics: context.config.topics }
    const registered = [...await registerSourceSchemas(options), ...await registerDerivedSchemas(options)]
    context.out.write(renderTable(['subject', 'versions', 'ids', 'latest id'], registered.map(r => [r.subject, String(r.ids.length), r.ids.join(','), String(r.latestId)])))
    return 0
  }
}
