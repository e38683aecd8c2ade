import { DAY_MS } from '../../lakehouse/features.ts'
import { Lakehouse } from '../../lakehouse/lakehouse.ts'
import { assertUp, stackUp } from '../../stack/index.ts'
import { runIngest } from '../../streams/ingest-role.ts'
import { produceTraffic } from '../../streams/producer.ts'
import { parseOptions, positiveInteger } from '../options.ts'
import { renderTable } from '../table.ts'
import { smoke } from './smoke.ts'
import { parseTrainArguments, renderOutcome, train } from './train.ts'
import type { Command, CommandContext } from '../context.ts'

const n = (x: number): string => x.toLocaleString('en-US')

/**
 * The main job, as far as the product exists: the local stack, the smoke chain across it,
 * synthetic traffic from the billing, network and device platforms and the CRM, and ingest
 * through Bronze, Silver and Gold to lag zero, the data-quality report, then a model trained on
 * the CRM outcomes and promoted through the gate. Scoring and the HTTP API join it as their
 * issues land.
 *
 * The traffic's window ends at the start of the current UTC day and its seed is fixed, so running
 * the job again the same day sends the same events, which the lakehouse lands once.
 */
export const runCommand: Command = {
  name: 'run',
  summary: 'the main job: local stack up, smoke chain, synthetic traffic, ingest through Gold, quality report, training',
  usage: 'run [--subscribers 2000] [--events 100000] [--seed 1]',
  run: async (args, context) => {
    const { values } = parseOptions({ args: [...args], options: { subscribers: { type: 'string' }, events: { type: 'string' }, seed: { type: 'string' } } })
    const subscribers = positiveInteger(values.subscribers, 'subscribers', 2000)
    const events = positiveInteger(values.events, 'events', 100_000)
    const seed = positiveInteger(values.seed, 'seed', 1)

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
    context.out.write([
      '',
      'Scoring and the HTTP API join the main job as they land; `npx churn model list` shows the models.',
      'The stack keeps running; stop it with: npx churn stack down',
      ''
    ].join('\n'))
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
