#!/usr/bin/env node
/**
 * `npm run bench:train [-- --quick] [-- --mlrf-budget 180]`: the training benchmark.
 *
 * On each data set, in one run and side by side: scikit-learn's RandomForestClassifier (n_jobs=1;
 * Python from the project's venv), this project's forest on one thread and on every core, and
 * `ml-random-forest` where it finishes within the budget (its time is estimated from a small fit,
 * as it grows about as n^1.8). Same parameters everywhere: 200 trees, depth 6, min_samples_leaf
 * 2, sqrt features, balanced classes; the same hold-out (the training path's hash split) and the
 * same training medians. Printed: training time, hold-out ROC AUC, batch scoring rows per second,
 * and our figures over scikit-learn's. Goals: AUC at least sklearn's - 0.005 on every set,
 * training time at most 0.5x sklearn's at 100k rows, batch scoring at least 5x predict_proba.
 *
 * Sets: the Telco CSV, and synthetic Gold: the product's own traffic generator landed in an
 * in-memory lakehouse and turned into a training set exactly as `churn train` does (CRM outcomes,
 * features 7 days before each), for 1k (where ml-random-forest finishes), 10k and 100k
 * subscribers. `--quick` (the test suite) runs small versions so the benchmark never rots.
 */
import { execFile } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { availableParallelism, tmpdir } from 'node:os'
import path from 'node:path'
import { parseArgs, promisify } from 'node:util'
import { pino } from 'pino'
import { loadConfig } from '../config/index.ts'
import { routeProcessWarnings } from '../core/warnings.ts'
import { ensurePythonEnv } from '../stack/index.ts'
import { CompiledForest } from '../training/compiled.ts'
import type { ForestModel, ForestOptions, TrainingMatrix } from '../training/forest.ts'
import { columnMedians, impute } from '../training/imputation.ts'
import { rocAuc } from '../training/metrics.ts'
import { trainMlRandomForest } from '../training/ml-random-forest.ts'
import { trainForestParallel } from '../training/parallel.ts'
import { csvTrainingSet } from '../training/sets.ts'
import { syntheticTrainingSet } from '../training/synthetic.ts'
import { hashSplit, takeLabels, takeRows } from '../training/split.ts'
import type { TrainingSet } from '../training/train.ts'

const { values } = parseArgs({ options: { quick: { type: 'boolean', default: false }, 'mlrf-budget': { type: 'string' } } })
const quick = values.quick
const budgetSeconds = Number(values['mlrf-budget'] ?? (quick ? 20 : 180))
const logger = pino({ level: process.env.BENCH_LOG_LEVEL ?? 'warn' })
routeProcessWarnings(logger)
const config = loadConfig(process.env, { cwd: process.cwd() })
const TELCO = path.resolve(import.meta.dirname, '../datasets/telco-customer-churn.csv')
const PEER = path.resolve(import.meta.dirname, 'peers/sklearn_forest.py')
const trees = quick ? 20 : 200
const params: Required<Pick<ForestOptions, 'nEstimators' | 'maxDepth' | 'minSamplesLeaf' | 'seed'>> = { nEstimators: trees, maxDepth: 6, minSamplesLeaf: 2, seed: 42 }
const cores = availableParallelism()

/** Synthetic Gold: the generator's traffic for `subscribers`, landed, labelled as `churn train` does. */
async function syntheticGold (subscribers: number): Promise<TrainingSet> {
  return await syntheticTrainingSet({ subscribers, settings: config.lakehouse.settings })
}

interface Prepared {
  name: string
  train: TrainingMatrix
  test: TrainingMatrix
  /** The hold-out rows repeated up to a batch worth timing. */
  score: Float64Array
  scoreRows: number
  /** Forest seeds whose hold-out AUCs are averaged: one hold-out of a few hundred rows is noisy. */
  seeds: number[]
}

function prepare (name: string, set: TrainingSet): Prepared {
  const columns = set.schema.names.length
  const split = hashSplit(set.keys, set.y, 0.25)
  const part = (index: Uint32Array): TrainingMatrix => ({ x: takeRows(set.x, columns, index), y: takeLabels(set.y, index), rows: index.length, columns })
  const train = part(split.train)
  const test = part(split.test)
  const medians = columnMedians(train.x, train.rows, columns)
  impute(train.x, medians)
  impute(test.x, medians)
  const scoreRows = Math.max(test.rows, quick ? 20_000 : 200_000)
  const score = new Float64Array(scoreRows * columns)
  for (let r = 0; r < scoreRows; r++) score.set(test.x.subarray((r % test.rows) * columns, (r % test.rows + 1) * columns), r * columns)
  // Below 20k training rows a single forest's AUC moves by about 0.01 with its seed; five seeds
  // average that out for both engines. Timing and scoring use the first seed.
  const seeds = !quick && train.rows < 20_000 ? [42, 43, 44, 45, 46] : [42]
  return { name, train, test, score, scoreRows, seeds }
}

