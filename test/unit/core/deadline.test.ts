import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { settlesWithin, valueWithin } from '../../../core/deadline.ts'

describe('settlesWithin', () => {
  it('is true for work that resolves or rejects in time', async () => {
    assert.equal(await settlesWithin(Promise.resolve(1), 1000), true)
    assert.equal(await settlesWithin(Promise.reject(new Error('refused')), 1000), true)
  })

  it('is false for work that never settles, and holds nothing open', async () => {
    assert.equal(await settlesWithin(new Promise(() => {}), 20), false)
  })
})

describe('valueWithin', () => {
  it('is the value in time, and the fallback on a rejection or a wait that runs out', async () => {
    assert.equal(await valueWithin(Promise.resolve(7), 1000, -1), 7)
    assert.equal(await valueWithin(Promise.reject(new Error('refused')), 1000, -1), -1)
    assert.equal(await valueWithin(new Promise<number>(() => {}), 20, -1), -1)
  })
})
