/**
 * POST /api/v1/predict, GET /api/v1/model, readiness and the error shapes, over a lakehouse model
 * trained into the test's own models folder.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { Config } from '../../../../config/index.ts'
import type { ModelArtifact } from '../../../../training/artifact.ts'
import { keyed, servingApp, servingConfig, trainLakehouse } from '../../../helpers/serving.ts'

interface Prediction { churn_probability: number, risk_level: string, recommended_action: string, reasons: Array<{ feature: string, value: number | null, contribution: number }> }
interface PredictReply { model_name: string, model_version: number, predictions: Prediction[] }
interface ApiError { statusCode: number, code?: string, error: string, message: string, requestId?: string }

describe('the prediction API over a lakehouse model', () => {
  let config: Config
  let cleanup: () => Promise<void>
  let artifact: ModelArtifact
  let named: Record<string, number>
  let vector: number[]
  before(async () => {
    ({ config, cleanup } = await servingConfig({ API_MAX_BATCH: '5', API_BODY_LIMIT_BYTES: '4096' }))
    artifact = await trainLakehouse(config)
    vector = [...artifact.imputation]
    named = Object.fromEntries(artifact.features.names.map((n, i) => [n, artifact.imputation[i] as number]))
  })
  after(async () => { await cleanup() })

  describe('POST /api/v1/predict', () => {
    it('scores named features with the reference fields and reasons', async t => {
      const { app } = await servingApp(t, config)
      const response = await app.inject({ method: 'POST', url: '/api/v1/predict', headers: keyed(), payload: { features: named } })
      assert.equal(response.statusCode, 200, response.body)
      const body = response.json<PredictReply>()
      assert.equal(body.model_name, config.serving.modelName)
      assert.equal(body.model_version, artifact.version)
      assert.equal(body.predictions.length, 1)
      const [p] = body.predictions as [Prediction]
      assert.ok(p.churn_probability >= 0 && p.churn_probability <= 1)
      assert.equal(p.churn_probability, Math.round(p.churn_probability * 1000) / 1000)
      assert.ok(['low', 'medium', 'high'].includes(p.risk_level))
      assert.match(p.recommended_action, /\w/)
      assert.ok(p.reasons.length > 0 && p.reasons.every(r => artifact.features.names.includes(r.feature)))
    })

    it('scores instances given as vectors and as named features alike', async t => {
      const { app } = await servingApp(t, config)
      const partial = { [artifact.features.names[0] as string]: null }
      const response = await app.inject({ method: 'POST', url: '/api/v1/predict', headers: keyed(), payload: { instances: [vector, named, partial] } })
      assert.equal(response.statusCode, 200, response.body)
      const [a, b, c] = response.json<PredictReply>().predictions as [Prediction, Prediction, Prediction]
      assert.equal(a.churn_probability, b.churn_probability)
      // All imputed: the medians, so the same score; the missing one is reported as null.
      assert.equal(c.churn_probability, a.churn_probability)
      assert.ok(c.reasons.every(r => r.value === null))
    })

    const refusals: Array<[string, unknown, RegExp]> = [
      ['an empty body object', {}, /exactly one of features, instances, profile, profiles; it has none/],
      ['two inputs at once', { features: {}, instances: [[1]] }, /it has features and instances/],
      ['an unknown feature', { features: { no_such_feature: 1 } }, /body\/features: model .* has no feature "no_such_feature"/],
      ['a feature that is not a number', { features: { x: 'high' } }, /body\/features\/x must be number,null/],
      ['a vector of the wrong length', { instances: [[1, 2]] }, /body\/instances\/0: a feature vector for model .* has \d+ values/],
      ['more instances than API_MAX_BATCH', { instances: [[], [], [], [], [], []] }, /body\/instances must NOT have more than 5 items/],
      ['an instance that is neither', { instances: ['x'] }, /body\/instances\/0 must (be array|match)/],
      ['a profile for a lakehouse model', { profile: { tenure: 1 } }, /body\/profile: model .* scores lakehouse features, not raw profiles/]
    ]
    for (const [what, payload, message] of refusals) {
      it(`answers 400 naming the problem for ${what}`, async t => {
        const { app } = await servingApp(t, config)
        const response = await app.inject({ method: 'POST', url: '/api/v1/predict', headers: keyed(), payload: payload as object })
        assert.equal(response.statusCode, 400, response.body)
        const body = response.json<ApiError>()
        assert.equal(body.statusCode, 400)
        assert.equal(body.error, 'Bad Request')
        assert.match(body.message, message)
      })
    }

    it('answers 400 for malformed JSON, 415 for another content type, 413 past the body limit', async t => {
      const { app } = await servingApp(t, config)
      const malformed = await app.inject({ method: 'POST', url: '/api/v1/predict', headers: keyed({ 'content-type': 'application/json' }), payload: '{"features": {' })
      assert.equal(malformed.statusCode, 400)
      assert.equal(malformed.json<ApiError>().code, 'FST_ERR_CTP_INVALID_JSON_BODY')
      for (const type of ['text/plain', 'application/xml']) {
        const wrong = await app.inject({ method: 'POST', url: '/api/v1/predict', headers: keyed({ 'content-type': type }), payload: 'features' })
        assert.equal(wrong.statusCode, 415, type)
        assert.equal(wrong.json<ApiError>().code, 'FST_ERR_CTP_INVALID_MEDIA_TYPE')
      }
      const big = await app.inject({ method: 'POST', url: '/api/v1/predict', headers: keyed(), payload: { instances: [Array.from({ length: 5000 }, () => 1)] } })
      assert.equal(big.statusCode, 413)
      assert.equal(big.json<ApiError>().code, 'FST_ERR_CTP_BODY_TOO_LARGE')
    })
  })

  describe('GET /api/v1/model', () => {
    it('answers the model card with sorted importances', async t => {
      const { app } = await servingApp(t, config)
      const response = await app.inject({ method: 'GET', url: '/api/v1/model', headers: keyed() })
      assert.equal(response.statusCode, 200, response.body)
      const card = response.json<{ name: string, version: number, engine: string, labels: string, metrics: { test_roc_auc: number, confusion: { high: { threshold: number } } }, features: { hash: string, importances: Array<{ importance: number }> }, training: { rows: number, window: unknown }, drift?: unknown }>()
      assert.equal(card.name, config.serving.modelName)
      assert.equal(card.version, artifact.version)
      assert.equal(card.engine, 'forest')
      assert.equal(card.metrics.test_roc_auc, artifact.metrics.test.rocAuc)
      assert.equal(card.metrics.confusion.high.threshold, config.risk.high)
      assert.equal(card.features.hash, artifact.features.hash)
      assert.equal(card.features.importances.length, artifact.features.names.length)
      assert.deepEqual(card.features.importances.map(i => i.importance), card.features.importances.map(i => i.importance).sort((a, b) => b - a))
      assert.equal(card.training.rows, artifact.training.rows)
      assert.equal(card.drift, undefined)
    })

    it('shows the drift report of the serving version', async t => {
      const report = { modelVersion: artifact.version, rows: 10, window: 100, threshold: 0.2, score: 0.05, features: [{ name: 'f', psi: 0.3 }], drifted: ['f'] }
      const { app } = await servingApp(t, config, { drift: () => report })
      const card = (await app.inject({ method: 'GET', url: '/api/v1/model', headers: keyed() })).json<{ drift: { score_psi: number, drifted: string[] } }>()
      assert.equal(card.drift.score_psi, 0.05)
      assert.deepEqual(card.drift.drifted, ['f'])
    })

    it('answers 500 "internal error" with the request id, never the failure itself', async t => {
      // A drift source that throws stands for any unexpected fault inside a route.
      const { app } = await servingApp(t, config, { drift: () => { throw new Error('secret detail: /var/lib/churn') } })
      const response = await app.inject({ method: 'GET', url: '/api/v1/model', headers: keyed() })
      assert.equal(response.statusCode, 500)
      const body = response.json<ApiError>()
      assert.equal(body.message, 'internal error')
      assert.equal(typeof body.requestId, 'string')
      assert.doesNotMatch(response.body, /secret detail/)
    })
  })

  describe('when no model is promoted', () => {
    it('answers 503 on scoring routes and readiness names the missing model', async t => {
      const empty = await servingConfig({ MODEL_NAME: 'nothing-here' })
      t.after(empty.cleanup)
      const { app } = await servingApp(t, empty.config)
      const predict = await app.inject({ method: 'POST', url: '/api/v1/predict', headers: keyed(), payload: { features: {} } })
      assert.equal(predict.statusCode, 503)
      assert.equal(predict.json<ApiError>().code, 'CHURN_SCORE_NO_MODEL')
      assert.match(predict.json<ApiError>().message, /no model nothing-here is loaded/)
      const ready = await app.inject({ method: 'GET', url: '/api/v1/ready' })
      assert.equal(ready.statusCode, 503)
      const body = ready.json<{ ready: boolean, checks: Record<string, string>, problems: Record<string, string> }>()
      assert.equal(body.ready, false)
      assert.deepEqual(body.checks, { model: 'failed', redis: 'ok' })
      assert.match(body.problems.model ?? '', /no version of model nothing-here is promoted/)
    })
  })

  describe('GET /api/v1/ready with a model', () => {
    it('answers 200 with the model check ok and no problems', async t => {
      const { app } = await servingApp(t, config)
      const ready = await app.inject({ method: 'GET', url: '/api/v1/ready' })
      assert.equal(ready.statusCode, 200)
      assert.deepEqual(ready.json(), { ready: true, checks: { model: 'ok', redis: 'ok' } })
    })
  })

  describe('an unknown route', () => {
    it('answers 404 in the API shape under /api and { error } under /v2', async t => {
      const { app } = await servingApp(t, config)
      const api = await app.inject({ method: 'GET', url: '/api/v1/nothing', headers: keyed() })
      assert.equal(api.statusCode, 404)
      assert.match(api.json<ApiError>().message, /no route GET \/api\/v1\/nothing/)
      const v2 = await app.inject({ method: 'GET', url: '/v2/nothing', headers: keyed() })
      assert.equal(v2.statusCode, 404)
      assert.deepEqual(Object.keys(v2.json<object>()), ['error'])
    })
  })
})
