/**
 * A loaded model, ready to score: the artifact's forest compiled, with its imputation and (for a
 * tabular model) its encoding applied the way training applied them. The scorer, the HTTP API and
 * the promotion gate all score through this one class, whichever engine trained the forest.
 */
import type { ModelArtifact } from './artifact.ts'
import { CompiledForest } from './compiled.ts'
import type { Reason } from './compiled.ts'
import { TrainingError } from './errors.ts'
import { impute } from './imputation.ts'
import { encodeProfile } from './tabular.ts'

export class ChurnModel {
  readonly artifact: ModelArtifact
  readonly forest: CompiledForest
  readonly names: readonly string[]
  readonly #imputation: Float64Array
  readonly #index: Map<string, number>
  readonly #row: Float64Array

  constructor (artifact: ModelArtifact) {
    this.artifact = artifact
    this.forest = new CompiledForest(artifact.forest)
    this.names = artifact.features.names
    this.#imputation = Float64Array.from(artifact.imputation)
    this.#index = new Map(this.names.map((n, i) => [n, i]))
    this.#row = new Float64Array(this.names.length)
  }

  get name (): string { return this.artifact.name }
  get version (): number { return this.artifact.version }
  get featureHash (): string { return this.artifact.features.hash }

  /** Refuses to serve features computed under another schema. */
  assertFeatureHash (expected: string): void {
    if (expected !== this.featureHash) {
      throw new TrainingError('CHURN_MODEL_FEATURE_MISMATCH', `model ${this.name} v${this.version} was trained on features ${this.featureHash}, but this process computes ${expected}; retrain or deploy matching code`)
    }
  }

  /**
   * A vector in model feature order, NaN (or null) where missing, imputed into a copy. Refuses a
   * wrong length or a non-number.
   */
  vector (values: ArrayLike<number | null>, out: Float64Array = new Float64Array(this.names.length)): Float64Array {
    if (values.length !== this.names.length) throw new TrainingError('CHURN_MODEL_BAD_INPUT', `a feature vector for model ${this.name} has ${this.names.length} values (${this.names.join(', ')}); got ${values.length}`)
    for (let i = 0; i < values.length; i++) {
      const v = values[i]
      if (v === null) out[i] = Number.NaN
      else if (typeof v === 'number' && (Number.isFinite(v) || Number.isNaN(v))) out[i] = v
      else throw new TrainingError('CHURN_MODEL_BAD_INPUT', `feature ${this.names[i]} must be a finite number or null; got ${JSON.stringify(v)}`)
    }
    impute(out, this.#imputation)
    return out
  }

  /** Named features (missing or null ones imputed); unknown names are refused. */
  fromNamed (features: Record<string, unknown>, out: Float64Array = new Float64Array(this.names.length)): Float64Array {
    out.fill(Number.NaN)
    for (const [key, v] of Object.entries(features)) {
      const i = this.#index.get(key)
      if (i === undefined) throw new TrainingError('CHURN_MODEL_BAD_INPUT', `model ${this.name} has no feature ${JSON.stringify(key)}`)
      if (v === null || v === undefined) continue
      if (typeof v !== 'number' || !Number.isFinite(v)) throw new TrainingError('CHURN_MODEL_BAD_INPUT', `feature ${key} must be a finite number or null; got ${JSON.stringify(v)}`)
      out[i] = v
    }
    impute(out, this.#imputation)
    return out
  }

  /** A raw customer profile of a tabular model, encoded and imputed as in training. */
  fromProfile (profile: Record<string, unknown>, out: Float64Array = new Float64Array(this.names.length)): Float64Array {
    const { features } = this.artifact
    if (features.kind !== 'tabular') throw new TrainingError('CHURN_MODEL_BAD_INPUT', `model ${this.name} scores lakehouse features, not raw profiles`)
    encodeProfile(features.encoding, profile, out)
    impute(out, this.#imputation)
    return out
  }

  /** Probability of churn for an imputed vector. */
  predict (x: ArrayLike<number>): number {
    return this.forest.predictOne(x)
  }

  /** Probabilities for imputed row-major rows. */
  predictBatch (x: Float64Array, rows: number, out?: Float64Array<ArrayBuffer>): Float64Array {
    return this.forest.predictBatch(x, rows, out)
  }

  reasons (x: ArrayLike<number>, limit = 3): Reason[] {
    return this.forest.reasons(x, this.names, limit)
  }

  /** Scores named features without allocating a vector (reuses one buffer; not re-entrant across awaits). */
  scoreNamed (features: Record<string, unknown>): number {
    return this.predict(this.fromNamed(features, this.#row))
  }
}
