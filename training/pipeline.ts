/**
 * A training run end to end: train and evaluate, store the artifact as a new version, judge it
 * against the promoted model on the same hold-out rows (the gate), promote or keep, and record the
 * run locally (and in MLflow when a tracking server is configured).
 */
import type { Logger } from 'pino'
import type { ModelArtifact } from './artifact.ts'
import type { MlflowClient } from './mlflow.ts'
import { impute } from './imputation.ts'
import { rocAuc } from './metrics.ts'
import { CompiledForest } from './compiled.ts'
import { takeRows } from './split.ts'
import type { ModelRegistry } from './registry.ts'
import { trainModel } from './train.ts'
import type { TrainedModel, TrainSettings, TrainingSet } from './train.ts'

export interface GateSettings {
  /** The candidate may trail the current model's AUC by at most this. */
  tolerance: number
  /** With no current model, the candidate needs at least this AUC. */
  minAuc: number
}

export interface GateDecision {
  promote: boolean
  candidateAuc: number
  /** The current model's AUC (null: not comparable) and the candidate's on the same shared rows. */
  current?: { version: number, auc: number | null, candidateAuc?: number, rows?: number }
  reason: string
}

/** Probabilities of an artifact's model for raw rows (imputed with that model's medians). */
function scoreRaw (artifact: ModelTraits, raw: Float64Array, rows: number): Float64Array {
  const x = Float64Array.from(raw)
  impute(x, artifact.imputation)
  return new CompiledForest(artifact.forest).predictBatch(x, rows)
}

type ModelTraits = Pick<ModelArtifact, 'imputation' | 'forest'>

/**
 * The gate: the candidate's AUC against the current model's on the same rows, the hold-out rows
 * both runs held out, so neither learned from them (each model imputes with its own medians). A
 * model over a different feature schema cannot be compared on these rows, so it is never
 * promoted automatically; `model promote` does that on purpose.
 */
export function gate (trained: TrainedModel, current: ModelArtifact | undefined, settings: GateSettings): GateDecision {
  const candidateAuc = trained.artifact.metrics.test.rocAuc
  if (current === undefined) {
    return candidateAuc >= settings.minAuc
      ? { promote: true, candidateAuc, reason: `first model; hold-out AUC ${candidateAuc.toFixed(4)} >= floor ${settings.minAuc}` }
      : { promote: false, candidateAuc, reason: `first model, but hold-out AUC ${candidateAuc.toFixed(4)} is below the floor ${settings.minAuc}` }
  }
  const refuse = (why: string): GateDecision => ({ promote: false, candidateAuc, current: { version: current.version, auc: null }, reason: `${why}; compare and promote explicitly with \`model promote\`` })
  if (current.features.hash !== trained.artifact.features.hash) return refuse(`feature schema differs from current v${current.version}`)
  if (current.training.split.salt !== trained.artifact.training.split.salt) return refuse(`current v${current.version} chose its hold-out differently`)
  const { holdout } = trained
  const shared: number[] = []
  for (let i = 0; i < holdout.rows; i++) {
    if ((holdout.hashes[i] as number) <= current.training.split.boundaries[holdout.y[i] as 0 | 1]) shared.push(i)
  }
  const labels = Uint8Array.from(shared, i => holdout.y[i] as number)
  const positives = labels.reduce((a, b) => a + b, 0)
  if (positives === 0 || positives === labels.length) return refuse(`no hold-out rows of both classes shared with current v${current.version} (${labels.length} shared)`)
  const x = takeRows(holdout.x, current.features.names.length, shared)
  const candidateShared = rocAuc(labels, scoreRaw(trained.artifact, x, shared.length))
  const currentAuc = rocAuc(labels, scoreRaw(current, x, shared.length))
  const versus = `AUC ${candidateShared.toFixed(4)} vs current v${current.version} ${currentAuc.toFixed(4)} on the ${shared.length} hold-out rows neither learned from (tolerance ${settings.tolerance})`
  const decision = { candidateAuc, current: { version: current.version, auc: currentAuc, candidateAuc: candidateShared, rows: shared.length } }
  return candidateShared >= currentAuc - settings.tolerance
    ? { promote: true, ...decision, reason: versus }
    : { promote: false, ...decision, reason: `worse: ${versus}` }
}

