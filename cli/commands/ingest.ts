import { createRedis } from '../../core/redis.ts'
import { registerIngestMetrics } from '../../scoring/http/metrics.ts'
import type { Lakehouse } from '../../lakehouse/lakehouse.ts'
import type { IngestService } from '../../streams/ingest.ts'
import { runIngest } from '../../streams/ingest-role.ts'
import { awaitDependencies } from '../dependencies.ts'
import { UsageError } from '../errors.ts'
import { parseOptions, positiveInteger, untilInterrupted } from '../options.ts'
import { withRoleHttp } from '../role-http.ts'
import { renderTable } from '../table.ts'
import type { Command } from '../context.ts'

export const ingestCommand: Command = {
  name: 'ingest',
  summary: 'land the source topics in the lakehouse exactly once and publish changed Gold rows (until SIGTERM, or --until-caught-up); --export-every writes Silver and Gold as Parquet for training',
  usage: 'ingest [--until-caught-up] [--export-every <seconds> [--export-dir <folder>]]',
  run: async (args, context) => {
    const { values } = parseOptions({ args: [...args], options: { 'until-caught-up': { type: 'boolean' }, 'export-every': { type: 'string' }, 'export-dir': { type: 'string' } } })
    const exportEvery = positiveInteger(values['export-every'], 'export-every', undefined)
    if (exportEvery === undefined && values['export-dir'] !== undefined) throw new UsageError('--export-dir goes with --export-every')
    // Parquet for training while ingest holds the lakehouse file (DuckDB: one process per file).
    const exportParquet = exportEvery === undefined ? undefined : { dir: values['export-dir'] ?? context.config.lakehouse.exportDir, everyMs: exportEvery * 1000 }
    // The data-quality report goes to Redis for the HTTP role, which cannot open the lakehouse.
    const redis = createRedis({ url: context.config.redis.url, maxRetriesPerRequest: 1, logger: context.logger, name: 'quality-publisher' })
    let summary
    try {
      summary = await withRoleHttp(context, 'ingest', async http => {
        // With ROLE_HTTP_PORT: ingest's counters and batch timings, ready while batches land.
        let service: IngestService | undefined
        let lakehouse: Lakehouse | undefined
        const metrics = http === undefined ? undefined : registerIngestMetrics(http.registry, () => service?.stats, () => lakehouse?.memory())
        return await untilInterrupted(async signal => {
          // Kafka and the registry may come up after this process: wait for them, not ready meanwhile.
          if (!await awaitDependencies(context, { schemas: 'all', topics: true }, { role: 'ingest', signal, onWaiting: http?.waiting })) return undefined
          return await runIngest({
            config: context.config, logger: context.logger, untilCaughtUp: values['until-caught-up'] === true, signal,
            publishQuality: { redis, prefix: context.config.redis.prefix },
            ...(exportParquet === undefined ? {} : { exportParquet }),
            ...(metrics === undefined ? {} : { onBatch: metrics.observeBatch }),
            onStarted: (started, landing) => {
              service = started
              lakehouse = landing
              http?.setReadiness(() => {
                const stats = started.stats
                const problem = stats.failing > 0 ? `micro-batch failing (${stats.failing} attempts): ${stats.lastError ?? 'unknown error'}` : started.consumerProblem ?? 'ingest is not consuming'
                return { ready: started.ready, problems: started.ready ? [] : [problem] }
              })
            }
          })
        })
      })
    } finally {
      redis.disconnect()
    }
    // Stopped while waiting for its dependencies: nothing ran, nothing to report.
    if (summary === undefined) return 0
    context.out.write(renderTable(['batches', 'messages', 'bronze', 'silver', 'quarantined', 'dead-lettered', 'changelog', 'lag', 'seconds'], [[
      String(summary.batches), String(summary.messages), String(summary.bronze), String(summary.silver), String(summary.quarantined),
      String(summary.deadLettered), String(summary.changelogPublished), String(summary.lag), (summary.ms / 1000).toFixed(1)
    ]]))
    return 0
  }
}
