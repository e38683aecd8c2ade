import { CHANNELS } from '../../scoring/campaign.ts'
import { registerWorkerMetrics } from '../../scoring/metrics.ts'
import { runCampaignWorkers } from '../../scoring/workers.ts'
import type { CampaignWorkers } from '../../scoring/workers.ts'
import type { Command } from '../context.ts'
import { awaitDependencies } from '../dependencies.ts'
import { parseOptions, untilInterrupted } from '../options.ts'
import { withRoleHttp } from '../role-http.ts'
import { renderTable } from '../table.ts'

export const workCommand: Command = {
  name: 'work',
  summary: 'deliver campaign jobs: one rate-limited worker per channel, opt-outs skipped, transient failures retried (until SIGTERM)',
  usage: 'work',
  run: async (args, context) => {
    parseOptions({ args: [...args], options: {} })
    // With ROLE_HTTP_PORT: the delivery counters per channel, ready while the workers run with Redis.
    const counters = await withRoleHttp(context, 'workers', async http => {
      let workers: CampaignWorkers | undefined
      if (http !== undefined) registerWorkerMetrics(http.registry, () => workers?.counters)
      return await untilInterrupted(async signal => {
        // Redis may come up after this process: wait for it, not ready meanwhile (BullMQ's workers
        // would wait too, but silently, and could not be closed until Redis answered).
        if (!await awaitDependencies(context, { redis: true }, { role: 'workers', signal, onWaiting: http?.waiting })) return undefined
        return await runCampaignWorkers({
          config: context.config, logger: context.logger, signal,
          onStarted: started => {
            workers = started
            http?.setReadiness(() => started.readiness)
          }
        })
      })
    })
    // Stopped while waiting for Redis: nothing ran, nothing to report.
    if (counters === undefined) return 0
    context.out.write(renderTable(['channel', 'adapter', 'sent', 'skipped (opted out)', 'failed (transient)', 'failed (permanent)'], CHANNELS.map(channel => [
      channel, context.config.campaign.channels[channel].adapter, String(counters[channel].sent), String(counters[channel].skippedOptedOut),
      String(counters[channel].failedTransient), String(counters[channel].failedPermanent)
    ])))
    return 0
  }
}
