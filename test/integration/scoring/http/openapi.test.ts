import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { httpApp } from '../../../helpers/http.ts'

interface Operation { security?: Array<Record<string, string[]>>, responses?: Record<string, unknown>, tags?: string[] }
interface Document {
  openapi: string
  info: { title: string, version: string }
  paths: Record<string, Record<string, Operation>>
  components: { securitySchemes: Record<string, Record<string, string>> }
}

describe('OpenAPI docs', () => {
  it('serves the interactive page at /docs without a key', async t => {
    const { app } = await httpApp(t)
    let response = await app.inject({ method: 'GET', url: '/docs' })
    if (response.statusCode === 302) response = await app.inject({ method: 'GET', url: String(response.headers.location) })
    assert.equal(response.statusCode, 200)
    assert.match(String(response.headers['content-type']), /^text\/html/)
    assert.match(response.body, /swagger/i)
  })

  it('serves an OpenAPI 3.1 document with the API-key scheme on keyed routes', async t => {
    const { app } = await httpApp(t, {
      extend: keyed => { keyed.get('/api/v1/test-keyed', { schema: { tags: ['predictions'], response: { 200: { type: 'object', properties: { ok: { type: 'boolean' } } } } } }, () => ({ ok: true })) }
    })
    const response = await app.inject({ method: 'GET', url: '/docs/json' })
    assert.equal(response.statusCode, 200)
    const doc = response.json<Document>()
    assert.equal(doc.openapi, '3.1.0')
    assert.equal(doc.info.title, 'Churn scorer API')
    assert.deepEqual(doc.components.securitySchemes.apiKey, { type: 'apiKey', in: 'header', name: 'x-api-key', description: 'One of the keys in API_KEYS.' })
    assert.equal(doc.components.securitySchemes.bearer?.scheme, 'bearer')

    const keyed = doc.paths['/api/v1/test-keyed']?.get
    assert.deepEqual(keyed?.security, [{ apiKey: [] }, { bearer: [] }])
    assert.ok(keyed?.responses?.['401'] !== undefined && keyed.responses['429'] !== undefined, 'documents the auth answers')
    for (const path of ['/api/v1/health', '/api/v1/ready', '/metrics']) {
      assert.deepEqual(doc.paths[path]?.get?.security, [], path)
      assert.deepEqual(doc.paths[path]?.get?.tags, ['operations'], path)
    }
    assert.deepEqual(Object.keys(doc.paths).filter(p => p.startsWith('/queues') || p.startsWith('/docs')), [])
  })
})
