import { Lakehouse } from '../../lakehouse/lakehouse.ts'
import { ENGINES, fitWith } from '../../training/engines.ts'
import type { ForestOptions } from '../../training/forest.ts'
import { MlflowClient } from '../../training/mlflow.ts'
import { runTraining, trackWithMlflow } from '../../training/pipeline.ts'
import type { RunOutcome } from '../../training/pipeline.ts'
import { ModelRegistry, checkModelName } from '../../training/registry.ts'
import { csvTrainingSet, exportTrainingSet, lakehouseTrainingSet } from '../../training/sets.ts'
import type { Engine, TrainingSet } from '../../training/train.ts'
import type { CommandContext, Command } from '../context.ts'
import { UsageError } from '../errors.ts'
import { parseOptions, positiveInteger } from '../options.ts'
import { renderTable } from '../table.ts'
import path from 'node:path'

function fraction (text: string | undefined, option: string, fallback: number): number {
  if (text === undefined) return fallback
  const value = Number(text)
  if (!(value > 0 && value < 1)) throw new UsageError(`--${option} takes a number between 0 and 1; got ${JSON.stringify(text)}`)
  return value
}

function maxFeatures (text: string | undefined): ForestOptions['maxFeatures'] {
  if (text === undefined || text === 'sqrt' || text === 'log2') return text
  const value = Number(text)
  if (!(value > 0) || (value > 1 && !Number.isInteger(value))) throw new UsageError(`--max-features takes sqrt, log2, a whole number or a fraction in (0, 1]; got ${JSON.stringify(text)}`)
  return value
}

/** A model name from a CSV file's name: `telco-customer-churn.csv` gives `telco-customer-churn`. */
export function nameFromFile (file: string): string {
  const base = path.basename(file).replace(/\.[^.]*$/, '').toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 63)
  return base === '' ? 'tabular' : base
}

export const TRAIN_USAGE = 'train [--csv <file> --target <column> --positive <value> [--drop <column>]... | --from-export <dir>] [--horizon-days 7] [--bootstrap-labels] [--name <model>] [--engine forest|ml-random-forest] [--trees 200] [--max-depth 6] [--min-samples-leaf 2] [--max-features sqrt] [--seed 42] [--threads N] [--folds 5] [--test-fraction 0.25] [--no-promote]'

export interface TrainArguments {
  csv?: { file: string, target: string, positive: string, drop: string[] }
  /**
   * A folder of Parquet files written by `churn lakehouse export` (or `ingest --export-every`):
   * the lakehouse's labels and point-in-time features, without opening the lakehouse file, which
   * the running ingest role holds.
   */
  fromExport?: string
  bootstrapLabels: boolean
  /** Lakehouse labels: how far ahead of the outcome the features are taken. */
  horizonDays: number
  name: string
  engine: Engine
  forest: ForestOptions
  threads?: number
  folds: number
  testFraction: number
  promote: boolean
}

export function parseTrainArguments (args: readonly string[]): TrainArguments {
  const { values } = parseOptions({
    args: [...args],
    options: {
      csv: { type: 'string' },
      'from-export': { type: 'string' },
      target: { type: 'string' },
      positive: { type: 'string' },
      drop: { type: 'string', multiple: true },
      'bootstrap-labels': { type: 'boolean' },
      'horizon-days': { type: 'string' },
      name: { type: 'string' },
      engine: { type: 'string' },
      trees: { type: 'string' },
      'max-depth': { type: 'string' },
      'min-samples-leaf': { type: 'string' },
      'max-features': { type: 'string' },
      seed: { type: 'string' },
      threads: { type: 'string' },
      folds: { type: 'string' },
      'test-fraction': { type: 'string' },
      'no-promote': { type: 'boolean' }
    }
  })
  let csv: TrainArguments['csv']
  if (values.csv !== undefined) {
    if (values.target === undefined || values.positive === undefined) throw new UsageError('--csv needs --target <column> and --positive <value> (the value that means churned)')
    if (values['bootstrap-labels'] === true || values['horizon-days'] !== undefined) throw new UsageError('--bootstrap-labels and --horizon-days are for the lakehouse path, not --csv')
    csv = { file: values.csv, target: values.target, positive: values.positive, drop: values.drop ?? [] }
  } else if (values.target !== undefined || values.positive !== undefined || values.drop !== undefined) {
    throw new UsageError('--target, --positive and --drop go with --csv')
  }
  const fromExport = values['from-export']
  if (fromExport !== undefined && csv !== undefined) throw new UsageError('--from-export and --csv are two different training sources; give one')
  if (fromExport === '') throw new UsageError('--from-export takes a folder')
  const engine = values.engine ?? 'forest'
  if (!(ENGINES as readonly string[]).includes(engine)) throw new UsageError(`--engine takes ${ENGINES.join(' or ')}; got ${JSON.stringify(engine)}`)
  const folds = values.folds === '0' ? 0 : positiveInteger(values.folds, 'folds', 5)
  if (folds === 1) throw new UsageError('--folds takes 0 (no cross-validation) or at least 2')
  const seed = values.seed === undefined ? 42 : Number(values.seed)
  if (!Number.isSafeInteger(seed) || seed < 0) throw new UsageError(`--seed takes a whole number; got ${JSON.stringify(values.seed)}`)
  const forest: ForestOptions = {
    nEstimators: positiveInteger(values.trees, 'trees', 200),
    maxDepth: positiveInteger(values['max-depth'], 'max-depth', 6),
    minSamplesLeaf: positiveInteger(values['min-samples-leaf'], 'min-samples-leaf', 2),
    maxFeatures: maxFeatures(values['max-features']),
    seed
  }
  const threads = positiveInteger(values.threads, 'threads', undefined)
  return {
    ...(csv === undefined ? {} : { csv }),
    ...(fromExport === undefined ? {} : { fromExport }),
    bootstrapLabels: values['bootstrap-labels'] === true,
    horizonDays: values['horizon-days'] === '0' ? 0 : positiveInteger(values['horizon-days'], 'horizon-days', 7),
    name: checkName(values.name ?? (csv === undefined ? 'churn' : nameFromFile(csv.file))),
    engine: engine as Engine,
    forest,
    ...(threads === undefined ? {} : { threads }),
    folds,
    testFraction: fraction(values['test-fraction'], 'test-fraction', 0.25),
    promote: values['no-promote'] !== true
  }
}

