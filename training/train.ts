/**
 * One training run over a training set, whichever path built it: a stratified hold-out split,
 * stratified k-fold cross-validation on the training part, the forest fitted on the training
 * part, metrics on the hold-out, and the distributions drift monitoring compares live traffic
 * with. Everything that learns from data (imputation medians, bins, trees) sees only the rows it
 * is allowed to: a fold's medians come from that fold's training rows, the model's from the
 * training part; the hold-out is touched once, to measure.
 */
import type { EvaluationMetrics, FeatureSchema, ModelArtifact, TrainingInfo } from './artifact.ts'
import { featureHash } from './artifact.ts'
import { featureDistribution, scoreDistribution } from './drift.ts'
import { TrainingError } from './errors.ts'
import { checkMatrix, resolveOptions } from './forest.ts'
import type { ForestModel, ForestOptions, TrainingMatrix } from './forest.ts'
import { columnMedians, impute } from './imputation.ts'
import { averagePrecision, brierScore, confusionAt, rocAuc } from './metrics.ts'
import { CompiledForest } from './compiled.ts'
import { SPLIT_SALT, complement, hashSplit, stratifiedFolds, takeLabels, takeRows } from './split.ts'

/** Rows to learn from, with NaN where a value is missing. */
export interface TrainingSet {
  x: Float64Array
  y: Uint8Array
  rows: number
  /** A stable key per row (label id, customer id): it decides the hold-out. */
  keys: readonly string[]
  schema: FeatureSchema
  labels: TrainingInfo['labels']
  source: TrainingInfo['source']
  window: TrainingInfo['window']
}

export type Engine = ModelArtifact['engine']

/** Fits a forest on an imputed matrix; the engines differ, their output does not. */
export type FitForest = (matrix: TrainingMatrix, options: ForestOptions) => Promise<ForestModel>

export interface TrainSettings {
  engine: Engine
  fit: FitForest
  forest: ForestOptions
  /** @defaultValue 0.25 */
  testFraction?: number
  /** Cross-validation folds; 0 turns it off. @defaultValue 5 */
  folds?: number
  /** Risk-tier thresholds the confusion matrices are taken at. */
  tiers: { high: number, medium: number }
  /** Called as each stage starts, for progress on a terminal. */
  onStage?: (stage: string) => void
}

/** An artifact without the name, version and date the registry gives it, and the raw hold-out rows. */
export interface TrainedModel {
  artifact: Omit<ModelArtifact, 'name' | 'version' | 'createdAt'>
  holdout: { x: Float64Array, y: Uint8Array, rows: number, hashes: Float64Array }
}

function imputedPart (set: TrainingSet, index: Uint32Array, medians?: Float64Array): { matrix: TrainingMatrix, medians: Float64Array } {
  const columns = set.schema.names.length
  const x = takeRows(set.x, columns, index)
  const values = medians ?? columnMedians(x, index.length, columns)
  impute(x, values)
  return { matrix: { x, y: takeLabels(set.y, index), rows: index.length, columns }, medians: values }
}

function mean (values: readonly number[]): number {
  return values.reduce((a, b) => a + b, 0) / values.length
}

