/**
 * The model artifact: one JSON document holding everything needed to score and to judge a model,
 * so a file copied between machines is complete. The forest's typed arrays are stored as base64
 * of their little-endian bytes (exact and a third of the size of number lists).
 *
 * The feature schema (names, plus the lakehouse feature definitions or the tabular encoding)
 * is hashed; a reader recomputes the hash and refuses a file whose schema was edited, and a
 * scorer refuses a model whose hash differs from the schema it computes features with.
 */
import { createHash } from 'node:crypto'
import { TrainingError } from './errors.ts'
import type { Distribution } from './drift.ts'
import type { ForestModel } from './forest.ts'
import type { TabularEncoding } from './tabular.ts'
import type { Confusion } from './metrics.ts'

export const ARTIFACT_FORMAT = 'churn-model/1'

export type FeatureSchema =
  | { kind: 'lakehouse', names: string[], definition: string }
  | { kind: 'tabular', names: string[], encoding: TabularEncoding }

export type LabelSource = 'crm-outcomes' | 'rule-bootstrap' | 'csv'

export interface EvaluationMetrics {
  rows: { train: number, test: number }
  positives: { train: number, test: number }
  /** Stratified k-fold ROC AUC over the training part (null when folds were turned off). */
  cv: { folds: number, aucs: number[], mean: number, std: number } | null
  test: { rocAuc: number, prAuc: number, brier: number, high: Confusion, medium: Confusion }
}

export interface TrainingInfo {
  labels: LabelSource
  /** Where the rows came from: a CSV file (and its sha256) or the lakehouse. */
  source: { kind: 'csv', file: string, sha256: string } | { kind: 'lakehouse', path: string }
  /** Label dates of the training rows (lakehouse) or null (a CSV has none). */
  window: { from: string, to: string } | null
  rows: number
  positives: number
  seed: number
  testFraction: number
  /** How the hold-out was chosen: rows whose key hash is at most their class's boundary. */
  split: { salt: string, boundaries: [number, number] }
  durationMs: number
}

export interface ModelArtifact {
  format: typeof ARTIFACT_FORMAT
  name: string
  version: number
  createdAt: string
  engine: 'forest' | 'ml-random-forest'
  params: Record<string, string | number | boolean>
  features: FeatureSchema & { hash: string }
  /** Per feature, the value a missing one is replaced with (training medians). */
  imputation: number[]
  forest: ForestModel
  metrics: EvaluationMetrics
  training: TrainingInfo
  distributions: { features: Distribution[], score: Distribution }
}

/** A stable hash of a feature schema: names, order, and the definition or encoding. */
export function featureHash (schema: FeatureSchema): string {
  const canonical = schema.kind === 'lakehouse'
    ? JSON.stringify(['lakehouse', schema.names, schema.definition])
    : JSON.stringify(['tabular', schema.names, schema.encoding.columns.map(c => c.kind === 'numeric' ? [c.name] : [c.name, c.levels])])
  return `sha256:${createHash('sha256').update(canonical).digest('hex')}`
}

const FOREST_ARRAYS = { roots: Int32Array, feature: Int32Array, threshold: Float64Array, left: Int32Array, right: Int32Array, value: Float64Array, importances: Float64Array } as const
type ArrayName = keyof typeof FOREST_ARRAYS

function toBase64 (array: Int32Array | Float64Array): string {
  return Buffer.from(array.buffer, array.byteOffset, array.byteLength).toString('base64')
}

function fromBase64<T extends Int32Array | Float64Array> (text: unknown, Type: { new (buffer: ArrayBuffer): T, BYTES_PER_ELEMENT: number }, field: string): T {
  if (typeof text !== 'string') throw new TrainingError('CHURN_MODEL_BAD_ARTIFACT', `forest.${field} is missing`)
  const bytes = Buffer.from(text, 'base64')
  if (bytes.byteLength % Type.BYTES_PER_ELEMENT !== 0) throw new TrainingError('CHURN_MODEL_BAD_ARTIFACT', `forest.${field} has ${bytes.byteLength} bytes, not a whole number of values`)
  // Copy into a fresh, aligned buffer.
  const buffer = new ArrayBuffer(bytes.byteLength)
  new Uint8Array(buffer).set(bytes)
  return new Type(buffer)
}

