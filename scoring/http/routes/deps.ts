/** What the prediction, model and protocol routes are given, and the serving-model lookups they share. */
import type { Config } from '../../../config/index.ts'
import type { ChurnModel } from '../../../training/model.ts'
import type { DriftReport } from '../../drift.ts'
import { RequestError, ScoringError } from '../../errors.ts'
import type { ModelHolder } from '../../model-holder.ts'
import type { OnlineStore } from '../../store.ts'

export interface RoutesDeps {
  /** Batch limit (`api.maxBatch`), risk tiers, the served model's name, feature staleness (`scorer.staleMs`). */
  config: Pick<Config, 'api' | 'risk' | 'serving' | 'scorer'>
  /** The serving model; without it every scoring route answers 503. */
  models?: ModelHolder | undefined
  /** The online store; without it the subscriber route answers 503. */
  store?: OnlineStore | undefined
  /** The scorer's drift report, shown on the model card when it is about the serving version. */
  drift?: (() => DriftReport | undefined) | undefined
  /**
   * The clock (feature age, `days_since_last_activity` when rescoring).
   * @defaultValue Date.now
   */
  now?: () => number
}

/** The serving model, or a 503 saying none is loaded (readiness says why). */
export function servingModel (deps: RoutesDeps): ChurnModel {
  const model = deps.models?.current
  if (model === undefined) throw new ScoringError('CHURN_SCORE_NO_MODEL', `no model ${deps.config.serving.modelName} is loaded yet; /api/v1/ready says why`, { retriable: true })
  return model
}

/** The served model's name, or a 404 for any other: this server serves one model. */
export function checkServedName (deps: RoutesDeps, name: string): string {
  const served = deps.config.serving.modelName
  if (name !== served) throw new RequestError('CHURN_API_NOT_FOUND', 404, `model ${JSON.stringify(name.slice(0, 80))} is not served here; this server serves ${JSON.stringify(served)}`)
  return name
}

/** Rounds to `places` decimals (the reference design reports probabilities to 3). */
export function round (value: number, places: number): number {
  const scale = 10 ** places
  return Math.round(value * scale) / scale
}
