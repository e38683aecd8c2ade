import { setTimeout as sleep } from 'node:timers/promises'
import type { Admin } from 'kafkajs'
import { DAY_MS } from '../../lakehouse/features.ts'
import { Lakehouse } from '../../lakehouse/lakehouse.ts'
import { runIngest } from '../../streams/ingest-role.ts'
import { createKafka } from '../../streams/kafka.ts'
import { produceTraffic } from '../../streams/producer.ts'
import { sourceTopics } from '../../streams/topics.ts'
import { TrainingError } from '../../training/errors.ts'
import { ModelRegistry } from '../../training/registry.ts'
import { exportCoverage, uncoveredMessages } from '../../training/sets.ts'
import type { Command, CommandContext } from '../context.ts'
import { awaitDependencies } from '../dependencies.ts'
import { UsageError } from '../errors.ts'
import { parseOptions, positiveInteger } from '../options.ts'
import { parseTrainArguments, renderOutcome, train } from './train.ts'

/** Exit code when the run ends with no promoted model: the pod must not start without one. */
export const NO_MODEL_EXIT = 3

const TRAIN_FLAGS = new Set(['--bootstrap-labels', '--no-promote'])
const TRAIN_VALUES = new Set(['--horizon-days', '--name', '--engine', '--trees', '--max-depth', '--min-samples-leaf', '--max-features', '--seed', '--threads', '--folds', '--test-fraction'])

/** Splits bootstrap's own options from the training options it passes on. */
function splitArguments (args: readonly string[]): { own: string[], training: string[] } {
  const own: string[] = []
  const training: string[] = []
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string
    const flag = arg.split('=')[0] as string
    if (TRAIN_FLAGS.has(flag)) training.push(arg)
    else if (TRAIN_VALUES.has(flag)) {
      training.push(arg)
      if (!arg.includes('=') && i + 1 < args.length) training.push(args[++i] as string)
    } else own.push(arg)
  }
  return { own, training }
}

/** Low and high watermark of every partition of `topics` (a topic that does not exist: none). */
async function watermarks (admin: Admin, topics: readonly string[]): Promise<{ low: Map<string, bigint>, high: Map<string, bigint> }> {
  const low = new Map<string, bigint>()
  const high = new Map<string, bigint>()
  const existing = new Set(await admin.listTopics())
  for (const topic of topics.filter(t => existing.has(t))) {
    for (const o of await admin.fetchTopicOffsets(topic)) {
      low.set(`${topic}:${o.partition}`, BigInt(o.low))
      high.set(`${topic}:${o.partition}`, BigInt(o.high))
    }
  }
  return { low, high }
}

/**
 * The init container's path when the ingest role runs in its own pod and holds the lakehouse file:
 * seed the source topics if asked and they are empty, then wait until the Parquet export in `dir`
 * (written by `ingest --export-every`) covers every message on the source topics at this moment,
 * which is ingest at lag zero as seen by the export. The caller then trains from the export.
 */
async function awaitExport (context: CommandContext, dir: string, seed: { subscribers: number, events: number, seed: number } | undefined, timeoutMs: number): Promise<void> {
  const { config, logger } = context
  const admin = createKafka({ brokers: config.kafka.brokers, clientId: `${config.kafka.clientId}-bootstrap`, logger }).admin()
  await admin.connect()
  try {
    const topics = sourceTopics(config.topics)
    if (seed !== undefined) {
      const { low, high } = await watermarks(admin, topics)
      const held = [...high].reduce((sum, [key, h]) => sum + h - (low.get(key) ?? 0n), 0n)
      if (held > 0n) {
        progress(context, `source topics hold ${held} messages; no demo history generated`)
      } else {
        progress(context, `generating demo history: ${seed.events} events for ${seed.subscribers} subscribers`)
        const today = Math.floor(Date.now() / DAY_MS) * DAY_MS
        const produced = await produceTraffic({ config, logger, ...seed, clock: () => today })
        progress(context, `produced ${produced.sent} messages (${produced.byStream.crm} CRM outcomes)`)
      }
    }
    const { low, high } = await watermarks(admin, topics)
    const deadline = Date.now() + timeoutMs
    let reported = -1n
    for (;;) {
      const missing = uncoveredMessages(high, low, await exportCoverage(dir))
      if (missing === 0n) break
      if (missing !== reported) progress(context, `waiting for ingest: the export in ${dir} lacks ${missing} source messages`)
      reported = missing
      if (Date.now() > deadline) {
        throw new TrainingError('CHURN_TRAIN_EMPTY', `the Parquet export in ${dir} still lacks ${missing} source messages after ${Math.round(timeoutMs / 1000)} s; is the ingest role running with --export-every into that folder?`, { retriable: true })
      }
      await sleep(2000)
    }
    progress(context, `the export in ${dir} covers the source topics`)
  } finally {
    await admin.disconnect()
  }
}

function progress (context: CommandContext, message: string): void {
  if (process.stderr.isTTY) process.stderr.write(`${message}\n`)
  else context.logger.info({ stage: message }, 'bootstrap')
}

