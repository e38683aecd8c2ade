import assert from 'node:assert/strict'
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'
import { pino } from 'pino'
import { parseArtifact, serializeArtifact } from '../../../training/artifact.ts'
import type { ModelArtifact } from '../../../training/artifact.ts'
import { distributionOver, featureDistribution, populationStabilityIndex, scoreDistribution } from '../../../training/drift.ts'
import { fitWith } from '../../../training/engines.ts'
import { ChurnModel } from '../../../training/model.ts'
import { gate, runTraining } from '../../../training/pipeline.ts'
import type { RunSettings } from '../../../training/pipeline.ts'
import { ModelRegistry } from '../../../training/registry.ts'
import { csvTrainingSet } from '../../../training/sets.ts'
import { hashSplit, stratifiedFolds } from '../../../training/split.ts'
import { trainModel } from '../../../training/train.ts'
import type { TrainSettings, TrainedModel, TrainingSet } from '../../../training/train.ts'
import { seededRandom } from '../../helpers/random.ts'
import { REFERENCE_PROFILE, TELCO } from '../../helpers/telco.ts'

const logger = pino({ level: 'silent' })
const settings = (overrides: Partial<TrainSettings> = {}): TrainSettings => ({
  engine: 'forest', fit: fitWith('forest'), forest: { nEstimators: 60, seed: 42 }, folds: 5, tiers: { high: 0.65, medium: 0.35 }, ...overrides
})
const code = (expected: string) => (error: unknown): boolean => {
  assert.equal((error as { code?: string }).code, expected, (error as Error).message)
  return true
}

describe('hold-out and folds', () => {
  const random = seededRandom(3)
  const y = Uint8Array.from({ length: 2000 }, () => random.chance(0.27) ? 1 : 0)
  const keys = Array.from({ length: 2000 }, (_, i) => `customer-${i}`)

  it('holds out a quarter of each class, chosen by key, not by position or seed', () => {
    const split = hashSplit(keys, y, 0.25)
    const positives = y.reduce((a, b) => a + b, 0)
    const heldPositives = Array.from(split.test).filter(i => y[i] === 1).length
    assert.equal(heldPositives, Math.round(positives * 0.25))
    assert.equal(split.test.length + split.train.length, 2000)
    // Reordering the rows holds out the same customers.
    const order = Array.from({ length: 2000 }, (_, i) => 1999 - i)
    const reversed = hashSplit(order.map(i => keys[i] as string), Uint8Array.from(order, i => y[i] as number), 0.25)
    assert.deepEqual(new Set(Array.from(reversed.test, i => keys[order[i] as number])), new Set(Array.from(split.test, i => keys[i])))
  })

  it('keeps held-out rows held out as the data grows: only rows above the old boundary can change side', () => {
    const first = hashSplit(keys.slice(0, 1500), y.slice(0, 1500), 0.25)
    const grown = hashSplit(keys, y, 0.25)
    const grownTest = new Set(grown.test)
    for (let i = 0; i < 2000; i++) {
      if (grownTest.has(i) && i < 1500 && grown.hashes[i]! <= first.boundaries[y[i] as 0 | 1]) assert.ok(Array.from(first.test).includes(i), `row ${i} was held out before`)
    }
  })

  it('deals stratified folds of nearly equal size, the same for the same seed', () => {
    const folds = stratifiedFolds(y, 5, 9)
    assert.deepEqual(folds.map(f => Array.from(f)), stratifiedFolds(y, 5, 9).map(f => Array.from(f)))
    const sizes = folds.map(f => f.length)
    assert.ok(Math.max(...sizes) - Math.min(...sizes) <= 1)
    const rate = (f: Uint32Array): number => Array.from(f).filter(i => y[i] === 1).length / f.length
    for (const f of folds) assert.ok(Math.abs(rate(f) - y.reduce((a, b) => a + b, 0) / 2000) < 0.01)
  })
})

