/**
 * The soak's quick mode runs in the test suite so it never rots: `churn bootstrap`, then ingest,
 * score, work and serve as processes of their own under live traffic and an HTTP load for some
 * 45 s, sampled every 5 s. It checks the run passes its checks (no role exited, the chain moved,
 * every role ready, the lag drained, no HTTP errors), that a sample carries every series, and that
 * the report, the summary and a real PNG are written. A 45 s run cannot judge memory or lag
 * growth: it must say so rather than give a verdict on noise; the figures themselves are for people.
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { after, describe, it } from 'node:test'

const BENCH = path.resolve(import.meta.dirname, '../../../bench/soak.ts')
const ROLES = ['ingest', 'score', 'work', 'serve']
/** The first bytes of every PNG file. */
const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])

describe('soak --quick', () => {
  it('runs every role as its own process under load and writes the report, the summary and the plot', async () => {
    const out = await mkdtemp(path.join(tmpdir(), 'churn-soak-test-'))
    after(async () => { await rm(out, { recursive: true, force: true }) })
    // Exit code 0 or execFile rejects: a role that died, a stall or undrained lag fails the test.
    const { stdout } = await promisify(execFile)(process.execPath, [BENCH, '--quick', '--out', out], { env: process.env, maxBuffer: 4 * 1024 * 1024 })

    assert.match(stdout, /^bootstrap: [\d,]+ events of history for [\d,]+ subscribers ingested, \d+ trees trained, serving churn v\d+/m)
    assert.match(stdout, /^roles ready: ingest \(pid \d+, :\d+\), score \(pid \d+, :\d+\), work \(pid \d+, :\d+\), serve \(pid \d+, :\d+\)$/m)
    // Sample rows: t, RSS of the four roles, both lags, the p99s, events, queued, readiness.
    const rows = stdout.split('\n').filter(l => /^\s+\d+(\s+[\d,.-]+){10} (all|NOT \S+)/.test(l))
    assert.ok(rows.length >= 6, `prints a row per 5 s sample:\n${stdout}`)
    assert.match(stdout, /^traffic: [1-9][\d,]* events in \d+ s .* [1-9][\d,]* churn-risk events read; HTTP [1-9][\d,]* requests$/m)
    assert.match(stdout, /^p99 per interval, HTTP subscriber route .*median [\d.]+, worst [\d.]+; event -> churn-risk event \(ms\): median \d+, worst \d+$/m)
    assert.match(stdout, /^CPU while traffic ran .*ingest \d+%, score \d+%, work \d+%, serve \d+%/m)
    assert.match(stdout, /^growth on the steady part: TOO SHORT TO JUDGE, \d+ samples/m)
    assert.match(stdout, /^allocator of every churn process: jemalloc \(LD_PRELOAD=libjemalloc\.so\.2, as the image\)$/m)
    // Ingest is judged on its RSS beyond DuckDB's own account, which is checked against its limit.
    for (const role of ROLES) assert.match(stdout, new RegExp(`^RSS ${role}${role === 'ingest' ? ' - DuckDB' : ''}\\s+\\d+\\s+\\d+\\s+[+-][\\d.]+\\s+<= [\\d.]+\\s+[+-][\\d.]+\\s+<= [\\d.]+\\s+too short to judge`, 'm'), `RSS ${role} line`)
    for (const group of ['ingest', 'scorer']) assert.match(stdout, new RegExp(`^lag ${group}\\s+[\\d.]+\\s+[\\d.]+\\s+[+-][\\d.]+\\s+<= [\\d.]+\\s+[+-][\\d.]+\\s+<= [\\d.]+\\s+too short to judge`, 'm'), `lag ${group} line`)
    for (const check of ['no role exited before the end', 'chain moving', 'every role ready', 'ingest\'s DuckDB within DUCKDB_MEMORY_LIMIT', 'drained within', 'HTTP errors at most 1%']) {
      assert.match(stdout, new RegExp(`^ok   ${check}`, 'm'), `check passed: ${check}\n${stdout}`)
    }
    assert.match(stdout, /^verdict: PASS \(checks only; growth too short to judge\)$/m)

    const report = JSON.parse(await readFile(path.join(out, 'report.json'), 'utf8')) as {
      mode: string, verdict: string, failures: string[], steady: { judged: boolean }
      samples: Array<{ t: number, rssMb: Record<string, number>, duckdbMb: Record<string, number | undefined>, lag: { ingest: number, scorer: number }, http: { p99: number | null }, e2e: { p99: number | null }, queueDepth: number, ready: Record<string, boolean> }>
      growth: Array<{ series: string, verdict: string }>
    }
    assert.equal(report.mode, 'quick')
    assert.deepEqual(report.failures, [])
    assert.equal(report.steady.judged, false)
    assert.ok(report.growth.every(g => g.verdict === 'too short to judge'), JSON.stringify(report.growth))
    assert.ok(report.samples.length >= 6)
    for (const role of ROLES) assert.ok(report.samples.every(s => s.rssMb[role] !== undefined && s.rssMb[role] > 10), `RSS of ${role} in every sample`)
    assert.ok(report.samples.every(s => (s.duckdbMb.ingest ?? 0) > 0 && (s.duckdbMb.ingest ?? 0) < (s.rssMb.ingest ?? 0)), 'DuckDB\'s buffer manager in every sample, within ingest\'s RSS')
    assert.ok(report.samples.every(s => Number.isInteger(s.lag.ingest) && Number.isInteger(s.lag.scorer) && Number.isInteger(s.queueDepth)))
    assert.ok(report.samples.some(s => s.http.p99 !== null && s.http.p99 > 0), 'HTTP p99 measured')
    assert.ok(report.samples.some(s => s.e2e.p99 !== null && s.e2e.p99 > 0), 'event -> churn-risk p99 measured')

    const png = await readFile(path.join(out, 'soak.png'))
    assert.deepEqual(png.subarray(0, 8), PNG_SIGNATURE, 'soak.png is a PNG')
    assert.ok(png.length > 20_000, `soak.png is ${png.length} bytes: too small to hold the four panels`)
    assert.match(stdout, new RegExp(`^plot: ${out.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/soak\\.png`, 'm'))
    const summary = await readFile(path.join(out, 'summary.md'), 'utf8')
    assert.match(summary, /verdict: PASS/)
    assert.match(summary, /!\[series\]\(soak\.png\)/)
    for (const role of ROLES) assert.ok((await stat(path.join(out, 'logs', `${role}.log`))).size > 0, `${role}.log written`)
  })
})