function checkName (name: string): string {
  try {
    return checkModelName(name)
  } catch (error) {
    throw new UsageError((error as Error).message)
  }
}

/**
 * Trains from the parsed arguments: a CSV, a Parquet export, or the lakehouse file (which it opens
 * itself, so only while ingest is not running).
 */
export async function train (args: TrainArguments, context: CommandContext, set?: TrainingSet): Promise<RunOutcome> {
  const { config, logger } = context
  let trainingSet = set
  if (trainingSet === undefined && args.csv !== undefined) {
    trainingSet = await csvTrainingSet(args.csv.file, { target: args.csv.target, positive: args.csv.positive, drop: args.csv.drop })
  }
  if (trainingSet === undefined && args.fromExport !== undefined) {
    trainingSet = await exportTrainingSet(args.fromExport, { bootstrapLabels: args.bootstrapLabels, horizonDays: args.horizonDays, settings: config.lakehouse.settings })
  }
  if (trainingSet === undefined) {
    const lakehouse = await Lakehouse.open(config.lakehouse)
    try {
      trainingSet = await lakehouseTrainingSet(lakehouse, { bootstrapLabels: args.bootstrapLabels, horizonDays: args.horizonDays, path: config.lakehouse.path })
    } finally {
      lakehouse.close()
    }
  }
  const tty = process.stderr.isTTY
  return await runTraining(trainingSet, {
    name: args.name,
    registry: new ModelRegistry(config.model.dir),
    train: {
      engine: args.engine,
      fit: fitWith(args.engine, args.threads === undefined ? {} : { threads: args.threads }),
      forest: args.forest,
      folds: args.folds,
      testFraction: args.testFraction,
      tiers: config.risk,
      onStage: stage => {
        if (tty) process.stderr.write(`\r\x1b[K${args.name}: ${stage}...`)
        else logger.info({ model: args.name, stage }, 'training')
      }
    },
    gate: config.model.gate,
    promote: args.promote,
    ...(config.mlflow.trackingUri === undefined ? {} : { track: trackWithMlflow(new MlflowClient({ trackingUri: config.mlflow.trackingUri }), config.mlflow.experiment) }),
    logger
  }).finally(() => { if (tty) process.stderr.write('\r\x1b[K') })
}

export function renderOutcome (outcome: RunOutcome): string {
  const { artifact, decision, promoted } = outcome
  const m = artifact.metrics
  const f = (v: number): string => v.toFixed(4)
  return [
    renderTable(
      ['model', 'version', 'engine', 'labels', 'rows', 'features', 'cv AUC', 'test AUC', 'PR AUC', 'Brier', 'seconds'],
      [[artifact.name, String(artifact.version), artifact.engine, artifact.training.labels, String(artifact.training.rows), String(artifact.features.names.length),
        m.cv === null ? '-' : `${f(m.cv.mean)} ± ${f(m.cv.std)}`, f(m.test.rocAuc), f(m.test.prAuc), f(m.test.brier), (artifact.training.durationMs / 1000).toFixed(1)]]
    ),
    renderTable(
      ['tier', 'threshold', 'precision', 'recall', 'TP', 'FP', 'TN', 'FN'],
      (['high', 'medium'] as const).map(t => {
        const c = m.test[t]
        return [t, String(c.threshold), f(c.precision), f(c.recall), String(c.truePositives), String(c.falsePositives), String(c.trueNegatives), String(c.falseNegatives)]
      })
    ),
    `${promoted ? 'promoted' : 'not promoted'}: ${decision.reason}\n`
  ].join('\n')
}

export const trainCommand: Command = {
  name: 'train',
  summary: 'train a forest on CRM outcomes in the lakehouse (or its Parquet export, or a customer-profile CSV), evaluate it, store it, promote it through the gate',
  usage: TRAIN_USAGE,
  run: async (args, context) => {
    const outcome = await train(parseTrainArguments(args), context)
    context.out.write(renderOutcome(outcome))
    return 0
  }
}
