import { DAY_MS } from '../../lakehouse/features.ts'
import { Lakehouse } from '../../lakehouse/lakehouse.ts'
import { runIngest } from '../../streams/ingest-role.ts'
import { produceTraffic } from '../../streams/producer.ts'
import { ModelRegistry } from '../../training/registry.ts'
import type { Command, CommandContext } from '../context.ts'
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

function progress (context: CommandContext, message: string): void {
  if (process.stderr.isTTY) process.stderr.write(`${message}\n`)
  else context.logger.info({ stage: message }, 'bootstrap')
}

/**
 * What the API pod's init container runs: topics and subjects in place, demo history generated
 * if asked and the lakehouse is empty, ingest to consumer lag zero, train, gate, write the model.
 * Exits 0 when a promoted model exists at the end (the new one, or the one the gate kept),
 * otherwise non-zero with the reason, so the pod never starts without a model.
 */
export const bootstrapCommand: Command = {
  name: 'bootstrap',
  summary: 'init container job: topics and subjects, optional demo history, ingest to lag 0, train, gate; non-zero without a model',
  usage: 'bootstrap [--seed-demo [--subscribers 2000] [--events 100000] [--demo-seed 1]] [train options: --horizon-days --name --engine --trees --max-depth --min-samples-leaf --max-features --seed --threads --folds --test-fraction --bootstrap-labels --no-promote]',
  run: async (args, context) => {
    const { own, training } = splitArguments(args)
    const { values } = parseOptions({
      args: own,
      options: { 'seed-demo': { type: 'boolean' }, subscribers: { type: 'string' }, events: { type: 'string' }, 'demo-seed': { type: 'string' } }
    })
    if (values['seed-demo'] !== true && (values.subscribers !== undefined || values.events !== undefined || values['demo-seed'] !== undefined)) {
      throw new UsageError('--subscribers, --events and --demo-seed go with --seed-demo')
    }
    const trainArgs = parseTrainArguments(training)
    const { config, logger } = context

    if (values['seed-demo'] === true) {
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

    progress(context, 'ingesting to consumer lag 0')
    const ingested = await runIngest({ config, logger, untilCaughtUp: true })
    progress(context, `ingested ${ingested.messages} messages to lag ${ingested.lag}: ${ingested.silver} to Silver, ${ingested.quarantined} quarantined, ${ingested.deadLettered} dead-lettered`)

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