export async function trainModel (set: TrainingSet, settings: TrainSettings): Promise<TrainedModel> {
  const started = performance.now()
  const columns = set.schema.names.length
  const testFraction = settings.testFraction ?? 0.25
  const folds = settings.folds ?? 5
  const options = resolveOptions(settings.forest)
  if (set.x.length !== set.rows * columns) throw new TrainingError('CHURN_TRAIN_BAD_INPUT', `${set.x.length} values do not make ${set.rows} rows of ${columns} features`)
  // Labels and shape first, on a NaN-free stand-in, so an empty or one-class set fails before any work.
  checkMatrix({ x: new Float64Array(set.rows * columns), y: set.y, rows: set.rows, columns })
  if (set.keys.length !== set.rows) throw new TrainingError('CHURN_TRAIN_BAD_INPUT', `${set.keys.length} row keys for ${set.rows} rows`)
  const split = hashSplit(set.keys, set.y, testFraction)
  const trainLabels = takeLabels(set.y, split.train)
  const testLabels = takeLabels(set.y, split.test)
  const positives = (y: Uint8Array): number => y.reduce((a, b) => a + b, 0)
  for (const [part, y] of [['training', trainLabels], ['hold-out', testLabels]] as const) {
    const p = positives(y)
    if (p === 0 || p === y.length) throw new TrainingError('CHURN_TRAIN_ONE_CLASS', `the ${part} part of the split has only one class (${y.length} rows, ${p} churned); more labelled rows of each class are needed`)
  }

  let cv: EvaluationMetrics['cv'] = null
  if (folds >= 2) {
    const aucs: number[] = []
    const parts = stratifiedFolds(trainLabels, folds, options.seed)
    for (const [k, validation] of parts.entries()) {
      settings.onStage?.(`cross-validation fold ${k + 1}/${folds}`)
      const learn = complement(split.train.length, validation)
      const toSet = (local: Uint32Array): Uint32Array => local.map(i => split.train[i] as number)
      const fit = imputedPart(set, toSet(learn))
      const check = imputedPart(set, toSet(validation), fit.medians)
      const forest = new CompiledForest(await settings.fit(fit.matrix, options))
      aucs.push(rocAuc(check.matrix.y, forest.predictBatch(check.matrix.x, check.matrix.rows)))
    }
    const m = mean(aucs)
    cv = { folds, aucs, mean: m, std: Math.sqrt(mean(aucs.map(a => (a - m) ** 2))) }
  }

  settings.onStage?.('fitting the model')
  const fit = imputedPart(set, split.train)
  const forestModel = await settings.fit(fit.matrix, options)
  const forest = new CompiledForest(forestModel)
  settings.onStage?.('evaluating on the hold-out')
  const holdoutRaw = takeRows(set.x, columns, split.test)
  const test = imputedPart(set, split.test, fit.medians)
  const scores = forest.predictBatch(test.matrix.x, test.matrix.rows)
  const metrics: EvaluationMetrics = {
    rows: { train: split.train.length, test: split.test.length },
    positives: { train: positives(trainLabels), test: positives(testLabels) },
    cv,
    test: { rocAuc: rocAuc(testLabels, scores), prAuc: averagePrecision(testLabels, scores), brier: brierScore(testLabels, scores), high: confusionAt(testLabels, scores, settings.tiers.high), medium: confusionAt(testLabels, scores, settings.tiers.medium) }
  }
  // Training distributions from the training part before imputation, so the missing share is real.
  const rawTrain = takeRows(set.x, columns, split.train)
  const featureColumn = (f: number): Float64Array => {
    const out = new Float64Array(split.train.length)
    for (let r = 0; r < out.length; r++) out[r] = rawTrain[r * columns + f] as number
    return out
  }
  const params: Record<string, string | number | boolean> = { ...options, testFraction, folds }
  return {
    artifact: {
      format: 'churn-model/1',
      engine: settings.engine,
      params,
      features: { ...set.schema, hash: featureHash(set.schema) },
      imputation: Array.from(fit.medians),
      forest: forestModel,
      metrics,
      training: {
        labels: set.labels,
        source: set.source,
        window: set.window,
        rows: set.rows,
        positives: positives(set.y),
        seed: options.seed,
        testFraction,
        split: { salt: SPLIT_SALT, boundaries: split.boundaries },
        durationMs: Math.round(performance.now() - started)
      },
      distributions: {
        features: set.schema.names.map((_, f) => featureDistribution(featureColumn(f))),
        score: scoreDistribution(scores)
      }
    },
    holdout: { x: holdoutRaw, y: testLabels, rows: split.test.length, hashes: Float64Array.from(split.test, i => split.hashes[i] as number) }
  }
}
