import { serve } from '../../scoring/http/server.ts'
import type { Command } from '../context.ts'
import { parseOptions, untilInterrupted } from '../options.ts'

export const serveCommand: Command = {
  name: 'serve',
  summary: 'the HTTP role on HTTP_HOST:HTTP_PORT: /api/v1/health, /api/v1/ready and the campaign queue dashboard at /queues (until SIGTERM)',
  usage: 'serve',
  run: async (args, context) => {
    parseOptions({ args: [...args], options: {} })
    await untilInterrupted(async signal => { await serve({ config: context.config, logger: context.logger, signal }) })
    return 0
  }
}
