/**
 * The HTTP benchmark's quick mode runs in the test suite so it never rots: `churn serve` and the
 * FastAPI reference started side by side, both routes under a closed loop and the subscriber
 * route at a fixed rate. It checks every table row and goal line is printed and that no request
 * failed; the timings themselves are for people.
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import path from 'node:path'
import { promisify } from 'node:util'
import { describe, it } from 'node:test'

const BENCH = path.resolve(import.meta.dirname, '../../../bench/http.ts')

describe('bench:http --quick', () => {
  it('prints both servers under each load without errors, the ratios and the goals', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, [BENCH, '--quick'], { env: process.env, maxBuffer: 1024 * 1024 })
    assert.match(stdout, /same request, both servers: churn serve SUB-\d{6}: 0?\.\d+ \((low|medium|high)\), KServe 0\.\d{3}; reference SUB-\d{6}/)
    for (const target of ['churn serve', 'reference']) {
      for (const [route, load] of [['GET /api/v1/subscribers/:id/predict', 'closed, 32 conn'], ['POST /v1/models/:name:predict (1)', 'closed, 32 conn'], ['GET /api/v1/subscribers/:id/predict', 'fixed 1,000/s']] as const) {
        // requests/s, p50, p99, errors (0), server and client CPU.
        const row = new RegExp(`^${target}\\s+${route.replace(/[()/:]/g, '\\$&')}\\s+${load}\\s+[1-9][\\d,]*\\s+[\\d.,]+\\s+[\\d.,]+\\s+0\\s+[\\d,]+%\\s+[\\d,]+%$`, 'm')
        assert.match(stdout, row, `prints ${target} ${route} ${load} with no errors:\n${stdout}`)
      }
    }
    assert.match(stdout, /churn serve fixed 1,000\/s: in the server \(its http_request_duration_seconds\): [\d.]+% over 2\.5 ms, [\d.]+% over 5 ms/)
    assert.match(stdout, /churn serve fixed 1,000\/s: (every request answered|[\d,]+ of [\d,]+ unanswered).*generator wrote requests late by p50 [\d.,]+ \/ p99 [\d.,]+ ms/)
    assert.match(stdout, /subscriber route: requests\/s \d+\.\dx/)
    assert.match(stdout, /KServe V1 predict: requests\/s \d+\.\dx/)
    assert.match(stdout, /subscriber route: [\d.]+x the reference's requests\/s \(goal >= 5x\)\s+(met|NOT MET)/)
    assert.match(stdout, /KServe V1 predict: [\d.]+x the reference's requests\/s \(goal >= 5x\)\s+(met|NOT MET)/)
    assert.match(stdout, /p99 [\d.,]+ ms at 1,000 requests\/s on the subscriber route.* \(goal <= 5 ms\)\s+(met|NOT MET)/)
    assert.match(stdout, /errors: none \(goal: none\)\s+met/)
  })
})
