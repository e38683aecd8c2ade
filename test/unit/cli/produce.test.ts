import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { parseDuration } from '../../../cli/commands/produce.ts'

describe('produce command durations', () => {
  it('reads milliseconds, seconds, minutes, hours and days', () => {
    assert.equal(parseDuration('250', 'duration'), 250)
    assert.equal(parseDuration('250ms', 'duration'), 250)
    assert.equal(parseDuration('1.5s', 'duration'), 1500)
    assert.equal(parseDuration('10m', 'duration'), 600_000)
    assert.equal(parseDuration('2h', 'horizon'), 7_200_000)
    assert.equal(parseDuration('1d', 'horizon'), 86_400_000)
  })

  it('refuses what is not a positive duration, naming the option', () => {
    assert.throws(() => parseDuration('ten minutes', 'duration'), { code: 'CHURN_CLI_USAGE', message: /--duration/ })
    assert.throws(() => parseDuration('0s', 'horizon'), { code: 'CHURN_CLI_USAGE', message: /--horizon must be positive/ })
    assert.throws(() => parseDuration('-5m', 'duration'), { code: 'CHURN_CLI_USAGE' })
  })
})
