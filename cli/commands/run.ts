import { assertUp, stackUp } from '../../stack/index.ts'
import { renderTable } from '../table.ts'
import { smoke } from './smoke.ts'
import type { Command } from '../context.ts'

/**
 * The main job. Today it is what exists: the local stack, and the smoke chain across it. The
 * ingest, training, scoring and API roles join it as their issues land.
 */
export const runCommand: Command = {
  name: 'run',
  summary: 'the main job: bring the local stack up and run everything that exists so far',
  usage: 'run',
  run: async (_args, context) => {
    const outcomes = await stackUp({ config: context.config, tools: context.tools })
    context.out.write(renderTable(['service', 'address', 'state', 'detail'], outcomes.map(o => [o.label, o.address, o.state, o.state === 'failed' ? o.error.code : o.detail])))
    assertUp(outcomes)
    context.out.write('\n')
    await smoke(context)
    context.out.write([
      '',
      'The main job runs what exists so far: the local stack and the smoke chain across it.',
      'Ingest, training, scoring and the HTTP API join it as they land.',
      'The stack keeps running; stop it with: npx churn stack down',
      ''
    ].join('\n'))
    return 0
  }
}
