/**
 * GET /api/v1/subscribers/:id/predict over entries written with OnlineStore.write in real Redis.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { Config } from '../../../../config/index.ts'
import type { OnlineEntry } from '../../../../scoring/store.ts'
import type { ModelArtifact } from '../../../../training/artifact.ts'
import { ChurnModel } from '../../../../training/model.ts'
import { keyed, servingApp, servingConfig, trainLakehouse, trainTelco } from '../../../helpers/serving.ts'

interface SubscriberReply {
  subscriber_id: string
  churn_probability: number
  risk_level: string
  recommended_action: string
  model_version: number
  scored_at: string
  scored_by: 'store' | 'api'
  reasons: Array<{ feature: string, value: number | null, contribution: number }>
  feature_time: string
  feature_age_seconds: number
  stale: boolean
}

describe('GET /api/v1/subscribers/:id/predict', () => {
  let config: Config
  let cleanup: () => Promise<void>
  let artifact: ModelArtifact
  let features: Record<string, number | null>
  before(async () => {
    ({ config, cleanup } = await servingConfig())
    artifact = await trainLakehouse(config)
    features = Object.fromEntries(artifact.features.names.map((n, i) => [n, artifact.imputation[i] as number]))
  })
  after(async () => { await cleanup() })

  const entry = (subscriberId: string, overrides: Partial<OnlineEntry> = {}): OnlineEntry => ({
    subscriberId,
    version: 1,
    featureTime: Date.now() - 3_600_000,
    updatedAt: Date.now(),
    features,
    probability: 0.71234,
    scoredAt: Date.now() - 60_000,
    modelVersion: artifact.version,
    tier: 'high',
    emittedProbability: 0.71234,
    ...overrides
  })

  describe('when the serving model made the stored score', () => {
    it('answers the stored score with reasons and freshness', async t => {
      const { app, store } = await servingApp(t, config)
      const stored = entry('sub-0001')
      await store.write([stored])
      const response = await app.inject({ method: 'GET', url: '/api/v1/subscribers/sub-0001/predict', headers: keyed() })
      assert.equal(response.statusCode, 200, response.body)
      const body = response.json<SubscriberReply>()
      assert.equal(body.subscriber_id, 'sub-0001')
      assert.equal(body.churn_probability, 0.712)
      assert.equal(body.risk_level, 'high')
      assert.equal(body.recommended_action, 'Assign retention manager & offer loyalty bundle immediately.')
      assert.equal(body.model_version, artifact.version)
      assert.equal(body.scored_by, 'store')
      assert.equal(body.scored_at, new Date(stored.scoredAt).toISOString())
      assert.equal(body.feature_time, new Date(stored.featureTime).toISOString())
      assert.ok(Math.abs(body.feature_age_seconds - 3600) <= 2)
      assert.equal(body.stale, false)
      assert.ok(body.reasons.length > 0)
    })
  })

  describe('when another model version made the stored score', () => {
    it('scores the stored features with the serving model and says so', async t => {
      const { app, store } = await servingApp(t, config)
      const old = Date.now() - 10 * 86_400_000
      await store.write([entry('sub-0002', { modelVersion: artifact.version + 41, probability: 0.99, featureTime: old })])
      const response = await app.inject({ method: 'GET', url: '/api/v1/subscribers/sub-0002/predict', headers: keyed() })
      assert.equal(response.statusCode, 200, response.body)
      const body = response.json<SubscriberReply>()
      assert.equal(body.scored_by, 'api')
      assert.equal(body.model_version, artifact.version)
      const model = new ChurnModel(artifact)
      assert.ok(Math.abs(body.churn_probability - model.predict(model.fromNamed({ ...features, days_since_last_activity: 10 }))) < 0.002)
      assert.equal(body.stale, true, 'ten days is past FEATURE_STALE_MS')
    })
  })

  it('answers 404 for a subscriber the store does not hold', async t => {
    const { app } = await servingApp(t, config)
    const response = await app.inject({ method: 'GET', url: '/api/v1/subscribers/nobody-here/predict', headers: keyed() })
    assert.equal(response.statusCode, 404)
    assert.equal(response.json<{ code: string }>().code, 'CHURN_API_NOT_FOUND')
    assert.match(response.json<{ message: string }>().message, /subscriber "nobody-here" has no features in the online store/)
  })

  for (const [what, id] of [['a control character', 'bad%07id'], ['65 characters', 'x'.repeat(65)]] as const) {
    it(`answers 400 for an id with ${what}`, async t => {
      const { app } = await servingApp(t, config)
      const response = await app.inject({ method: 'GET', url: `/api/v1/subscribers/${id}/predict`, headers: keyed() })
      assert.equal(response.statusCode, 400, response.body)
      assert.equal(response.json<{ code: string }>().code, 'CHURN_SCORE_BAD_SUBSCRIBER')
      assert.match(response.json<{ message: string }>().message, /must be 1-64 characters without control characters/)
    })
  }

  describe('when the served model is tabular', () => {
    it('answers 503 saying the model scores raw profiles', async t => {
      const telco = await servingConfig({ MODEL_NAME: 'telco' })
      t.after(telco.cleanup)
      await trainTelco(telco.config)
      const { app } = await servingApp(t, telco.config)
      const response = await app.inject({ method: 'GET', url: '/api/v1/subscribers/sub-0001/predict', headers: keyed() })
      assert.equal(response.statusCode, 503)
      assert.equal(response.json<{ code: string }>().code, 'CHURN_API_MODEL_UNSUITED')
    })
  })
})
