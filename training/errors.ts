import { ChurnError } from '../core/errors.ts'
import type { ChurnErrorOptions } from '../core/errors.ts'

export const TRAINING_ERROR_CODES = [
  'CHURN_TRAIN_BAD_OPTIONS',
  'CHURN_TRAIN_EMPTY',
  'CHURN_TRAIN_BAD_INPUT',
  'CHURN_TRAIN_ONE_CLASS',
  'CHURN_TRAIN_MLFLOW',
  'CHURN_TRAIN_NO_TARGET',
  'CHURN_TRAIN_BAD_COLUMN',
  'CHURN_TRAIN_ENGINE',
  'CHURN_MODEL_BAD_INPUT',
  'CHURN_MODEL_FEATURE_MISMATCH',
  'CHURN_MODEL_BAD_ARTIFACT',
  'CHURN_MODEL_NOT_FOUND',
  'CHURN_MODEL_REJECTED'
] as const
export type TrainingErrorCode = typeof TRAINING_ERROR_CODES[number]

export class TrainingError extends ChurnError<TrainingErrorCode> {
  constructor (code: TrainingErrorCode, message: string, options: ChurnErrorOptions = {}) {
    super(code, message, options)
    this.name = 'TrainingError'
  }
}
