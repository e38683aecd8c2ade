import { produceTraffic } from '../../streams/producer.ts'
import type { ProduceProgress } from '../../streams/producer.ts'
import { UsageError } from '../errors.ts'
import { parseOptions, positiveInteger, untilInterrupted } from '../options.ts'
import { renderTable } from '../table.ts'
import type { Command } from '../context.ts'

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }

/** `90s`, `10m`, `2h`, `1d`, or plain milliseconds. */
export function parseDuration (text: string, option: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim())
  if (match === null) throw new UsageError(`--${option} takes a duration such as 90s, 10m, 2h or 1d; got ${JSON.stringify(text)}`)
  const ms = Number(match[1]) * (UNIT_MS[match[2] ?? 'ms'] ?? 1)
  if (!(ms > 0)) throw new UsageError(`--${option} must be positive; got ${JSON.stringify(text)}`)
  return ms
}

export const produceCommand: Command = {
  name: 'produce',
  summary: 'send synthetic billing, network and device traffic and CRM outcomes for N subscribers, by count or at a rate',
  usage: 'produce --subscribers N (--events N [--days 30] | --rate R [--duration 10m] [--horizon 1h]) [--seed S] [--no-outcomes]',
  run: async (args, context) => {
    const { values } = parseOptions({
      args: [...args],
      options: {
        subscribers: { type: 'string' },
        events: { type: 'string' },
        rate: { type: 'string' },
        duration: { type: 'string' },
        horizon: { type: 'string' },
        days: { type: 'string' },
        seed: { type: 'string' },
        'no-outcomes': { type: 'boolean' }
      }
    })
    const subscribers = positiveInteger(values.subscribers, 'subscribers', 1000)
    const events = positiveInteger(values.events, 'events', undefined)
    const rate = positiveInteger(values.rate, 'rate', undefined)
    if ((events === undefined) === (rate === undefined)) throw new UsageError('give either --events N or --rate R')
    if (events !== undefined && (values.duration !== undefined || values.horizon !== undefined)) throw new UsageError('--duration and --horizon go with --rate')
    if (rate !== undefined && values.days !== undefined) throw new UsageError('--days goes with --events')
    const seed = values.seed === undefined ? 1 : Number(values.seed)
    if (!Number.isSafeInteger(seed)) throw new UsageError(`--seed takes a whole number; got ${JSON.stringify(values.seed)}`)

    const tty = process.stderr.isTTY
    let lastDraw = 0
    const onProgress = (p: ProduceProgress): void => {
      if (!tty || performance.now() - lastDraw < 200) return
      lastDraw = performance.now()
      const share = p.target === undefined ? '' : ` of ${p.target.toLocaleString('en-US')} (${Math.floor((100 * p.sent) / p.target)}%)`
      process.stderr.write(`\r\x1b[Kproduced ${p.sent.toLocaleString('en-US')}${share}, ${Math.round(p.sent / Math.max(0.001, p.ms / 1000)).toLocaleString('en-US')} msg/s`)
    }
    const days = positiveInteger(values.days, 'days', undefined)
    const { duration, horizon } = values
    const summary = await untilInterrupted(async signal => await produceTraffic({
      config: context.config,
      logger: context.logger,
      subscribers,
      seed,
      outcomes: values['no-outcomes'] !== true,
      signal,
      onProgress,
      ...(events === undefined ? {} : { events }),
      ...(rate === undefined ? {} : { rate }),
      ...(days === undefined ? {} : { days }),
      ...(duration === undefined ? {} : { durationMs: parseDuration(duration, 'duration') }),
      ...(horizon === undefined ? {} : { horizonMs: parseDuration(horizon, 'horizon') })
    }))
    if (tty) process.stderr.write('\r\x1b[K')
    const { byStream } = summary
    context.out.write(renderTable(['sent', 'billing', 'network', 'device', 'crm', 'churned', 'retained', 'msg/s', 'seconds'], [[
      String(summary.sent), String(byStream.billing), String(byStream.network), String(byStream.device), String(byStream.crm),
      String(summary.churned), String(summary.retained), String(Math.round(summary.sent / Math.max(0.001, summary.ms / 1000))), (summary.ms / 1000).toFixed(1)
    ]]))
    return 0
  }
}
