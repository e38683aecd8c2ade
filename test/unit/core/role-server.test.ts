/**
 * The role server of ingest, scorer and workers (core/role-server.ts), on a real socket:
 * liveness, readiness both ways, the registry's metrics, and 404 for anything else.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { pino } from 'pino'
import { Counter, Registry } from 'prom-client'
import { ROLE_SERVER_ROUTES, startRoleServer } from '../../../core/role-server.ts'
import type { RoleReadiness, RoleServer } from '../../../core/role-server.ts'

describe('role server', () => {
  const registry = new Registry()
  new Counter({ name: 'churn_test_things_total', help: 'Things, for the test.', registers: [registry] }).inc(3)
  let state: RoleReadiness = { ready: true, problems: [] }
  let server: RoleServer
  let base: string

  before(async () => {
    server = await startRoleServer({ port: 0, host: '127.0.0.1', registry, readiness: () => state, logger: pino({ level: 'silent' }) })
    base = `http://127.0.0.1:${server.port}`
  })
  after(async () => { await server.close() })

  it('names its routes', () => {
    assert.deepEqual([...ROLE_SERVER_ROUTES], ['/health', '/ready', '/metrics'])
  })

  it('answers /health with 200 ok', async () => {
    const response = await fetch(`${base}/health`)
    assert.equal(response.status, 200)
    assert.deepEqual(await response.json(), { status: 'ok' })
  })

  it('answers /ready with 200 when ready, 503 with the problems when not', async () => {
    const ready = await fetch(`${base}/ready`)
    assert.equal(ready.status, 200)
    assert.deepEqual(await ready.json(), { status: 'ready' })
    state = { ready: false, problems: ['redis: connection refused'] }
    const notReady = await fetch(`${base}/ready`)
    assert.equal(notReady.status, 503)
    assert.deepEqual(await notReady.json(), { status: 'not ready', problems: ['redis: connection refused'] })
    state = { ready: true, problems: [] }
  })

  it('answers /metrics with the registry in the Prometheus text format', async () => {
    const response = await fetch(`${base}/metrics`)
    assert.equal(response.status, 200)
    assert.equal(response.headers.get('content-type'), registry.contentType)
    assert.match(await response.text(), /^churn_test_things_total 3$/m)
  })

  it('answers 404 for any other path, 405 for another method on a route', async () => {
    for (const url of ['/', '/api/v1/health', '/metrics/x', '/healthz']) {
      const response = await fetch(`${base}${url}`)
      assert.equal(response.status, 404, url)
      await response.body?.cancel()
    }
    const post = await fetch(`${base}/health`, { method: 'POST' })
    assert.equal(post.status, 405)
    await post.body?.cancel()
  })

  it('stops listening on close', async () => {
    const other = await startRoleServer({ port: 0, host: '127.0.0.1', registry, readiness: () => state, logger: pino({ level: 'silent' }) })
    const url = `http://127.0.0.1:${other.port}/health`
    assert.equal((await fetch(url)).status, 200)
    await other.close()
    await assert.rejects(fetch(url))
  })
})
