/**
 * The ingest benchmark's quick mode runs in the test suite so it never rots. It checks that the
 * benchmark completes and prints every figure; the figures themselves are for people to read.
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import path from 'node:path'
import { promisify } from 'node:util'
import { describe, it } from 'node:test'

const BENCH = path.resolve(import.meta.dirname, '../../../bench/ingest.ts')

describe('bench:ingest --quick', () => {
  it('completes and prints the raw, ingest, refresh and memory figures', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, [BENCH, '--quick'], { env: process.env, maxBuffer: 1024 * 1024 })
    for (const figure of ['(a) raw kafkajs consume', '(b) ingest to committed Gold', '(c) ingest / raw consume', '(d) Gold refresh', 'full recompute', '(e) peak RSS']) {
      assert.ok(stdout.includes(figure), `prints ${figure}:\n${stdout}`)
    }
    assert.match(stdout, /Gold equals its recompute\s+yes/)
  })
})