/** `auc` is the mean over the set's seeds. */
interface Figures { trainSeconds: number | null, auc: number | null, scoreRowsPerSecond: number | null, note?: string }

const mean = (values: number[]): number => values.reduce((a, b) => a + b, 0) / values.length

async function sklearn (python: string, data: Prepared, dir: string): Promise<Figures & { version: string }> {
  const file = (name: string): string => path.join(dir, `${data.name}.${name}.bin`)
  const write = async (name: string, array: Float64Array | Uint8Array): Promise<void> => { await writeFile(file(name), new Uint8Array(array.buffer, array.byteOffset, array.byteLength)) }
  await write('xTrain', data.train.x)
  await write('yTrain', data.train.y)
  await write('xTest', data.test.x)
  await write('yTest', data.test.y)
  await write('xScore', data.score)
  const spec = { columns: data.train.columns, params, seeds: data.seeds, xTrain: file('xTrain'), yTrain: file('yTrain'), xTest: file('xTest'), yTest: file('yTest'), xScore: file('xScore') }
  const { stdout } = await promisify(execFile)(python, [PEER, JSON.stringify(spec)], { maxBuffer: 1024 * 1024 })
  const out = JSON.parse(stdout.trim().split('\n').pop() as string) as { fitSeconds: number, aucs: number[], scoreRowsPerSecond: number, sklearn: string }
  return { trainSeconds: out.fitSeconds, auc: mean(out.aucs), scoreRowsPerSecond: out.scoreRowsPerSecond, version: out.sklearn }
}

function scoringRate (model: ForestModel, data: Prepared): number {
  const forest = new CompiledForest(model)
  const out = new Float64Array(data.scoreRows)
  forest.predictBatch(data.score, Math.min(data.scoreRows, 5000), out)
  const started = performance.now()
  forest.predictBatch(data.score, data.scoreRows, out)
  return data.scoreRows / ((performance.now() - started) / 1000)
}

function auc (model: ForestModel, data: Prepared): number {
  return rocAuc(data.test.y, new CompiledForest(model).predictBatch(data.test.x, data.test.rows))
}

async function ours (data: Prepared, threads: number): Promise<Figures & { model: ForestModel }> {
  const started = performance.now()
  const model = await trainForestParallel(data.train, params, { threads })
  const trainSeconds = (performance.now() - started) / 1000
  const aucs = [auc(model, data)]
  for (const seed of data.seeds.slice(1)) aucs.push(auc(await trainForestParallel(data.train, { ...params, seed }, { threads }), data))
  return { model, trainSeconds, auc: mean(aucs), scoreRowsPerSecond: scoringRate(model, data) }
}

function mlRandomForest (data: Prepared): Figures {
  // Estimate from a fit on a few hundred rows, scaled as n^1.8, before committing to the full one.
  const probeRows = Math.min(data.train.rows, 300)
  const probe: TrainingMatrix = { x: data.train.x.subarray(0, probeRows * data.train.columns), y: data.train.y.subarray(0, probeRows), rows: probeRows, columns: data.train.columns }
  let started = performance.now()
  trainMlRandomForest(probe, params)
  const estimate = ((performance.now() - started) / 1000) * (data.train.rows / probeRows) ** 1.8
  if (estimate > budgetSeconds) return { trainSeconds: null, auc: null, scoreRowsPerSecond: null, note: `skipped: about ${Math.round(estimate)} s estimated, over the ${budgetSeconds} s budget` }
  started = performance.now()
  const model = trainMlRandomForest(data.train, params)
  const trainSeconds = (performance.now() - started) / 1000
  // One seed: its fits take seconds to minutes.
  return { trainSeconds, auc: auc(model, data), scoreRowsPerSecond: scoringRate(model, data), ...(data.seeds.length > 1 ? { note: 'AUC of seed 42 only' } : {}) }
}

const fixed = (v: number | null, digits: number): string => v === null ? '-' : v.toFixed(digits)
const int = (v: number | null): string => v === null ? '-' : Math.round(v).toLocaleString('en-US')
const ratio = (a: number | null, b: number | null): string => a === null || b === null ? '-' : `${(a / b).toFixed(2)}x`

