import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { seededRandom } from '../../../core/random.ts'
import { binFeatures, binOf, featureThresholds } from '../../../training/binning.ts'
import { CompiledForest } from '../../../training/compiled.ts'
import { trainForest } from '../../../training/forest.ts'
import type { TrainingMatrix } from '../../../training/forest.ts'
import { averagePrecision, brierScore, confusionAt, rocAuc } from '../../../training/metrics.ts'

/** Churn-like synthetic rows: two strong signals, an interaction, and noise features. */
function synthetic (rows: number, seed: number, columns = 12): TrainingMatrix {
  const random = seededRandom(seed)
  const x = new Float64Array(rows * columns)
  const y = new Uint8Array(rows)
  for (let i = 0; i < rows; i++) {
    for (let f = 0; f < columns; f++) x[i * columns + f] = f === 4 ? random.int(0, 3) : random.normal(0, 1)
    const z = 1.2 * x[i * columns]! - 0.8 * x[i * columns + 1]! + 0.6 * x[i * columns + 2]! * x[i * columns + 3]! + random.normal(0, 1)
    y[i] = z > 0.8 ? 1 : 0
  }
  return { x, y, rows, columns }
}

function rowsOf (m: TrainingMatrix, from: number, to: number): TrainingMatrix {
  return { x: m.x.slice(from * m.columns, to * m.columns), y: m.y.slice(from, to), rows: to - from, columns: m.columns }
}

describe('binning', () => {
  it('gives one bin per distinct value when few, with midpoint thresholds', () => {
    assert.deepEqual(Array.from(featureThresholds(Float64Array.from([3, 1, 2, 2, 1]))), [1.5, 2.5])
    assert.equal(featureThresholds(Float64Array.from([7, 7, 7])).length, 0)
  })

  it('codes a value at or below threshold b into bin b or lower, for training values and new ones', () => {
    const random = seededRandom(11)
    const values = Float64Array.from({ length: 5000 }, () => Math.round(random.normal(0, 50)) / 4)
    const thresholds = featureThresholds(values, 32)
    assert.ok(thresholds.length <= 31 && thresholds.length > 10)
    for (let i = 1; i < thresholds.length; i++) assert.ok((thresholds[i] as number) > (thresholds[i - 1] as number))
    const probes = [...values, ...Array.from({ length: 500 }, () => random.normal(0, 80))]
    for (const v of probes) {
      const code = binOf(thresholds, v)
      for (let b = 0; b < thresholds.length; b++) assert.equal(code <= b, v <= (thresholds[b] as number))
    }
    const { codes } = binFeatures(values, values.length, 1, 32)
    assert.ok(codes[0]!.every((code, i) => code === binOf(thresholds, values[i] as number)))
  })
})

