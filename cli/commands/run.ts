import { randomBytes } from 'node:crypto'
import { DAY_MS } from '../../lakehouse/features.ts'
import { Lakehouse } from '../../lakehouse/lakehouse.ts'
import { assertUp, stackUp } from '../../stack/index.ts'
import { runIngest } from '../../streams/ingest-role.ts'
import { produceTraffic } from '../../streams/producer.ts'
import { runLive } from '../live.ts'
import type { LiveSummary } from '../live.ts'
import { parseOptions, positiveInteger, untilInterrupted } from '../options.ts'
import { renderTable } from '../table.ts'
import { smoke } from './smoke.ts'
import { parseTrainArguments, renderOutcome, train } from './train.ts'
import type { Command, CommandContext } from '../context.ts'

const n = (x: number): string => x.toLocaleString('en-US')

/**
 * The main job, the whole product on the local stack: the stack and the smoke chain across it;
 * bootstrap as the init container does it (30 days of synthetic history from the billing,
 * network and device platforms and the CRM, ingest through Bronze, Silver and Gold to lag zero,
 * the data-quality report, a model trained on the CRM outcomes and promoted through the gate);
 * then ingest, the scorer, the campaign workers and the HTTP server in this one process while
 * live traffic streams for a bounded time (or, with --keep-running, until interrupted), and a
 * summary of what happened and where to look.
 *
 * The history's window ends at the start of the current UTC day and its seed is fixed, so running
 * the job again the same day sends the same history, which the lakehouse lands once.
 */
export const runCommand: Command = {
  name: 'run',
  summary: 'the main job: stack up, smoke chain, bootstrap (history, ingest, quality report, training), then every role in one process under live traffic, and a summary',
  usage: 'run [--subscribers 2000] [--events 100000] [--seed 1] [--live-seconds 30] [--rate 1000] [--keep-running]',
  run: async (args, context) => {
    const { values } = parseOptions({
      args: [...args],
      options: { subscribers: { type: 'string' }, events: { type: 'string' }, seed: { type: 'string' }, 'live-seconds': { type: 'string' }, rate: { type: 'string' }, 'keep-running': { type: 'boolean' } }
    })
    const subscribers = positiveInteger(values.subscribers, 'subscribers', 2000)
    const events = positiveInteger(values.events, 'events', 100_000)
    const seed = positiveInteger(values.seed, 'seed', 1)
    const liveSeconds = positiveInteger(values['live-seconds'], 'live-seconds', 30)
    const rate = positiveInteger(values.rate, 'rate', 1000)
    const keepRunning = values['keep-running'] === true

    const outcomes = await stackUp({ config: context.config, tools: context.tools })
    context.out.write(renderTable(['service', 'address', 'state', 'detail'], outcomes.map(o => [o.label, o.address, o.state, o.state === 'failed' ? o.error.code : o.detail])))
    assertUp(outcomes)
    context.out.write('\n')
    await smoke(context)
    context.out.write('\n')

    const today = Math.floor(Date.now() / DAY_MS) * DAY_MS
    const produced = await produceTraffic({ config: context.config, logger: context.logger, subscribers, events, seed, clock: () => today })
    context.out.write(`produced  ${n(produced.sent)} messages for ${n(subscribers)} subscribers over 30 days to ${new Date(today).toISOString().slice(0, 10)} ` +
      `(billing ${n(produced.byStream.billing)}, network ${n(produced.byStream.network)}, device ${n(produced.byStream.device)}, ` +
      `CRM outcomes ${n(produced.byStream.crm)}: ${n(produced.churned)} churned)  ${(produced.ms / 1000).toFixed(1)} s\n`)

    const ingested = await runIngest({ config: context.config, logger: context.logger, untilCaughtUp: true })
    context.out.write(`ingested  ${n(ingested.messages)} messages in ${n(ingested.batches)} micro-batches to lag ${ingested.lag}: ` +
      `${n(ingested.silver)} to Silver, ${n(ingested.quarantined)} quarantined, ${n(ingested.deadLettered)} dead-lettered, ` +
      `${n(ingested.changelogPublished)} Gold changes published  ${(ingested.ms / 1000).toFixed(1)} s\n\n`)

    await describeLakehouse(context)
    context.out.write('\ntraining on the CRM outcomes in the lakehouse (features 7 days before each outcome)\n')
    context.out.write(renderOutcome(await train(parseTrainArguments(['--folds', '3']), context)))
    const { http } = context.config
    const base = `http://${http.host.includes(':') ? `[${http.host}]` : http.host}:${http.port}`
    context.out.write(`\nall roles in one process: ingest, scorer, campaign workers, HTTP on ${base}; live traffic at ${n(rate)} events/s ` +
      `${keepRunning ? 'until interrupted (Ctrl-C)' : `for ${liveSeconds} s`}\n`)
    // The API refuses every keyed route without keys; a run without configured ones gets a key of its own.
    const runKey = context.config.api.keys.length === 0 ? randomBytes(18).toString('base64url') : undefined
    const config = runKey === undefined ? context.config : { ...context.config, api: { ...context.config.api, keys: [runKey] } }
    const live = await untilInterrupted(async signal => await runLive({
      config,
      logger: context.logger,
      subscribers,
      // Another seed than the history's: the same subscriber ids, their behaviour redrawn, so
      // tiers move; and no event id of the history comes back.
      seed: seed + 1,
      rate,
      durationMs: keepRunning ? undefined : liveSeconds * 1000,
      signal
    }))
    context.out.write(renderLive(live, context, base, runKey))
    context.out.write('\nThe stack keeps running; stop it with: npx churn stack down\n')
    return 0
  }
}