describe('drift distributions', () => {
  it('scores zero for the training distribution itself and more for a shifted one', () => {
    const random = seededRandom(5)
    const training = Float64Array.from({ length: 5000 }, () => random.normal(0, 1))
    const expected = featureDistribution(training)
    assert.equal(expected.shares.length, expected.edges.length + 1)
    assert.ok(Math.abs(expected.shares.reduce((a, b) => a + b, 0) - 1) < 1e-9)
    assert.ok(populationStabilityIndex(expected, expected) < 1e-12)
    const same = distributionOver(expected.edges, Float64Array.from({ length: 5000 }, () => random.normal(0, 1)))
    const shifted = distributionOver(expected.edges, Float64Array.from({ length: 5000 }, () => random.normal(0.8, 1)))
    assert.ok(populationStabilityIndex(expected, same) < 0.02)
    assert.ok(populationStabilityIndex(expected, shifted) > 0.25, 'a shift of 0.8 sd is a major shift')
    const withMissing = distributionOver(expected.edges, Float64Array.from({ length: 1000 }, (_, i) => i % 2 === 0 ? Number.NaN : random.normal(0, 1)))
    assert.equal(withMissing.missing, 0.5)
    assert.ok(populationStabilityIndex(expected, withMissing) > 1, 'half the values going missing is drift')
    assert.deepEqual(scoreDistribution([0.05, 0.95, 0.5]).shares.filter(s => s > 0).length, 3)
  })
})

