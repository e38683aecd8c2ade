import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { isTransientStatus, webhookSignature } from '../../../scoring/channels.ts'

describe('webhookSignature', () => {
  it('signs "<timestamp>.<body>" with HMAC-SHA256 as sha256=<hex>', () => {
    // Reference value from `printf '%s' '1767225600000.{"a":1}' | openssl dgst -sha256 -hmac 'whsec-0123456789abcdef'`.
    assert.equal(webhookSignature('whsec-0123456789abcdef', '1767225600000', '{"a":1}'), 'sha256=e520c8cec85839f33a4482eac1ee45466cfec1774e41f26ed2d0a5b03d6795b2')
  })

  it('changes with the timestamp, the body and the secret', () => {
    const base = webhookSignature('whsec-0123456789abcdef', '1767225600000', '{"a":1}')
    assert.notEqual(webhookSignature('whsec-0123456789abcdef', '1767225600001', '{"a":1}'), base)
    assert.notEqual(webhookSignature('whsec-0123456789abcdef', '1767225600000', '{"a":2}'), base)
    assert.notEqual(webhookSignature('whsec-0123456789abcdeF', '1767225600000', '{"a":1}'), base)
  })
})

describe('isTransientStatus', () => {
  it('retries timeouts, too-early, rate limits and server errors', () => {
    for (const status of [408, 425, 429, 500, 502, 503, 504]) assert.equal(isTransientStatus(status), true, String(status))
  })

  it('gives up on other client errors and on redirects', () => {
    for (const status of [300, 301, 302, 307, 400, 401, 403, 404, 409, 410, 413, 422]) assert.equal(isTransientStatus(status), false, String(status))
  })
})