describe('forest', () => {
  const data = synthetic(8000, 1)
  const train = rowsOf(data, 0, 6000)
  const test = rowsOf(data, 6000, 8000)

  it('learns a noisy rule well on held-out rows, with soft probabilities', () => {
    const forest = new CompiledForest(trainForest(train, { nEstimators: 60, seed: 5 }))
    const p = forest.predictBatch(test.x, test.rows)
    const auc = rocAuc(test.y, p)
    assert.ok(auc > 0.84 && auc < 0.99, `test AUC ${auc}`)
    assert.ok(p.every(v => v >= 0 && v <= 1))
    assert.ok(new Set(p).size > 200, 'probabilities are averages of leaf fractions, not a few vote counts')
    for (let r = 0; r < 20; r++) assert.equal(forest.predictOne(test.x, r * test.columns), p[r])
  })

  it('is reproducible from the seed, and another seed grows another forest', () => {
    const a = trainForest(train, { nEstimators: 10, seed: 9 })
    const b = trainForest(train, { nEstimators: 10, seed: 9 })
    const c = trainForest(train, { nEstimators: 10, seed: 10 })
    assert.deepEqual(a, b)
    assert.notDeepEqual(a.threshold, c.threshold)
  })

  it('respects depth and leaf size, and ranks the informative features first', () => {
    const model = trainForest(train, { nEstimators: 40, maxDepth: 3, minSamplesLeaf: 50, seed: 2 })
    // Depth 3: at most 15 nodes per tree.
    assert.ok(model.value.length <= 40 * 15)
    const ranked = Array.from(model.importances).map((v, f) => ({ v, f })).sort((p, q) => q.v - p.v)
    assert.deepEqual(ranked.slice(0, 2).map(r => r.f).sort(), [0, 1])
    assert.ok(Math.abs(model.importances.reduce((s, v) => s + v, 0) - 1) < 1e-9)
  })

  it('explains a score: credits plus the bias equal the probability, and the top reasons are real drivers', () => {
    const forest = new CompiledForest(trainForest(train, { nEstimators: 40, seed: 3 }))
    const credits = new Float64Array(train.columns)
    for (let r = 0; r < 50; r++) {
      const p = forest.contributions(test.x, credits, r * test.columns)
      assert.ok(Math.abs(forest.bias + credits.reduce((s, v) => s + v, 0) - p) < 1e-9)
      assert.equal(p, forest.predictOne(test.x, r * test.columns))
    }
    // A row far on the churn side of feature 0 names it first.
    const row = new Float64Array(train.columns)
    row[0] = 3
    row[1] = -2
    const reasons = forest.reasons(row, Array.from({ length: train.columns }, (_, f) => `f${f}`), 2)
    assert.deepEqual(reasons.map(r => r.feature).sort(), ['f0', 'f1'])
    assert.ok(reasons.every(r => r.contribution > 0))
  })

  it('refuses one class, missing values and bad options with coded errors', () => {
    const oneClass = { ...train, y: new Uint8Array(train.rows) }
    assert.throws(() => trainForest(oneClass), { code: 'CHURN_TRAIN_ONE_CLASS' })
    const withNaN = { ...train, x: train.x.slice() }
    withNaN.x[17] = Number.NaN
    assert.throws(() => trainForest(withNaN), { code: 'CHURN_TRAIN_BAD_INPUT', message: /row 1 .*impute/ })
    assert.throws(() => trainForest({ x: new Float64Array(0), y: new Uint8Array(0), rows: 0, columns: 3 }), { code: 'CHURN_TRAIN_EMPTY' })
    assert.throws(() => trainForest(train, { maxDepth: 0 }), { code: 'CHURN_TRAIN_BAD_OPTIONS' })
    assert.throws(() => trainForest(train, { maxFeatures: -1 }), { code: 'CHURN_TRAIN_BAD_OPTIONS' })
  })
})

describe('metrics', () => {
  it('computes ROC AUC with ties counted half, average precision, Brier and confusion', () => {
    const labels = [0, 0, 1, 1]
    assert.equal(rocAuc(labels, [0.1, 0.4, 0.35, 0.8]), 0.75)
    assert.equal(rocAuc(labels, [0.5, 0.5, 0.5, 0.5]), 0.5)
    // A NaN score equals no other; it used to stall the tie walk forever.
    assert.throws(() => rocAuc(labels, [0.1, Number.NaN, 0.35, 0.8]), /score 1 is NaN/)
    assert.throws(() => averagePrecision(labels, [0.1, Number.NaN, 0.35, 0.8]), /score 1 is NaN/)
    // scikit-learn: average_precision_score([0,0,1,1], [0.1,0.4,0.35,0.8]) = 0.8333...
    assert.ok(Math.abs(averagePrecision(labels, [0.1, 0.4, 0.35, 0.8]) - 5 / 6) < 1e-12)
    assert.ok(Math.abs(brierScore(labels, [0.1, 0.4, 0.35, 0.8]) - (0.01 + 0.16 + 0.4225 + 0.04) / 4) < 1e-12)
    assert.deepEqual(confusionAt(labels, [0.1, 0.4, 0.35, 0.8], 0.35), { threshold: 0.35, truePositives: 2, falsePositives: 1, trueNegatives: 1, falseNegatives: 0, precision: 2 / 3, recall: 1 })
  })
})