async function describeLakehouse (context: CommandContext): Promise<void> {
  const lakehouse = await Lakehouse.open(context.config.lakehouse)
  try {
    const report = await lakehouse.qualityReport()
    const { pipeline } = report
    context.out.write(`lakehouse ${context.config.lakehouse.path}: Bronze ${n(pipeline.bronze_total)}, Silver ${n(pipeline.silver_total)}, ` +
      `quarantined ${n(pipeline.quarantined)}, dead-lettered ${n(pipeline.dead_lettered)}, pass rate ${pipeline.pass_rate}%, ` +
      `Gold ${n(report.gold.subscribers)} subscribers\n\n`)
    context.out.write(renderTable(['source', 'bronze', 'silver', 'quarantined'], Object.entries(report.by_source).map(([source, s]) => [source, n(s.bronze), n(s.silver), n(s.quarantined)])))
    context.out.write('\n')
    context.out.write(renderTable(['quarantine reason', 'events'], Object.entries(report.quarantine_reasons).map(([reason, count]) => [reason, n(count)])))
    const differences = await lakehouse.goldDifferences({ limit: 1 })
    context.out.write(`\nGold equals its recompute from Silver: ${differences.length === 0 ? 'yes' : 'NO'}\n`)
    const worst = await lakehouse.connection.runAndReadAll(`SELECT subscriber_id, recent_avg_signal_dbm, signal_trend_dbm, latency_trend_ms, max_days_overdue, device_use_trend
      FROM gold_features WHERE signal_trend_dbm IS NOT NULL ORDER BY signal_trend_dbm LIMIT 5`)
    const fixed = (x: unknown): string => x === null || x === undefined ? '' : Number(x).toFixed(2)
    context.out.write('\nGold: the five subscribers whose signal worsened most\n')
    context.out.write(renderTable(['subscriber', 'recent dBm', 'signal trend', 'latency trend', 'max days overdue', 'device use trend'],
      worst.getRows().map(([id, ...rest]) => [String(id), ...rest.map(fixed)])))
    if (differences.length > 0) throw new Error('Gold differs from its recompute; run `churn lakehouse verify` for the details')
  } finally {
    lakehouse.close()
  }
}

function renderLive (live: LiveSummary, context: CommandContext, base: string, runKey: string | undefined): string {
  const { produced, ingest, scorer, queues, workers } = live
  const lines = [
    '',
    `live      ${n(produced.sent)} events produced in ${(produced.ms / 1000).toFixed(1)} s; ingest landed ${n(ingest.messages)} (${n(ingest.silver)} to Silver, ` +
      `${n(ingest.quarantined)} quarantined, ${n(ingest.deadLettered)} dead-lettered) and published ${n(ingest.changelogPublished)} Gold changes; ` +
      `${live.settled ? 'every role caught up' : 'NOT caught up when stopped'} after ${(live.ms / 1000).toFixed(1)} s`,
    `scorer    model ${context.config.serving.modelName} v${scorer.modelVersion ?? '-'}: ${n(scorer.records)} changelog records, ${n(scorer.scored)} scored, ` +
      `${n(scorer.older)} already held, ${n(scorer.hashMismatch)} of another feature definition, ${n(scorer.deadLettered)} dead-lettered`,
    '',
    renderTable(['churn-risk events', 'count'], [['high', n(scorer.events.high)], ['medium', n(scorer.events.medium)], ['low', n(scorer.events.low)]]),
    '',
    renderTable(['campaign channel', 'adapter', 'sent', 'opted out', 'waiting', 'active', 'delayed', 'completed', 'failed'],
      (['crm', 'sms'] as const).map(c => [c, context.config.campaign.channels[c].adapter, n(workers[c].sent), n(workers[c].skippedOptedOut),
        n(queues[c].waiting), n(queues[c].active), n(queues[c].delayed), n(queues[c].completed), n(queues[c].failed)])),
    `jobs added by the scorer: ${n(scorer.jobs.added)}; refused as duplicates: ${n(scorer.jobs.deduplicated)}`,
    '',
    `where to look (while a role runs: npx churn serve; API key: ${runKey === undefined ? 'one of API_KEYS' : `${runKey}, this run's only, as API_KEYS was unset`}):`,
    `  web page and API docs  ${base}/   ${base}/docs`,
    `  health and readiness   ${base}/api/v1/health  ${base}/api/v1/ready   ${base}/metrics`,
    `  queue dashboard        ${base}/queues  (x-api-key header)`,
    `  churn-risk events      topic ${context.config.topics.churnRisk}`,
    `  outbox (what was sent) ${context.config.campaign.outboxDir}`,
    '  models                 npx churn model list',
    ''
  ]
  return lines.join('\n')
}
