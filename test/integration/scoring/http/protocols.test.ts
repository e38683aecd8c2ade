/**
 * The reference example profile through every way in (POST /api/v1/predict, KServe V1, Open
 * Inference V2) against a model trained on the Telco CSV and served as `telco`; the protocols'
 * refusals; and one round over a real listening socket.
 */
import assert from 'node:assert/strict'
import type { AddressInfo } from 'node:net'
import { after, before, describe, it } from 'node:test'
import type { Config } from '../../../../config/index.ts'
import type { ModelArtifact } from '../../../../training/artifact.ts'
import { ChurnModel } from '../../../../training/model.ts'
import { keyed, servingApp, servingConfig, trainTelco } from '../../../helpers/serving.ts'
import { REFERENCE_PROFILE } from '../../../helpers/telco.ts'

interface V2Reply { model_name: string, model_version: string, id?: string, outputs: Array<{ name: string, shape: number[], datatype: string, data: number[] }> }

describe('the model-serving protocols over a Telco model', () => {
  let config: Config
  let cleanup: () => Promise<void>
  let artifact: ModelArtifact
  let model: ChurnModel
  let expected: number
  let encoded: number[]
  before(async () => {
    ({ config, cleanup } = await servingConfig({ MODEL_NAME: 'telco', API_MAX_BATCH: '10' }))
    artifact = await trainTelco(config)
    model = new ChurnModel(artifact)
    encoded = Array.from(model.fromProfile(REFERENCE_PROFILE))
    expected = model.predict(encoded)
  })
  after(async () => { await cleanup() })

  describe('POST /api/v1/predict', () => {
    it('scores the reference profile, alone and in a batch', async t => {
      const { app } = await servingApp(t, config)
      const one = await app.inject({ method: 'POST', url: '/api/v1/predict', headers: keyed(), payload: { profile: REFERENCE_PROFILE } })
      assert.equal(one.statusCode, 200, one.body)
      const body = one.json<{ model_name: string, predictions: Array<{ churn_probability: number, risk_level: string, reasons: unknown[] }> }>()
      assert.equal(body.model_name, 'telco')
      assert.equal(body.predictions[0]?.churn_probability, Math.round(expected * 1000) / 1000)
      assert.ok(expected >= config.risk.medium, `the reference profile is at risk (${expected})`)
      const batch = await app.inject({ method: 'POST', url: '/api/v1/predict', headers: keyed(), payload: { profiles: [REFERENCE_PROFILE, { ...REFERENCE_PROFILE, tenure: 72, Contract: 'Two year' }] } })
      assert.equal(batch.statusCode, 200, batch.body)
      const [risky, loyal] = batch.json<{ predictions: Array<{ churn_probability: number }> }>().predictions as [{ churn_probability: number }, { churn_probability: number }]
      assert.ok(loyal.churn_probability < risky.churn_probability)
    })

    it('answers 400 naming the field for a category the model never saw', async t => {
      const { app } = await servingApp(t, config)
      const response = await app.inject({ method: 'POST', url: '/api/v1/predict', headers: keyed(), payload: { profiles: [REFERENCE_PROFILE, { ...REFERENCE_PROFILE, Contract: 'Forever' }] } })
      assert.equal(response.statusCode, 400)
      assert.equal(response.json<{ code: string }>().code, 'CHURN_MODEL_BAD_INPUT')
      assert.match(response.json<{ message: string }>().message, /^body\/profiles\/1: Contract must be one of .*got "Forever"/)
    })
  })

  describe('KServe V1', () => {
    it('lists the model, reports it ready and predicts profiles and vectors', async t => {
      const { app } = await servingApp(t, config)
      assert.deepEqual((await app.inject({ method: 'GET', url: '/v1/models', headers: keyed() })).json(), { models: ['telco'] })
      assert.deepEqual((await app.inject({ method: 'GET', url: '/v1/models/telco', headers: keyed() })).json(), { name: 'telco', ready: true })
      const response = await app.inject({ method: 'POST', url: '/v1/models/telco:predict', headers: keyed(), payload: { instances: [REFERENCE_PROFILE, encoded] } })
      assert.equal(response.statusCode, 200, response.body)
      assert.deepEqual(response.json(), { predictions: [expected, expected] })
    })

    const refusals: Array<[string, string, unknown, number, RegExp]> = [
      ['an unknown model', '/v1/models/other:predict', { instances: [[1]] }, 404, /model "other" is not served here; this server serves "telco"/],
      ['no instances', '/v1/models/telco:predict', {}, 400, /body must have required property 'instances'/],
      ['a bad profile value', '/v1/models/telco:predict', { instances: [{ ...REFERENCE_PROFILE, tenure: 'long' }] }, 400, /instances\[0\]: tenure must be a number/],
      ['a vector of the wrong length', '/v1/models/telco:predict', { instances: [[1, 2, 3]] }, 400, /instances\[0\]: a feature vector for model telco has \d+ values/],
      ['too many instances', '/v1/models/telco:predict', { instances: Array.from({ length: 11 }, () => [1]) }, 400, /body\/instances must NOT have more than 10 items/]
    ]
    for (const [what, url, payload, status, message] of refusals) {
      it(`answers ${status} { error } for ${what}`, async t => {
        const { app } = await servingApp(t, config)
        const response = await app.inject({ method: 'POST', url, headers: keyed(), payload: payload as object })
        assert.equal(response.statusCode, status, response.body)
        const body = response.json<{ error: string }>()
        assert.match(body.error, message)
        assert.deepEqual(Object.keys(body), ['error'])
      })
    }
  })

  describe('Open Inference V2', () => {
    it('answers liveness, readiness and metadata', async t => {
      const { app } = await servingApp(t, config)
      assert.deepEqual((await app.inject({ method: 'GET', url: '/v2/health/live' })).json(), { live: true })
      assert.deepEqual((await app.inject({ method: 'GET', url: '/v2/health/ready' })).json(), { ready: true })
      assert.deepEqual((await app.inject({ method: 'GET', url: '/v2/models/telco/ready', headers: keyed() })).json(), { name: 'telco', ready: true })
      const metadata = await app.inject({ method: 'GET', url: '/v2/models/telco', headers: keyed() })
      assert.deepEqual(metadata.json(), {
        name: 'telco',
        versions: [String(artifact.version)],
        platform: 'churn-forest',
        inputs: [{ name: 'features', datatype: 'FP64', shape: [-1, model.names.length] }],
        outputs: [{ name: 'probability', datatype: 'FP64', shape: [-1, 1] }]
      })
    })

    it('infers an FP32 tensor with nested data and echoes the id', async t => {
      const { app } = await servingApp(t, config)
      const payload = { id: 'req-42', inputs: [{ name: 'input-0', shape: [2, encoded.length], datatype: 'FP32', data: [encoded, encoded] }] }
      const response = await app.inject({ method: 'POST', url: '/v2/models/telco/infer', headers: keyed(), payload })
      assert.equal(response.statusCode, 200, response.body)
      const body = response.json<V2Reply>()
      assert.deepEqual(body, { model_name: 'telco', model_version: String(artifact.version), id: 'req-42', outputs: [{ name: 'probability', shape: [2, 1], datatype: 'FP64', data: [expected, expected] }] })
    })

    it('infers one tensor per feature, flat FP64 and INT64', async t => {
      const { app } = await servingApp(t, config)
      const inputs = model.names.map((name, i) => ({ name, shape: [1], datatype: Number.isInteger(encoded[i]) ? 'INT64' : 'FP64', data: [encoded[i]] }))
      const response = await app.inject({ method: 'POST', url: '/v2/models/telco/infer', headers: keyed(), payload: { inputs } })
      assert.equal(response.statusCode, 200, response.body)
      assert.deepEqual(response.json<V2Reply>().outputs[0]?.data, [expected])
    })

    const tensor = (overrides: object): object => ({ inputs: [{ name: 'input-0', shape: [1, 0], datatype: 'FP64', data: [], ...overrides }] })
    const refusals: Array<[string, string, () => object, number, RegExp]> = [
      ['an unknown model', '/v2/models/other/infer', () => tensor({}), 404, /model "other" is not served here/],
      ['a shape of other width', '/v2/models/telco/infer', () => tensor({ shape: [1, 3], data: [1, 2, 3] }), 400, /has shape \[1, 3\]; model telco takes \[n, \d+\]/],
      ['data not matching the shape', '/v2/models/telco/infer', () => tensor({ shape: [2, encoded.length], data: encoded }), 400, /has \d+ values; its shape \[2, \d+\] needs \d+/],
      ['a BOOL tensor', '/v2/models/telco/infer', () => tensor({ shape: [1, encoded.length], datatype: 'BOOL', data: encoded }), 400, /is BOOL; send a numeric datatype/],
      ['INT64 with a fraction', '/v2/models/telco/infer', () => tensor({ shape: [1, encoded.length], datatype: 'INT64', data: encoded }), 400, /is INT64 but value \d+ is 95.75/],
      ['an unknown datatype', '/v2/models/telco/infer', () => tensor({ datatype: 'FP128' }), 400, /body\/inputs\/0\/datatype must be equal to one of the allowed values/],
      ['an unknown output', '/v2/models/telco/infer', () => ({ ...tensor({ shape: [1, encoded.length], data: encoded }), outputs: [{ name: 'logits' }] }), 400, /output "logits" does not exist/],
      ['an unknown per-feature input', '/v2/models/telco/infer', () => ({ inputs: [{ name: 'tenure', shape: [1], datatype: 'FP64', data: [1] }, { name: 'shoe_size', shape: [1], datatype: 'FP64', data: [1] }] }), 400, /input "shoe_size" is not a feature of model telco/],
      ['no inputs', '/v2/models/telco/infer', () => ({ inputs: [] }), 400, /body\/inputs must NOT have fewer than 1 items/]
    ]
    for (const [what, url, payload, status, message] of refusals) {
      it(`answers ${status} { error } for ${what}`, async t => {
        const { app } = await servingApp(t, config)
        const response = await app.inject({ method: 'POST', url, headers: keyed(), payload: payload() })
        assert.equal(response.statusCode, status, response.body)
        assert.match(response.json<{ error: string }>().error, message)
      })
    }
  })

  describe('over a listening socket', () => {
    it('answers KServe V1 and the API to fetch', async t => {
      const { app } = await servingApp(t, config)
      await app.listen({ host: '127.0.0.1', port: 0 })
      const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
      const kserve = await fetch(`${base}/v1/models/telco:predict`, { method: 'POST', headers: keyed({ 'content-type': 'application/json' }), body: JSON.stringify({ instances: [REFERENCE_PROFILE] }) })
      assert.equal(kserve.status, 200)
      assert.deepEqual(await kserve.json(), { predictions: [expected] })
      const garbage = await fetch(`${base}/api/v1/predict`, { method: 'POST', headers: keyed({ 'content-type': 'application/json' }), body: '{"profile":' })
      assert.equal(garbage.status, 400)
      assert.equal((await garbage.json() as { code: string }).code, 'FST_ERR_CTP_INVALID_JSON_BODY')
    })
  })
})