/**
 * What the API pod's init container runs. Alone (the main job, one machine): topics and subjects in place, demo history generated
 * if asked and the lakehouse is empty, ingest to consumer lag zero, train, gate, write the model.
 * With `--from-export <dir>` (Kubernetes, where the ingest StatefulSet holds the lakehouse file):
 * no ingest here; it waits until the running ingest's Parquet export covers the source topics and
 * trains from that, as the retraining CronJob does.
 * Exits 0 when a promoted model exists at the end (the new one, or the one the gate kept),
 * otherwise non-zero with the reason, so the pod never starts without a model.
 */
export const bootstrapCommand: Command = {
  name: 'bootstrap',
  summary: 'init container job: topics and subjects, optional demo history, ingest to lag 0 (or, with --from-export, wait for the running ingest\'s export to cover the topics), train, gate; non-zero without a model',
  usage: 'bootstrap [--seed-demo [--subscribers 2000] [--events 100000] [--demo-seed 1]] [--from-export <dir> [--wait-timeout 1800]] [train options: --horizon-days --name --engine --trees --max-depth --min-samples-leaf --max-features --seed --threads --folds --test-fraction --bootstrap-labels --no-promote]',
  run: async (args, context) => {
    const { own, training } = splitArguments(args)
    const { values } = parseOptions({
      args: own,
      options: { 'seed-demo': { type: 'boolean' }, subscribers: { type: 'string' }, events: { type: 'string' }, 'demo-seed': { type: 'string' }, 'from-export': { type: 'string' }, 'wait-timeout': { type: 'string' } }
    })
    if (values['from-export'] === undefined && values['wait-timeout'] !== undefined) throw new UsageError('--wait-timeout goes with --from-export')
    if (values['seed-demo'] !== true && (values.subscribers !== undefined || values.events !== undefined || values['demo-seed'] !== undefined)) {
      throw new UsageError('--subscribers, --events and --demo-seed go with --seed-demo')
    }
    const fromExport = values['from-export']
    const trainArgs = { ...parseTrainArguments(training), ...(fromExport === undefined ? {} : { fromExport }) }
    const { config, logger } = context
    // An init container starts with its pod, possibly before Kafka and the registry answer: wait
    // for them (backoff, a warning when the reason changes) instead of exiting into a restart loop.
    // No stop signal of its own: SIGTERM ends it the default way, never with exit code 0, which
    // would let the pod start without a model. The registry only where something is produced.
    const registry = fromExport === undefined || values['seed-demo'] === true
    await awaitDependencies(context, { ...(registry ? { schemas: 'all' as const } : {}), topics: true }, { role: 'bootstrap' })

    if (fromExport !== undefined) {
      // Ingest runs in its own pod and holds the lakehouse file: train from its export instead.
      const seed = values['seed-demo'] === true
        ? { subscribers: positiveInteger(values.subscribers, 'subscribers', 2000), events: positiveInteger(values.events, 'events', 100_000), seed: positiveInteger(values['demo-seed'], 'demo-seed', 1) }
        : undefined
      await awaitExport(context, fromExport, seed, positiveInteger(values['wait-timeout'], 'wait-timeout', 1800) * 1000)
    } else if (values['seed-demo'] === true) {
      const lakehouse = await Lakehouse.open(config.lakehouse)
      const bronze = Object.entries(await lakehouse.counts()).filter(([table]) => table.startsWith('bronze_')).reduce((sum, [, rows]) => sum + rows, 0)
      lakehouse.close()
      if (bronze > 0) {
        progress(context, `lakehouse holds ${bronze} Bronze events; no demo history generated`)
      } else {
        const subscribers = positiveInteger(values.subscribers, 'subscribers', 2000)
        const events = positiveInteger(values.events, 'events', 100_000)
        const today = Math.floor(Date.now() / DAY_MS) * DAY_MS
        progress(context, `generating demo history: ${events} events for ${subscribers} subscribers`)
        const produced = await produceTraffic({ config, logger, subscribers, events, seed: positiveInteger(values['demo-seed'], 'demo-seed', 1), clock: () => today })
        progress(context, `produced ${produced.sent} messages (${produced.byStream.crm} CRM outcomes)`)
      }
    }

    if (fromExport === undefined) {
      progress(context, 'ingesting to consumer lag 0')
      const ingested = await runIngest({ config, logger, untilCaughtUp: true })
      progress(context, `ingested ${ingested.messages} messages to lag ${ingested.lag}: ${ingested.silver} to Silver, ${ingested.quarantined} quarantined, ${ingested.deadLettered} dead-lettered`)
    }

    progress(context, `training model ${trainArgs.name}`)
    const outcome = await train(trainArgs, context)
    context.out.write(renderOutcome(outcome))
    const current = await new ModelRegistry(config.model.dir).pointer(trainArgs.name)
    if (current === undefined) {
      logger.error({ model: trainArgs.name, reason: outcome.decision.reason }, 'no promoted model; the service cannot start')
      context.out.write(`no promoted model ${trainArgs.name}: ${outcome.decision.reason}\n`)
      return NO_MODEL_EXIT
    }
    context.out.write(`serving ${trainArgs.name} v${current.version}\n`)
    return 0
  }
}
