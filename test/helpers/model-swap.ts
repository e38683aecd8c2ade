/**
 * The model-swap half of test/integration/scoring/http/hostile.test.ts: requests through every
 * scoring route and, computed offline with the server's own code, the whole answer each of two
 * model versions gives to each, so an answer can be traced to exactly one version (or shown to
 * mix them, row by row).
 */
import assert from 'node:assert/strict'
import { isDeepStrictEqual } from 'node:util'
import type { Config } from '../../config/index.ts'
import { DAY_MS, DAYS_SINCE_LAST_ACTIVITY } from '../../lakehouse/features.ts'
import { round } from '../../scoring/http/routes/deps.ts'
import { assess, reasonsOf, scoreRows } from '../../scoring/http/routes/rows.ts'
import type { Row } from '../../scoring/http/routes/rows.ts'
import type { OnlineEntry } from '../../scoring/store.ts'
import type { ChurnModel } from '../../training/model.ts'
import type { TrainingSet } from '../../training/train.ts'
import { withoutClock } from './hostile-barrage.ts'

export interface SwapRequest {
  kind: string
  path: string
  body?: string
  /** The whole answer each version gives, computed offline. */
  expected: ReadonlyMap<number, unknown>
}

/**
 * Requests through every scoring route and the answer each version gives to each: rows the two
 * versions score differently (to 3 places, so even the rounded answers tell them apart), a
 * stored subscriber scored by the first version.
 */
