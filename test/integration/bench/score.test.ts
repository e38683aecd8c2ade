/**
 * The scoring benchmark's quick mode runs in the test suite so it never rots: live traffic through
 * ingest and the scorer on worker threads, the scorer alone on a preloaded changelog, the compiled
 * forest. It checks every figure and goal line is printed; the figures themselves are for people.
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import path from 'node:path'
import { promisify } from 'node:util'
import { describe, it } from 'node:test'

const BENCH = path.resolve(import.meta.dirname, '../../../bench/score.ts')

describe('bench:score --quick', () => {
  it('prints the chain rates, lag, latency legs, scorer capacity, forest rate and the goals', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, [BENCH, '--quick'], { env: process.env, maxBuffer: 1024 * 1024 })
    for (const figure of ['produced: billing, network and device events', 'ingest landed in Gold', 'feature changelog records published', 'scorer feature updates consumed', 'ingest busy landing', 'scorer busy in batches', 'ingest group lag', 'scorer group lag']) {
      assert.match(stdout, new RegExp(`${figure}.*\\s[\\d,]+ (/s|%)?`), `prints ${figure}:\n${stdout}`)
    }
    assert.match(stdout, /drained after traffic stopped: ingest \/ scorer\s+\d+\.\d s \/ \d+\.\d s/, 'the chain drains')
    assert.match(stdout, /latency, event production -> churn-risk event \(ms\): [1-9][\d,]* events/, 'churn-risk events were read back')
    for (const leg of ['end to end: event time -> received', 'ingest: event time -> changelog', 'scorer: changelog record sent', 'delivery: churn-risk event sent']) {
      assert.match(stdout, new RegExp(`${leg}.*?(\\s+-?[\\d,]+){4}$`, 'm'), `prints p50, p95, p99 and max of ${leg}`)
    }
    assert.match(stdout, /\(b\) scorer alone: 20,000 feature changes.*\s[\d,]+ \/s/)
    assert.match(stdout, /pass 1: first scores.*10,000 scored/)
    assert.match(stdout, /pass 2: second versions.*10,000 scored/)
    assert.match(stdout, /\(c\) compiled forest predictBatch, 20,000 rows.*\s[\d,]+ rows\/s/)
    assert.match(stdout, /p99 latency event -> churn-risk event [\d,]+ ms \(goal <= 1000 ms\)\s+(met|NOT MET)/)
    assert.match(stdout, /scorer never the bottleneck: capacity \d+\.\dx .*(met|NOT MET)/)
  })
})