describe('training the Telco model', () => {
  let set: TrainingSet
  let trained: TrainedModel
  before(async () => {
    set = await csvTrainingSet(TELCO, { target: 'Churn', positive: 'Yes' })
    trained = await trainModel(set, settings())
  })

  it('evaluates on a stratified quarter with 5-fold CV, as scikit-learn would score it', () => {
    const m = trained.artifact.metrics
    assert.equal(m.rows.test, Math.round(1869 * 0.25) + Math.round(5174 * 0.25))
    assert.equal(m.positives.test, Math.round(1869 * 0.25))
    assert.ok(m.cv !== null && m.cv.aucs.length === 5)
    assert.ok(m.cv.mean > 0.82 && m.cv.std < 0.05, `cv ${m.cv.mean} ± ${m.cv.std}`)
    assert.ok(m.test.rocAuc > 0.82 && m.test.rocAuc < 0.9, `test AUC ${m.test.rocAuc}`)
    assert.ok(m.test.prAuc > 0.55 && m.test.brier < 0.2)
    assert.equal(m.test.high.threshold, 0.65)
    assert.equal(m.test.high.truePositives + m.test.high.falseNegatives, m.positives.test)
    assert.ok(m.test.medium.recall >= m.test.high.recall, 'the lower threshold catches more churners')
    assert.equal(trained.artifact.training.labels, 'csv')
    assert.equal(trained.artifact.distributions.features.length, 45)
  })

  it('is reproducible from the seed', async () => {
    const again = await trainModel(set, settings({ folds: 0 }))
    assert.deepEqual(Array.from(again.artifact.forest.threshold), Array.from(trained.artifact.forest.threshold))
    assert.equal(again.artifact.metrics.test.rocAuc, trained.artifact.metrics.test.rocAuc)
    assert.equal(again.artifact.metrics.cv, null)
  })

  it('scores the reference profile, raw, through the artifact, and says why', () => {
    const model = new ChurnModel({ ...trained.artifact, name: 'telco', version: 1, createdAt: '' })
    const x = model.fromProfile(REFERENCE_PROFILE)
    const probability = model.predict(x)
    assert.ok(probability > 0.65, `a new month-to-month fibre customer paying by electronic check is high risk; got ${probability}`)
    const loyal = model.predict(model.fromProfile({ ...REFERENCE_PROFILE, tenure: 70, Contract: 'Two year', PaymentMethod: 'Bank transfer (automatic)', TotalCharges: 6000 }))
    assert.ok(loyal < 0.35, `a two-year customer of 70 months is low risk; got ${loyal}`)
    const reasons = model.reasons(x)
    assert.ok(reasons.length > 0 && reasons.every(r => r.contribution > 0))
    assert.ok(reasons.some(r => /^(tenure|Contract=|InternetService=|PaymentMethod=|TotalCharges)/.test(r.feature)), JSON.stringify(reasons))
    // A missing TotalCharges is imputed with the training median, not refused.
    assert.ok(Number.isFinite(model.predict(model.fromProfile({ ...REFERENCE_PROFILE, TotalCharges: null }))))
  })

  it('round-trips through its file, and a reader refuses a tampered schema or forest', () => {
    const artifact: ModelArtifact = { ...trained.artifact, name: 'telco', version: 3, createdAt: new Date(0).toISOString() }
    const text = serializeArtifact(artifact)
    const back = parseArtifact(text)
    assert.deepEqual(back.forest.value, artifact.forest.value)
    assert.deepEqual(back.features, artifact.features)
    assert.equal(new ChurnModel(back).predict(new ChurnModel(back).fromProfile(REFERENCE_PROFILE)), new ChurnModel(artifact).predict(new ChurnModel(artifact).fromProfile(REFERENCE_PROFILE)))
    const tampered = JSON.parse(text) as { features: { names: string[] }, forest: { left: string } }
    tampered.features.names[0] = 'something_else'
    assert.throws(() => parseArtifact(JSON.stringify(tampered)), (e: Error) => code('CHURN_MODEL_BAD_ARTIFACT')(e) && /feature hash does not match/.test(e.message))
    const broken = JSON.parse(text) as { forest: { left: string } }
    broken.forest.left = Buffer.from(Int32Array.from(artifact.forest.left, v => v >= 0 ? 10 ** 8 : v).buffer).toString('base64')
    assert.throws(() => parseArtifact(JSON.stringify(broken)), (e: Error) => code('CHURN_MODEL_BAD_ARTIFACT')(e) && /out of range/.test(e.message))
    assert.throws(() => parseArtifact('{"format":"pickle"}'), code('CHURN_MODEL_BAD_ARTIFACT'))
  })

  it('refuses features of another schema', () => {
    const model = new ChurnModel({ ...trained.artifact, name: 'telco', version: 1, createdAt: '' })
    assert.throws(() => model.assertFeatureHash('sha256:0000'), code('CHURN_MODEL_FEATURE_MISMATCH'))
    assert.throws(() => model.vector([1, 2, 3]), code('CHURN_MODEL_BAD_INPUT'))
    assert.throws(() => model.fromNamed({ shoe_size: 44 }), code('CHURN_MODEL_BAD_INPUT'))
  })
})

