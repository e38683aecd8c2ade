import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { isLoopback } from '../../../stack/probes.ts'

describe('isLoopback', () => {
  it('accepts the loopback names and addresses', () => {
    for (const host of ['127.0.0.1', '127.1.2.3', 'localhost', 'LOCALHOST', '::1', '[::1]']) assert.equal(isLoopback(host), true, host)
  })

  it('refuses other hosts', () => {
    for (const host of ['10.0.0.1', 'kafka', '0.0.0.0', '128.0.0.1', 'localhost.example.com', '::']) assert.equal(isLoopback(host), false, host)
  })
})
