import { runScorer } from '../../scoring/scorer-role.ts'
import { awaitDependencies } from '../dependencies.ts'
import { parseOptions, untilInterrupted } from '../options.ts'
import { withRoleHttp } from '../role-http.ts'
import { renderTable } from '../table.ts'
import type { Command } from '../context.ts'

export const scoreCommand: Command = {
  name: 'score',
  summary: 'score changed subscribers from the feature changelog: online store, churn-risk events, campaign jobs (until SIGTERM, or --until-caught-up); --rescore scores everyone in the store with the serving model',
  usage: 'score [--until-caught-up | --rescore]',
  run: async (args, context) => {
    const { values } = parseOptions({ args: [...args], options: { 'until-caught-up': { type: 'boolean' }, rescore: { type: 'boolean' } } })
    // With ROLE_HTTP_PORT: the scorer's metrics (risk events by tier, drift...) and its readiness.
    const summary = await withRoleHttp(context, 'scorer', async http => await untilInterrupted(async signal => {
      // The registry, Kafka and Redis may come up after this process: wait for them, not ready meanwhile.
      if (!await awaitDependencies(context, { schemas: 'derived', topics: true, redis: true }, { role: 'scorer', signal, onWaiting: http?.waiting })) return undefined
      return await runScorer({
        config: context.config, logger: context.logger, signal, untilCaughtUp: values['until-caught-up'] === true, rescore: values.rescore === true,
        ...(http === undefined
          ? {}
          : { metricsRegistry: http.registry, onStarted: service => { http.setReadiness(() => service.readiness) } })
      })
    }))
    // Stopped while waiting for its dependencies: nothing ran, nothing to report.
    if (summary === undefined) return 0
    if (summary.rescored !== undefined) {
      context.out.write(renderTable(['model', 'rescored', 'events low', 'events medium', 'events high', 'jobs added', 'jobs deduplicated'], [[
        `v${summary.modelVersion ?? '-'}`, String(summary.rescored), String(summary.events.low), String(summary.events.medium), String(summary.events.high), String(summary.jobs.added), String(summary.jobs.deduplicated)
      ]]))
      return 0
    }
    context.out.write(renderTable(['model', 'records', 'scored', 'older', 'hash mismatch', 'dead-lettered', 'events low/medium/high', 'jobs added', 'jobs deduplicated', 'lag', 'seconds'], [[
      `v${summary.modelVersion ?? '-'}`, String(summary.records), String(summary.scored), String(summary.older), String(summary.hashMismatch), String(summary.deadLettered),
      `${summary.events.low}/${summary.events.medium}/${summary.events.high}`, String(summary.jobs.added), String(summary.jobs.deduplicated), String(summary.lag), (summary.ms / 1000).toFixed(1)
    ]]))
    return 0
  }
}