const python = await ensurePythonEnv({ paths: { root: config.stack.dir }, tools: { searchPath: process.env.PATH ?? '', env: process.env, isRoot: process.getuid?.() === 0, logger } })
const dir = await mkdtemp(path.join(tmpdir(), 'churn-bench-train-'))
const goals: string[] = []
let version = ''
try {
  const sets: Array<[string, () => Promise<TrainingSet>]> = [
    ['telco', async () => await csvTrainingSet(TELCO, { target: 'Churn', positive: 'Yes' })],
    ...(quick ? [1000] : [1000, 10_000, 100_000]).map((n): [string, () => Promise<TrainingSet>] => [`gold-${n / 1000}k`, async () => await syntheticGold(n)])
  ]
  process.stdout.write(`bench:train  ${trees} trees, depth 6, min_samples_leaf 2, sqrt features, balanced; ${cores} cores${quick ? '  (quick)' : ''}\n`)
  process.stdout.write('test AUC: mean over seeds 42-46 below 20k training rows, seed 42 above; time and scoring: seed 42\n\n')
  process.stdout.write(`${'set'.padEnd(10)} ${'train x features'.padEnd(17)} ${'engine'.padEnd(20)} ${'train s'.padStart(8)} ${'vs sklearn'.padStart(10)} ${'test AUC'.padStart(9)} ${'- sklearn'.padStart(9)} ${'score rows/s'.padStart(13)} ${'vs sklearn'.padStart(10)}\n`)
  for (const [name, load] of sets) {
    const built = performance.now()
    const data = prepare(name, await load())
    logger.info({ set: name, seconds: (performance.now() - built) / 1000 }, 'data set ready')
    const reference = await sklearn(python, data, dir)
    version = reference.version
    const single = await ours(data, 1)
    const parallel = cores > 1 ? await ours(data, cores) : undefined
    if (parallel !== undefined && parallel.auc !== single.auc) throw new Error(`${name}: the parallel forest differs from the single-thread one`)
    const mlrf = mlRandomForest(data)
    const row = (engine: string, f: Figures): void => {
      process.stdout.write(`${name.padEnd(10)} ${`${data.train.rows} x ${data.train.columns}`.padEnd(17)} ${engine.padEnd(20)} ${fixed(f.trainSeconds, 2).padStart(8)} ${(engine.startsWith('sklearn') ? '' : ratio(f.trainSeconds, reference.trainSeconds)).padStart(10)} ${fixed(f.auc, 4).padStart(9)} ${(engine.startsWith('sklearn') || f.auc === null || reference.auc === null ? '' : (f.auc - reference.auc).toFixed(4)).padStart(9)} ${int(f.scoreRowsPerSecond).padStart(13)} ${(engine.startsWith('sklearn') ? '' : ratio(f.scoreRowsPerSecond, reference.scoreRowsPerSecond)).padStart(10)}${f.note === undefined ? '' : `  ${f.note}`}\n`)
    }
    row(`sklearn ${reference.version}`, reference)
    row('forest, 1 thread', single)
    if (parallel !== undefined) row(`forest, ${cores} threads`, parallel)
    row('ml-random-forest', mlrf)
    const aucOk = (single.auc as number) >= (reference.auc as number) - 0.005
    // gold-1k is here so ml-random-forest has a set it finishes; the issue's goal sets are the others.
    const verdict = name === 'gold-1k' ? '(not a goal set)' : aucOk ? 'met' : 'NOT MET'
    goals.push(`${name}: AUC ${fixed(single.auc, 4)} vs sklearn ${fixed(reference.auc, 4)} (goal >= sklearn - 0.005)  ${verdict}`)
    const scoring = (single.scoreRowsPerSecond as number) / (reference.scoreRowsPerSecond as number)
    goals.push(`${name}: batch scoring ${scoring.toFixed(1)}x predict_proba on one thread (goal >= 5x)  ${scoring >= 5 ? 'met' : 'NOT MET'}`)
    if (name === 'gold-100k') {
      const time = (single.trainSeconds as number) / (reference.trainSeconds as number)
      const timeParallel = parallel === undefined ? '' : `; ${ratio(parallel.trainSeconds, reference.trainSeconds)} on ${cores} threads`
      goals.push(`${name}: training ${time.toFixed(2)}x sklearn's time on one thread${timeParallel} (goal <= 0.5x)  ${time <= 0.5 ? 'met' : 'NOT MET'}`)
    }
  }
  process.stdout.write(`\ngoals (scikit-learn ${version}, n_jobs=1)\n${goals.map(g => `  ${g}`).join('\n')}\n`)
} finally {
  await rm(dir, { recursive: true, force: true })
}