export interface RunOutcome {
  artifact: ModelArtifact
  decision: GateDecision
  promoted: boolean
}

/** Hands a finished run to experiment tracking (MLflow); the artifact file is on disk by then. */
export type TrackRun = (artifact: ModelArtifact, decision: GateDecision, file: string) => Promise<Record<string, unknown>>

export interface RunSettings {
  name: string
  registry: ModelRegistry
  train: TrainSettings
  gate: GateSettings
  /** false: store the version but leave the pointer alone. @defaultValue true */
  promote?: boolean
  track?: TrackRun
  logger: Logger
}

export async function runTraining (set: TrainingSet, settings: RunSettings): Promise<RunOutcome> {
  const { registry, name, logger } = settings
  const trained = await trainModel(set, settings.train)
  const current = await registry.current(name)
  const decision = gate(trained, current, settings.gate)
  const artifact = await registry.save({ ...trained.artifact, name })
  const promoted = decision.promote && settings.promote !== false
  if (promoted) await registry.promote(name, artifact.version, decision.reason)
  let tracking: Record<string, unknown> | undefined
  if (settings.track !== undefined) {
    try {
      tracking = await settings.track(artifact, decision, registry.file(name, artifact.version))
    } catch (error) {
      // The model is stored and judged; losing the experiment record is worth a warning, not the run.
      logger.warn({ err: error, model: name, version: artifact.version }, 'could not record the run in experiment tracking')
      tracking = { error: (error as Error).message }
    }
  }
  await registry.recordRun(name, {
    version: artifact.version,
    engine: artifact.engine,
    labels: artifact.training.labels,
    rows: artifact.training.rows,
    params: artifact.params,
    metrics: { testAuc: artifact.metrics.test.rocAuc, prAuc: artifact.metrics.test.prAuc, brier: artifact.metrics.test.brier, cvAuc: artifact.metrics.cv?.mean ?? null, cvStd: artifact.metrics.cv?.std ?? null },
    gate: decision,
    promoted,
    durationMs: artifact.training.durationMs,
    ...(tracking === undefined ? {} : { tracking })
  })
  logger.info({ model: name, version: artifact.version, testAuc: decision.candidateAuc, promoted, reason: decision.reason }, promoted ? 'model promoted' : 'model stored, not promoted')
  return { artifact, decision, promoted }
}

/** Logs a run to MLflow: the parameters, the hold-out and gate figures, and the artifact file. */
export function trackWithMlflow (client: MlflowClient, experimentName: string): TrackRun {
  return async (artifact, decision, file) => {
    const m = artifact.metrics
    const metrics: Record<string, number> = {
      test_roc_auc: m.test.rocAuc,
      test_pr_auc: m.test.prAuc,
      test_brier: m.test.brier,
      high_precision: m.test.high.precision,
      high_recall: m.test.high.recall,
      medium_precision: m.test.medium.precision,
      medium_recall: m.test.medium.recall,
      train_rows: m.rows.train,
      test_rows: m.rows.test,
      training_seconds: artifact.training.durationMs / 1000,
      promoted: decision.promote ? 1 : 0
    }
    if (m.cv !== null) {
      metrics.cv_roc_auc_mean = m.cv.mean
      metrics.cv_roc_auc_std = m.cv.std
    }
    if (decision.current?.auc !== undefined && decision.current.auc !== null) metrics.gate_current_auc = decision.current.auc
    const logged = await client.logRun({
      experimentName,
      runName: `${artifact.name}-v${artifact.version}`,
      params: { ...artifact.params, engine: artifact.engine, labels: artifact.training.labels, features: artifact.features.names.length },
      metrics,
      tags: { model: artifact.name, version: String(artifact.version), feature_hash: artifact.features.hash, gate: decision.reason.slice(0, 5000) },
      artifacts: [{ file, name: `${artifact.name}-v${artifact.version}.json` }]
    })
    return { mlflow: logged }
  }
}
