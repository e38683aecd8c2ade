import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { FastifyInstance } from 'fastify'
import { API_KEY, OTHER_API_KEY, httpApp } from '../../../helpers/http.ts'

/** A keyed route of the app itself: the dashboard's queue list. */
const KEYED = '/queues/api/queues'

/** A JSON route added for the test, for body limits. */
function echo (app: FastifyInstance): void {
  app.post('/api/v1/test-echo', { schema: { body: { type: 'object' } } }, request => ({ got: request.body }))
}

describe('the dashboard session', () => {
  it('sets the key as a cookie for /queues only, which opens the dashboard and nothing else', async t => {
    const { app } = await httpApp(t)
    assert.equal((await app.inject({ method: 'POST', url: '/api/v1/session' })).statusCode, 401, 'the session itself needs the key in a header')
    const opened = await app.inject({ method: 'POST', url: '/api/v1/session', headers: { 'x-api-key': API_KEY } })
    assert.equal(opened.statusCode, 204)
    const setCookie = String(opened.headers['set-cookie'])
    assert.match(setCookie, /^churn_dashboard_key=[^;]+; Path=\/queues; HttpOnly; SameSite=Strict; Max-Age=28800$/)
    const cookie = setCookie.split(';')[0] as string

    assert.equal((await app.inject({ method: 'GET', url: '/queues', headers: { cookie } })).statusCode, 200)
    assert.equal((await app.inject({ method: 'GET', url: KEYED, headers: { cookie } })).statusCode, 200)
    assert.equal((await app.inject({ method: 'GET', url: '/api/v1/analytics/tiers', headers: { cookie } })).statusCode, 401, 'a cookie never authorises an API route')
    assert.equal((await app.inject({ method: 'GET', url: KEYED, headers: { cookie: 'churn_dashboard_key=not-the-key-0123456789' } })).statusCode, 401)

    const closed = await app.inject({ method: 'DELETE', url: '/api/v1/session', headers: { 'x-api-key': API_KEY } })
    assert.equal(closed.statusCode, 204)
    assert.match(String(closed.headers['set-cookie']), /^churn_dashboard_key=; Path=\/queues; .*Max-Age=0$/)
  })
})

describe('API keys', () => {
  describe('when a keyed route is called', () => {
    it('refuses a request without a key with 401 naming the problem', async t => {
      const { app } = await httpApp(t)
      const response = await app.inject({ method: 'GET', url: KEYED })
      assert.equal(response.statusCode, 401)
      assert.equal(response.headers['www-authenticate'], 'Bearer realm="churn-api"')
      assert.deepEqual(response.json(), { statusCode: 401, code: 'CHURN_API_KEY_MISSING', error: 'Unauthorized', message: 'missing API key: send it in the x-api-key header or as Authorization: Bearer <key>' })
    })

    it('refuses a wrong key with 401', async t => {
      const { app } = await httpApp(t)
      for (const headers of [{ 'x-api-key': 'not-the-key-0123456789' }, { authorization: 'Bearer not-the-key-0123456789' }, { 'x-api-key': `${API_KEY}x` }, { 'x-api-key': API_KEY.slice(0, -1) }]) {
        const response = await app.inject({ method: 'GET', url: KEYED, headers })
        assert.equal(response.statusCode, 401, JSON.stringify(headers))
        assert.equal(response.json<{ code: string }>().code, 'CHURN_API_KEY_INVALID')
      }
    })

    it('serves a configured key, in x-api-key or as a bearer token', async t => {
      const { app } = await httpApp(t)
      for (const headers of [{ 'x-api-key': API_KEY }, { 'x-api-key': OTHER_API_KEY }, { authorization: `Bearer ${API_KEY}` }, { authorization: `bearer ${OTHER_API_KEY}` }]) {
        const response = await app.inject({ method: 'GET', url: KEYED, headers })
        assert.equal(response.statusCode, 200, JSON.stringify(headers))
      }
    })

    it('never takes the key from the query string', async t => {
      const { app } = await httpApp(t)
      const response = await app.inject({ method: 'GET', url: `${KEYED}?key=${API_KEY}&api_key=${API_KEY}` })
      assert.equal(response.statusCode, 401)
    })
  })

  describe('when a public route is called without a key', () => {
    it('serves health, readiness, metrics and the docs', async t => {
      const { app } = await httpApp(t)
      for (const url of ['/api/v1/health', '/api/v1/ready', '/metrics', '/docs/json']) {
        const response = await app.inject({ method: 'GET', url })
        assert.equal(response.statusCode, 200, url)
      }
    })
  })

  describe('when no route matches', () => {
    it('answers 401 without a key and 404 with one, so paths stay private', async t => {
      const { app } = await httpApp(t)
      assert.equal((await app.inject({ method: 'GET', url: '/api/v1/nothing-here' })).statusCode, 401)
      assert.equal((await app.inject({ method: 'GET', url: '/api/v1/nothing-here', headers: { 'x-api-key': API_KEY } })).statusCode, 404)
    })
  })

  describe('when no keys are configured', () => {
    it('refuses keyed routes with 503 and still serves the probes', async t => {
      const { app } = await httpApp(t, { env: { API_KEYS: '' } })
      const response = await app.inject({ method: 'GET', url: KEYED, headers: { 'x-api-key': API_KEY } })
      assert.equal(response.statusCode, 503)
      assert.equal(response.json<{ code: string }>().code, 'CHURN_API_NO_KEYS')
      assert.match(response.json<{ message: string }>().message, /no API keys configured/)
      assert.equal((await app.inject({ method: 'GET', url: '/api/v1/health' })).statusCode, 200)
    })
  })
})