export function swapFixture (set: TrainingSet, models: ReadonlyMap<number, ChurnModel>, config: Config, batchRows: number): { requests: SwapRequest[], stored: OnlineEntry, judge: (request: SwapRequest, answer: unknown) => number | string } {
  const [[oldVersion, oldModel], [newVersion, newModel]] = [...models] as [[number, ChurnModel], [number, ChurnModel]]
  const names = oldModel.names
  assert.deepEqual([...set.schema.names], [...names])
  const columns = names.length
  const differ = (values: readonly number[]): boolean => round(oldModel.predict(oldModel.vector(values)), 3) !== round(newModel.predict(newModel.vector(values)), 3)
  // Missing values filled with fixed numbers, so every route (V2 takes no nulls) gets the same rows.
  const rows: number[][] = []
  for (let r = 0; r < set.rows && rows.length < batchRows + 4; r++) {
    const values = Array.from(set.x.subarray(r * columns, (r + 1) * columns), (x, c) => Number.isNaN(x) ? oldModel.artifact.imputation[c] as number : x)
    if (differ(values)) rows.push(values)
  }
  assert.equal(rows.length, batchRows + 4, 'enough rows the two versions score differently')
  const batch = rows.slice(0, batchRows)
  const named = (values: readonly number[]): Record<string, number> => Object.fromEntries(names.map((n, c) => [n, values[c] as number]))
  const reply = (build: (model: ChurnModel, version: number) => unknown): Map<number, unknown> => new Map([...models].map(([v, m]) => [v, JSON.parse(JSON.stringify(build(m, v))) as unknown]))
  const predictions = (model: ChurnModel, rowsIn: Row[]): unknown[] => {
    const scored = scoreRows(model, rowsIn, r => `row ${r}`)
    return Array.from(scored.probabilities, (p, r) => ({ ...assess(p, config.risk), reasons: reasonsOf(model, scored, r) }))
  }
  const vectors = (values: readonly number[][]): Row[] => values.map(v => ({ kind: 'vector', values: v }))
  const probabilities = (model: ChurnModel, values: readonly number[][]): number[] => Array.from(scoreRows(model, vectors(values), r => `row ${r}`).probabilities)
  const name = config.serving.modelName

  // A subscriber whose features are as fresh as can be (their time is ahead of the clock, so
  // `days_since_last_activity` is 0 whether the store's score is served or the features rescored).
  const featureTime = Date.now() + DAY_MS
  const features: Record<string, number> = { ...named(rows[batchRows] as number[]), [DAYS_SINCE_LAST_ACTIVITY]: 0 }
  const storedVector = names.map(n => features[n] as number)
  assert.ok(differ(storedVector), 'the versions score the stored subscriber differently')
  const storedProbability = oldModel.predict(oldModel.vector(storedVector))
  const stored: OnlineEntry = { subscriberId: 'SUB-SWAP', version: 1, featureTime, updatedAt: featureTime, features, probability: storedProbability, scoredAt: featureTime, modelVersion: oldVersion, tier: 'low', emittedProbability: null }

  const post = (kind: string, path_: string, body: unknown, expected: Map<number, unknown>): SwapRequest => ({ kind, path: path_, body: JSON.stringify(body), expected })
  const requests: SwapRequest[] = [
    post('predict (batch)', '/api/v1/predict', { instances: batch }, reply((m, v) => ({ model_name: name, model_version: v, predictions: predictions(m, vectors(batch)) }))),
    ...rows.slice(batchRows, batchRows + 2).map((values, i) => post(`predict (single ${i})`, '/api/v1/predict', { features: named(values) }, reply((m, v) => ({ model_name: name, model_version: v, predictions: predictions(m, [{ kind: 'named', values: named(values) }]) })))),
    post('KServe V1 predict', `/v1/models/${name}:predict`, { instances: batch }, reply(m => ({ predictions: probabilities(m, batch) }))),
    post('V2 infer (one tensor)', `/v2/models/${name}/infer`, { inputs: [{ name: 'input-0', shape: [batchRows, columns], datatype: 'FP64', data: batch.flat() }] },
      reply((m, v) => ({ model_name: name, model_version: String(v), outputs: [{ name: 'probability', shape: [batchRows, 1], datatype: 'FP64', data: probabilities(m, batch) }] }))),
    post('V2 infer (a tensor per feature)', `/v2/models/${name}/infer`, { inputs: names.map((n, c) => ({ name: n, shape: [batchRows], datatype: 'FP64', data: batch.map(r => r[c]) })) },
      reply((m, v) => ({ model_name: name, model_version: String(v), outputs: [{ name: 'probability', shape: [batchRows, 1], datatype: 'FP64', data: probabilities(m, batch) }] }))),
    {
      kind: 'subscriber',
      path: `/api/v1/subscribers/${stored.subscriberId}/predict`,
      expected: reply((m, v) => withoutClock({
        subscriber_id: stored.subscriberId,
        ...assess(v === oldVersion ? storedProbability : m.predict(m.vector(storedVector)), config.risk),
        model_version: v,
        scored_by: v === oldVersion ? 'store' : 'api',
        reasons: reasonsOf(m, scoreRows(m, vectors([storedVector]), () => 'stored'), 0),
        feature_time: new Date(featureTime).toISOString()
      }))
    }
  ]
  for (const request of requests) assert.ok(!isDeepStrictEqual(request.expected.get(oldVersion), request.expected.get(newVersion)), `the versions answer ${request.kind} differently`)

  /** The version whose whole answer this is, or what is wrong (a batch mixing versions names its rows). */
  const judge = (request: SwapRequest, answer: unknown): number | string => {
    const actual = withoutClock(answer)
    const matches = [...request.expected].filter(([, expected]) => isDeepStrictEqual(actual, expected)).map(([v]) => v)
    if (matches.length === 1) return matches[0] as number
    const rowsOf = (value: unknown): unknown[] | undefined => {
      const { predictions: p, outputs } = value as { predictions?: unknown[], outputs?: Array<{ data?: unknown[] }> }
      return p ?? outputs?.[0]?.data
    }
    const got = rowsOf(actual) ?? []
    const byRow = got.map((row, r) => [...request.expected].filter(([, expected]) => isDeepStrictEqual(row, rowsOf(expected)?.[r])).map(([v]) => `v${v}`).join('+') || 'neither')
    return `the answer is no version's: rows from ${JSON.stringify(byRow)}; ${JSON.stringify(answer).slice(0, 400)}`
  }
  return { requests, stored, judge }
}

