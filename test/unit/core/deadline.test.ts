import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { settlesWithin } from '../../../core/deadline.ts'

describe('settlesWithin', () => {
  it('is true for work that resolves or rejects in time', async () => {
    assert.equal(await settlesWithin(Promise.resolve(1), 1000), true)
    assert.equal(await settlesWithin(Promise.reject(new Error('refused')), 1000), true)
  })

  it('is false for work that never settles, and holds nothing open', async () => {
    assert.equal(await settlesWithin(new Promise(() => {}), 20), false)
  })
})