describe('rate limit', () => {
  describe('when a key makes more requests than its limit per minute', () => {
    it('answers 429 with Retry-After, and other keys go on independently', async t => {
      const { app } = await httpApp(t, { env: { API_RATE_LIMIT_PER_MINUTE: '5' } })
      const call = async (key: string) => await app.inject({ method: 'GET', url: KEYED, headers: { 'x-api-key': key } })
      for (let i = 0; i < 5; i++) assert.equal((await call(API_KEY)).statusCode, 200)
      const limited = await call(API_KEY)
      assert.equal(limited.statusCode, 429)
      assert.ok(Number(limited.headers['retry-after']) > 0, 'Retry-After in seconds')
      assert.equal(limited.json<{ code: string }>().code, 'CHURN_API_RATE_LIMITED', limited.body)
      assert.match(limited.json<{ message: string }>().message, /rate limit of 5 requests per minute exceeded/)
      assert.equal((await call(OTHER_API_KEY)).statusCode, 200)
      // Probes are never limited.
      for (let i = 0; i < 8; i++) assert.equal((await app.inject({ method: 'GET', url: '/api/v1/health' })).statusCode, 200)
    })
  })

  describe('when wrong keys are tried', () => {
    it('limits them per client address', async t => {
      const { app } = await httpApp(t, { env: { API_RATE_LIMIT_PER_MINUTE: '3' } })
      const statuses = []
      for (let i = 0; i < 5; i++) statuses.push((await app.inject({ method: 'GET', url: KEYED, headers: { 'x-api-key': `guess-${i}-0123456789abcdef` } })).statusCode)
      assert.deepEqual(statuses, [401, 401, 401, 429, 429])
      assert.equal((await app.inject({ method: 'GET', url: KEYED, headers: { 'x-api-key': API_KEY } })).statusCode, 200)
    })
  })
})

describe('body limit', () => {
  describe('when a body is larger than API_BODY_LIMIT_BYTES', () => {
    it('answers 413', async t => {
      const { app } = await httpApp(t, { env: { API_BODY_LIMIT_BYTES: '1024' }, extend: echo })
      const headers = { 'x-api-key': API_KEY, 'content-type': 'application/json' }
      const small = await app.inject({ method: 'POST', url: '/api/v1/test-echo', headers, payload: JSON.stringify({ pad: 'x'.repeat(900) }) })
      assert.equal(small.statusCode, 200)
      const large = await app.inject({ method: 'POST', url: '/api/v1/test-echo', headers, payload: JSON.stringify({ pad: 'x'.repeat(2000) }) })
      assert.equal(large.statusCode, 413)
      assert.match(large.json<{ message: string }>().message, /body/i)
    })
  })
})
