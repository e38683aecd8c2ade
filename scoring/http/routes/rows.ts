/**
 * Request rows to model input: each row a feature vector in model order, named features, or a
 * raw customer profile (tabular models), encoded and imputed exactly as `ChurnModel` does for
 * the scorer, then scored in one batch. A row the model refuses names itself (`body/instances/3:
 * ...`), so a client can find the bad one in a batch of a thousand.
 */
import { encodeProfile } from '../../../training/tabular.ts'
import type { ChurnModel } from '../../../training/model.ts'
import { TrainingError } from '../../../training/errors.ts'
import { errorCode, describeError } from '../../../core/errors.ts'
import { RECOMMENDED_ACTIONS, tierOf } from '../../tiers.ts'
import type { RiskTier, TierPolicy } from '../../tiers.ts'
import type { FastifyInstance } from 'fastify'
import { recordPrediction } from '../metrics.ts'
import { round } from './deps.ts'

export type Row =
  | { kind: 'vector', values: ArrayLike<number | null> }
  | { kind: 'named', values: Readonly<Record<string, unknown>> }
  | { kind: 'profile', values: Readonly<Record<string, unknown>> }

/** A reason as the API reports it: the feature, the value scored (null when missing and imputed), its contribution. */
export interface ReasonBody {
  feature: string
  value: number | null
  contribution: number
}

export interface ScoredRows {
  rows: number
  probabilities: Float64Array
  /** Imputed rows, row-major (for reasons). */
  x: Float64Array
  /** The rows before imputation (NaN where missing). */
  raw: Float64Array
}

/** Encodes every row (raw and imputed) and scores them in one batch. `where(r)` names row r in errors. */
export function scoreRows (model: ChurnModel, rows: readonly Row[], where: (r: number) => string): ScoredRows {
  const columns = model.names.length
  const raw = new Float64Array(rows.length * columns)
  const x = new Float64Array(rows.length * columns)
  for (const [r, row] of rows.entries()) {
    const rawRow = raw.subarray(r * columns, (r + 1) * columns)
    const xRow = x.subarray(r * columns, (r + 1) * columns)
    try {
      encodeRow(model, row, rawRow, xRow)
    } catch (error) {
      if (errorCode(error) !== 'CHURN_MODEL_BAD_INPUT') throw error
      throw new TrainingError('CHURN_MODEL_BAD_INPUT', `${where(r)}: ${describeError(error)}`, { cause: error })
    }
  }
  return { rows: rows.length, probabilities: model.predictBatch(x, rows.length), x, raw }
}

function encodeRow (model: ChurnModel, row: Row, raw: Float64Array, x: Float64Array): void {
  switch (row.kind) {
    case 'vector':
      model.vector(row.values, x)
      for (let i = 0; i < raw.length; i++) raw[i] = row.values[i] ?? Number.NaN
      return
    case 'named':
      model.fromNamed(row.values, x)
      model.names.forEach((name, i) => {
        const v = row.values[name]
        raw[i] = typeof v === 'number' ? v : Number.NaN
      })
      return
    case 'profile': {
      model.fromProfile(row.values, x)
      const { features } = model.artifact
      // fromProfile accepted it, so the schema is tabular; encoded again without imputation for the reasons' values.
      if (features.kind === 'tabular') encodeProfile(features.encoding, row.values, raw)
    }
  }
}

/** The top `limit` reasons of row r, with the value it was scored with (null where imputed). */
export function reasonsOf (model: ChurnModel, scored: ScoredRows, r: number, limit = 3): ReasonBody[] {
  const columns = model.names.length
  return model.reasons(scored.x.subarray(r * columns, (r + 1) * columns), limit).map(reason => {
    const value = scored.raw[r * columns + model.names.indexOf(reason.feature)] as number
    return { feature: reason.feature, value: Number.isNaN(value) ? null : value, contribution: round(reason.contribution, 4) }
  })
}

export interface Assessment {
  churn_probability: number
  risk_level: RiskTier
  recommended_action: string
}

/** The reference design's three answers for a probability: rounded to 3 places, tier by thresholds, its action. */
export function assess (probability: number, policy: Pick<TierPolicy, 'high' | 'medium'>): Assessment {
  const tier = tierOf(probability, policy)
  return { churn_probability: round(probability, 3), risk_level: tier, recommended_action: RECOMMENDED_ACTIONS[tier] }
}

/** Counts answered probabilities by tier (`churn_api_predictions_total`). */
export function countPredictions (app: FastifyInstance, probabilities: ArrayLike<number>, policy: Pick<TierPolicy, 'high' | 'medium'>): void {
  const counts: Record<RiskTier, number> = { low: 0, medium: 0, high: 0 }
  for (let i = 0; i < probabilities.length; i++) counts[tierOf(probabilities[i] as number, policy)]++
  for (const tier of ['low', 'medium', 'high'] as const) if (counts[tier] > 0) recordPrediction(app, tier, counts[tier])
}

/** Response schema of a reason. */
export const reasonSchema = {
  type: 'object',
  required: ['feature', 'value', 'contribution'],
  properties: {
    feature: { type: 'string' },
    value: { type: ['number', 'null'] },
    contribution: { type: 'number', description: 'Share of the probability this feature added along the trees\' paths.' }
  }
} as const

/** Request schema of one row of named features: numbers or null (missing, imputed). */
export const namedFeaturesSchema = {
  type: 'object',
  description: 'Features by name (see GET /api/v1/model); a missing or null one is imputed with its training median.',
  additionalProperties: { type: ['number', 'null'] }
} as const

/** Request schema of one feature vector in model feature order. */
export const vectorSchema = {
  type: 'array',
  description: 'Feature values in model feature order (GET /api/v1/model lists it); null where missing.',
  items: { type: ['number', 'null'] }
} as const

/** Request schema of a raw customer profile (tabular models): column name to value. */
export const profileSchema = {
  type: 'object',
  description: 'A raw customer profile as in the training CSV, e.g. {"tenure": 1, "Contract": "Month-to-month"}.',
  additionalProperties: { anyOf: [{ type: 'string' }, { type: 'number' }, { type: 'boolean' }, { type: 'null' }] }
} as const
