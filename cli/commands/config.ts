import { parseArgs } from 'node:util'
import { maskSecret, renderConfigTable } from '../../config/index.ts'
import type { Command } from '../context.ts'

export const configCommand: Command = {
  name: 'config',
  summary: 'print the validated configuration (secrets masked), or the table of variables',
  usage: 'config [--doc]',
  run: (args, context) => {
    const { values } = parseArgs({ args: [...args], options: { doc: { type: 'boolean' } } })
    if (values.doc === true) {
      context.out.write(`${renderConfigTable()}\n`)
      return 0
    }
    const shown = { ...context.config, redis: { url: maskSecret(context.config.redis.url) } }
    context.out.write(`${JSON.stringify(shown, (_key, value: unknown) => typeof value === 'function' ? undefined : value, 2)}\n`)
    return 0
  }
}
