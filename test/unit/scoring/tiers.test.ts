import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { nextTier, shouldEmit, tierOf } from '../../../scoring/tiers.ts'

const policy = { high: 0.65, medium: 0.35, hysteresis: 0.03, emitMargin: 0.1 }

describe('risk tiers', () => {
  it('uses the reference thresholds', () => {
    assert.equal(tierOf(0.65, policy), 'high')
    assert.equal(tierOf(0.6499, policy), 'medium')
    assert.equal(tierOf(0.35, policy), 'medium')
    assert.equal(tierOf(0.3499, policy), 'low')
  })

  it('rises at the threshold but falls only below it minus the hysteresis', () => {
    assert.equal(nextTier(0.66, 'low', policy), 'high')
    assert.equal(nextTier(0.63, 'high', policy), 'high', 'hovering just under 0.65 keeps high')
    assert.equal(nextTier(0.6199, 'high', policy), 'medium')
    assert.equal(nextTier(0.33, 'medium', policy), 'medium')
    assert.equal(nextTier(0.3199, 'medium', policy), 'low')
    assert.equal(nextTier(0.33, 'high', policy), 'medium', 'a fall from high lands in medium while within its hysteresis')
    assert.equal(nextTier(0.1, 'high', policy), 'low')
    assert.equal(nextTier(0.63, null, policy), 'medium', 'no current tier: thresholds alone')
  })

  it('does not flap: a score oscillating around a threshold changes the tier once', () => {
    let tier = nextTier(0.64, null, policy)
    const changes: string[] = []
    for (const p of [0.651, 0.645, 0.655, 0.64, 0.652, 0.638]) {
      const next = nextTier(p, tier, policy)
      if (next !== tier) changes.push(`${tier}->${next}`)
      tier = next
    }
    assert.deepEqual(changes, ['medium->high'])
  })

  it('emits on a tier change or a move beyond the margin, not otherwise', () => {
    assert.equal(shouldEmit('high', 0.7, null, policy), true)
    assert.equal(shouldEmit('high', 0.7, { tier: 'medium', probability: 0.6 }, policy), true)
    assert.equal(shouldEmit('high', 0.79, { tier: 'high', probability: 0.7 }, policy), false)
    assert.equal(shouldEmit('high', 0.81, { tier: 'high', probability: 0.7 }, policy), true)
    assert.equal(shouldEmit('high', 0.59, { tier: 'high', probability: 0.7 }, policy), true)
  })
})
