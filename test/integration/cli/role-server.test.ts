/**
 * `churn work` with ROLE_HTTP_PORT set, as its own process (the workers pod): the role server
 * answers /health, /ready once the workers run, and /metrics with the campaign counters per channel
 * and the process's default metrics; SIGTERM stops it cleanly and closes the port.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { createServer } from 'node:net'
import path from 'node:path'
import { createInterface } from 'node:readline'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { CHANNELS } from '../../../scoring/campaign.ts'
import { isolatedConfig } from '../../helpers/context.ts'

const CLI = path.resolve(import.meta.dirname, '../../../cli/main.ts')

async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise<void>(resolve => server.close(() => { resolve() }))
  return port
}

async function get (url: string): Promise<{ status: number, text: string } | undefined> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(2000) })
    return { status: response.status, text: await response.text() }
  } catch {
    return undefined
  }
}

describe('churn work with ROLE_HTTP_PORT', () => {
  let cleanup: () => Promise<void>
  let env: Record<string, string | undefined>
  let port: number

  before(async () => {
    port = await freePort()
    const isolated = await isolatedConfig({ ROLE_HTTP_PORT: String(port), HTTP_HOST: '127.0.0.1', LOG_LEVEL: 'info', LOG_FORMAT: 'json' }, 'role-server')
    env = isolated.env
    cleanup = isolated.cleanup
  })
  after(async () => { await cleanup() })

  it('serves /health, /ready and the campaign counters on /metrics, and stops on SIGTERM', async () => {
    const child = spawn(process.execPath, [CLI, 'work'], { env, stdio: ['ignore', 'pipe', 'pipe'] })
    const log: string[] = []
    createInterface({ input: child.stderr }).on('line', line => { if (log.length < 40) log.push(line) })
    let stdout = ''
    child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
    const exited = new Promise<number | null>(resolve => child.once('exit', code => { resolve(code) }))
    const base = `http://127.0.0.1:${port}`
    try {
      const deadline = Date.now() + 20_000
      let ready: { status: number, text: string } | undefined
      while ((ready = await get(`${base}/ready`))?.status !== 200) {
        if (Date.now() > deadline) throw new Error(`/ready did not answer 200 within 20 s (last: ${JSON.stringify(ready)})\n${log.join('\n')}`)
        await sleep(100)
      }
      assert.deepEqual(JSON.parse(ready?.text ?? ''), { status: 'ready' })
      const health = await get(`${base}/health`)
      assert.equal(health?.status, 200)
      const metrics = await get(`${base}/metrics`)
      assert.equal(metrics?.status, 200)
      const text = metrics?.text ?? ''
      for (const channel of CHANNELS) {
        for (const result of ['sent', 'skipped_opted_out', 'failed_permanent']) {
          assert.match(text, new RegExp(`^churn_campaign_deliveries_total\\{channel="${channel}",result="${result}",role="workers"\\} 0$`, 'm'))
        }
        assert.match(text, new RegExp(`^churn_campaign_attempts_failed_total\\{channel="${channel}",role="workers"\\} 0$`, 'm'))
      }
      assert.match(text, /^churn_campaign_workers_running\{role="workers"\} 1$/m)
      assert.match(text, /^process_cpu_user_seconds_total\{role="workers"\} /m)
      assert.equal((await get(`${base}/api/v1/health`))?.status, 404)
    } finally {
      child.kill('SIGTERM')
    }
    assert.equal(await exited, 0, log.join('\n'))
    assert.match(stdout, /sent/)
    assert.equal(await get(`${base}/health`), undefined, 'the port is closed after stop')
  })
})
