import { parseArgs } from 'node:util'
import { assertUp, SERVICE_NAMES, stackDown, stackInstall, stackStatus, stackUp } from '../../stack/index.ts'
import type { ServiceName } from '../../stack/index.ts'
import { UsageError } from '../errors.ts'
import { renderTable } from '../table.ts'
import type { Command, CommandContext } from '../context.ts'

function parseServices (raw: string | undefined): readonly ServiceName[] {
  if (raw === undefined) return SERVICE_NAMES
  const names = raw.split(',').map(s => s.trim()).filter(s => s !== '')
  const unknown = names.filter(n => !(SERVICE_NAMES as readonly string[]).includes(n))
  if (unknown.length > 0 || names.length === 0) throw new UsageError(`--services takes a comma-separated list of ${SERVICE_NAMES.join(', ')}; got ${raw}`)
  return names as ServiceName[]
}

async function up (services: readonly ServiceName[], context: CommandContext): Promise<number> {
  const outcomes = await stackUp({ config: context.config, tools: context.tools, services })
  context.out.write(renderTable(['service', 'address', 'state', 'pid', 'seconds', 'detail'], outcomes.map(o => [
    o.label, o.address, o.state, o.state === 'failed' ? '' : String(o.pid ?? 'external'), (o.ms / 1000).toFixed(1),
    o.state === 'failed' ? `${o.error.code}` : o.detail
  ])))
  assertUp(outcomes)
  return 0
}

async function down (services: readonly ServiceName[], context: CommandContext): Promise<number> {
  const outcomes = await stackDown({ config: context.config, tools: context.tools, services })
  context.out.write(renderTable(['service', 'state', 'pid'], outcomes.map(o => [o.service, o.state, String(o.pid ?? '')])))
  return 0
}

async function status (services: readonly ServiceName[], context: CommandContext): Promise<number> {
  const rows = await stackStatus({ config: context.config, tools: context.tools, services })
  context.out.write(renderTable(['service', 'address', 'state', 'owner', 'detail'], rows.map(r => [r.label, r.address, r.state, r.owner, r.detail])))
  return rows.every(r => r.state === 'up') ? 0 : 1
}

export const stackCommand: Command = {
  name: 'stack',
  summary: 'start, stop, inspect or only install the local Kafka, schema registry, Redis and MLflow',
  usage: 'stack up|down|status|install [--services kafka,registry,redis,mlflow]',
  run: async (args, context) => {
    const { positionals, values } = parseArgs({ args: [...args], allowPositionals: true, options: { services: { type: 'string' } } })
    const services = parseServices(values.services)
    switch (positionals[0]) {
      case 'up': return await up(services, context)
      case 'down': return await down(services, context)
      case 'status': return await status(services, context)
      case 'install':
        await stackInstall({ config: context.config, tools: context.tools, services })
        context.out.write(`installed: ${services.join(', ')}\n`)
        return 0
      default: throw new UsageError(`stack takes up, down, status or install; got ${positionals[0] ?? 'nothing'}`)
    }
  }
}
