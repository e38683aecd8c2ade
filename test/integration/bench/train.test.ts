/**
 * The training benchmark's quick mode runs in the test suite so it never rots: scikit-learn from
 * the project's venv, this engine on one and all threads, ml-random-forest where it fits the
 * budget. It checks the table and the goal lines are printed; the figures are for people.
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import path from 'node:path'
import { promisify } from 'node:util'
import { describe, it } from 'node:test'

const BENCH = path.resolve(import.meta.dirname, '../../../bench/train.ts')

describe('bench:train --quick', () => {
  it('prints sklearn, this forest and ml-random-forest side by side, and the goals', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, [BENCH, '--quick'], { env: process.env, maxBuffer: 1024 * 1024 })
    assert.match(stdout, /^telco\s+5282 x 45\s+sklearn \d+\.\d+\.\d+\s+\d+\.\d\d\s+0\.\d{4}\s+[\d,]+/m)
    assert.match(stdout, /^telco\s+5282 x 45\s+forest, 1 thread\s+\d+\.\d\d\s+\d+\.\d\dx\s+0\.\d{4}\s+-?0\.\d{4}\s+[\d,]+\s+\d+\.\d\dx/m)
    assert.match(stdout, /^gold-1k\s+\d+ x 28\s+ml-random-forest\s+\d+\.\d\d\s+\d+\.\d\dx\s+0\.\d{4}/m, 'ml-random-forest runs where it fits the budget')
    assert.match(stdout, /^telco\s+.*ml-random-forest\s+-\s+-\s+-\s+-\s+-\s+skipped: about \d+ s estimated/m)
    assert.match(stdout, /goals \(scikit-learn/)
    assert.match(stdout, /telco: AUC 0\.\d{4} vs sklearn 0\.\d{4}/)
  })
})