describe('models folder and promotion gate', () => {
  let dir: string
  let set: TrainingSet
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'churn-models-'))
    set = await csvTrainingSet(TELCO, { target: 'Churn', positive: 'Yes' })
  })
  after(async () => { await rm(dir, { recursive: true, force: true }) })
  const run = (registry: ModelRegistry, overrides: Partial<RunSettings> = {}, train: Partial<TrainSettings> = {}): ReturnType<typeof runTraining> =>
    runTraining(set, { name: 'telco', registry, train: settings({ folds: 0, ...train }), gate: { tolerance: 0.005, minAuc: 0.6 }, logger, ...overrides })

  it('promotes a first model above the floor, keeps a much worse one, promotes a comparable one, and rolls back', async () => {
    const registry = new ModelRegistry(path.join(dir, 'gate'))
    const first = await run(registry)
    assert.equal(first.promoted, true)
    assert.equal((await registry.pointer('telco'))?.version, 1)

    const stump = await run(registry, {}, { forest: { nEstimators: 3, maxDepth: 1, seed: 1 } })
    assert.equal(stump.promoted, false, stump.decision.reason)
    assert.match(stump.decision.reason, /^worse: AUC 0\.\d+ vs current v1 0\.\d+ on the 1761 hold-out rows neither learned from/)
    assert.equal((await registry.pointer('telco'))?.version, 1, 'the worse model is stored but not current')

    const peer = await run(registry, {}, { forest: { nEstimators: 60, seed: 7 } })
    assert.equal(peer.promoted, true, peer.decision.reason)
    assert.equal((await registry.pointer('telco'))?.version, 3)

    const back = await registry.rollback('telco')
    assert.equal(back.version, 1)
    assert.deepEqual((await registry.list('telco')).map(m => [m.version, m.current]), [[1, true], [2, false], [3, false]])
    await assert.rejects(registry.rollback('telco'), code('CHURN_MODEL_NOT_FOUND'))
    await registry.promote('telco', 2, 'by hand')
    assert.equal((await registry.current('telco'))?.version, 2)
    await assert.rejects(registry.promote('telco', 9, 'missing'), code('CHURN_MODEL_NOT_FOUND'))

    const runs = (await readFile(path.join(registry.dir, 'telco', 'runs.jsonl'), 'utf8')).trim().split('\n').map(l => JSON.parse(l) as { version: number, promoted: boolean })
    assert.deepEqual(runs.map(r => [r.version, r.promoted]), [[1, true], [2, false], [3, true]])
  })

  it('keeps the first model out when it is below the floor, and never compares across feature schemas', async () => {
    const registry = new ModelRegistry(path.join(dir, 'floor'))
    const weak = await run(registry, { gate: { tolerance: 0.005, minAuc: 0.99 } })
    assert.equal(weak.promoted, false)
    assert.equal(await registry.pointer('telco'), undefined)

    const trained = await trainModel(set, settings({ folds: 0 }))
    const current = { ...trained.artifact, name: 'telco', version: 1, createdAt: '', features: { ...trained.artifact.features, hash: 'sha256:other' } } as ModelArtifact
    const decision = gate(trained, current, { tolerance: 1, minAuc: 0 })
    assert.equal(decision.promote, false)
    assert.match(decision.reason, /feature schema differs/)
  })

  it('gives racing trainers distinct versions and leaves no temporary files', async () => {
    const registry = new ModelRegistry(path.join(dir, 'race'))
    const trained = await trainModel(set, settings({ folds: 0, forest: { nEstimators: 5 } }))
    const saved = await Promise.all(Array.from({ length: 6 }, async () => await registry.save({ ...trained.artifact, name: 'telco' })))
    assert.deepEqual(saved.map(a => a.version).sort((a, b) => a - b), [1, 2, 3, 4, 5, 6])
    assert.deepEqual((await readdir(path.join(registry.dir, 'telco'))).sort(), ['v1.json', 'v2.json', 'v3.json', 'v4.json', 'v5.json', 'v6.json'])
  })

  it('writes nothing into the models folder when the data is bad', async () => {
    const registry = new ModelRegistry(path.join(dir, 'bad'))
    const csv = path.join(dir, 'one-class.csv')
    await writeFile(csv, 'id,tenure,Churn\na,1,No\nb,2,No\nc,3,No\n')
    await assert.rejects(async () => await csvTrainingSet(csv, { target: 'Churn', positive: 'Yes' }), code('CHURN_TRAIN_ONE_CLASS'))
    const tiny = { ...set, rows: 3, x: set.x.slice(0, 3 * 45), y: Uint8Array.from([1, 0, 0]), keys: ['a', 'b', 'c'] }
    await assert.rejects(runTraining(tiny, { name: 'tiny', registry, train: settings(), gate: { tolerance: 0, minAuc: 0 }, logger }), code('CHURN_TRAIN_ONE_CLASS'))
    await assert.rejects(readdir(registry.dir), { code: 'ENOENT' }, 'a failed run creates nothing')
  })
})
