import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { ApiKeys, isPublicRoute, presentedKey, secretsEqual } from '../../../../scoring/http/auth.ts'
import { rejectionReason } from '../../../../scoring/http/metrics.ts'

describe('secretsEqual', () => {
  it('compares equal and unequal secrets of any lengths without throwing', () => {
    assert.equal(secretsEqual('a-key-0123456789abcdef', 'a-key-0123456789abcdef'), true)
    assert.equal(secretsEqual('a-key-0123456789abcdef', 'a-key-0123456789abcdeg'), false)
    // timingSafeEqual throws on buffers of different lengths; hashing first makes them equal.
    assert.equal(secretsEqual('short', 'a-much-longer-key-0123456789'), false)
    assert.equal(secretsEqual('', 'x'), false)
  })
})

describe('ApiKeys', () => {
  it('finds which configured key matches, comparing against all', () => {
    const keys = new ApiKeys(['first-key-0123456789', 'second-key-0123456789'])
    assert.equal(keys.configured, true)
    assert.equal(keys.match('first-key-0123456789'), 0)
    assert.equal(keys.match('second-key-0123456789'), 1)
    assert.equal(keys.match('second-key-012345678'), -1)
    assert.equal(new ApiKeys([]).configured, false)
  })
})

describe('presentedKey', () => {
  it('reads x-api-key first, then a bearer token', () => {
    assert.equal(presentedKey({ headers: { 'x-api-key': 'k1', authorization: 'Bearer k2' } }), 'k1')
    assert.equal(presentedKey({ headers: { authorization: 'Bearer k2' } }), 'k2')
    assert.equal(presentedKey({ headers: { authorization: 'bearer   k2 ' } }), 'k2')
    assert.equal(presentedKey({ headers: { authorization: 'Basic dXNlcjpwYXNz' } }), undefined)
    assert.equal(presentedKey({ headers: { authorization: 'Bearer a b' } }), undefined)
    assert.equal(presentedKey({ headers: {} }), undefined)
  })
})

describe('isPublicRoute', () => {
  it('opens the probes, metrics and docs by route pattern only', () => {
    for (const route of ['/api/v1/health', '/api/v1/ready', '/metrics', '/v2/health/live', '/v2/health/ready', '/docs', '/docs/json', '/docs/static/*']) assert.equal(isPublicRoute(route), true, route)
    for (const route of [undefined, '/queues', '/api/v1/subscribers/:id/prediction', '/docsx', '/metrics/x']) assert.equal(isPublicRoute(route), false, String(route))
  })
})

describe('rejectionReason', () => {
  it('names the cause of a 4xx', () => {
    assert.equal(rejectionReason(401, undefined, 'missing'), 'auth')
    assert.equal(rejectionReason(429, undefined, 'rate_limited'), 'rate_limit')
    assert.equal(rejectionReason(400, 'FST_ERR_VALIDATION'), 'validation')
    assert.equal(rejectionReason(400, 'FST_ERR_CTP_INVALID_JSON_BODY'), 'malformed')
    assert.equal(rejectionReason(404, 'CHURN_API_NOT_FOUND'), 'not_found')
    assert.equal(rejectionReason(413, 'FST_ERR_CTP_BODY_TOO_LARGE'), 'too_large')
    assert.equal(rejectionReason(415, 'FST_ERR_CTP_INVALID_MEDIA_TYPE'), 'unsupported_media_type')
    assert.equal(rejectionReason(409, undefined), 'other')
  })
})