export function serializeArtifact (artifact: ModelArtifact): string {
  const forest: Record<string, unknown> = { nFeatures: artifact.forest.nFeatures }
  for (const name of Object.keys(FOREST_ARRAYS) as ArrayName[]) forest[name] = toBase64(artifact.forest[name])
  return `${JSON.stringify({ ...artifact, forest }, null, 1)}\n`
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)

/** Parses and checks an artifact: format, forest shape, and that its feature hash is its schema's. */
export function parseArtifact (text: string, source = 'model artifact'): ModelArtifact {
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch (error) {
    throw new TrainingError('CHURN_MODEL_BAD_ARTIFACT', `${source} is not JSON: ${(error as Error).message}`)
  }
  if (!isRecord(raw) || raw.format !== ARTIFACT_FORMAT) throw new TrainingError('CHURN_MODEL_BAD_ARTIFACT', `${source} is not a ${ARTIFACT_FORMAT} artifact (format ${JSON.stringify(isRecord(raw) ? raw.format : undefined)})`)
  const f = raw.forest
  const features = raw.features
  if (!isRecord(f) || !isRecord(features) || !Array.isArray(features.names) || !Array.isArray(raw.imputation)) throw new TrainingError('CHURN_MODEL_BAD_ARTIFACT', `${source} lacks its forest, features or imputation`)
  const forest: ForestModel = {
    nFeatures: Number(f.nFeatures),
    roots: fromBase64(f.roots, Int32Array, 'roots'),
    feature: fromBase64(f.feature, Int32Array, 'feature'),
    threshold: fromBase64(f.threshold, Float64Array, 'threshold'),
    left: fromBase64(f.left, Int32Array, 'left'),
    right: fromBase64(f.right, Int32Array, 'right'),
    value: fromBase64(f.value, Float64Array, 'value'),
    importances: fromBase64(f.importances, Float64Array, 'importances')
  }
  const artifact = { ...raw, forest } as unknown as ModelArtifact
  checkForest(artifact, source)
  const { hash, ...schema } = artifact.features
  if (featureHash(schema) !== hash) throw new TrainingError('CHURN_MODEL_BAD_ARTIFACT', `${source}: the feature hash does not match its feature schema (edited or corrupt)`)
  return artifact
}

/** Every node index in range and every split on a known feature, so scoring can never read outside the arrays. */
function checkForest (artifact: ModelArtifact, source: string): void {
  const { forest, features, imputation } = artifact
  const n = forest.value.length
  const fail = (why: string): never => { throw new TrainingError('CHURN_MODEL_BAD_ARTIFACT', `${source}: ${why}`) }
  if (forest.nFeatures !== features.names.length || imputation.length !== forest.nFeatures || forest.importances.length !== forest.nFeatures) fail(`${features.names.length} feature names, ${imputation.length} imputation values and a forest over ${forest.nFeatures} features disagree`)
  if (forest.roots.length === 0) fail('the forest has no trees')
  for (const array of [forest.feature, forest.threshold, forest.left, forest.right]) if (array.length !== n) fail('node arrays of different lengths')
  for (let t = 0; t < forest.roots.length; t++) if (!((forest.roots[t] as number) >= 0 && (forest.roots[t] as number) < n)) fail(`root ${t} is out of range`)
  for (let i = 0; i < n; i++) {
    const feature = forest.feature[i] as number
    if (feature < 0) continue
    const l = forest.left[i] as number
    const r = forest.right[i] as number
    // Children come after their parent, so a walk always ends.
    if (feature >= forest.nFeatures || !(l > i && l < n) || !(r > i && r < n)) fail(`node ${i} splits on feature ${feature} into ${l} and ${r}, out of range`)
  }
}
