import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { readdir, readFile } from 'node:fs/promises'
import path from 'node:path'
import { ChurnError, errorCode } from '../../../core/errors.ts'

const root = path.resolve(import.meta.dirname, '../../..')

/** Every `*_ERROR_CODES` tuple exported by a top folder's `errors.ts`. */
async function declaredCodes (): Promise<Map<string, string>> {
  const codes = new Map<string, string>()
  for (const entry of await readdir(root, { withFileTypes: true })) {
    if (!entry.isDirectory() || entry.name.startsWith('.') || entry.name === 'node_modules') continue
    const file = path.join(root, entry.name, 'errors.ts')
    const module = await import(file).catch(() => undefined) as Record<string, unknown> | undefined
    if (module === undefined) continue
    for (const [name, value] of Object.entries(module)) {
      if (!name.endsWith('_ERROR_CODES') || !Array.isArray(value)) continue
      for (const code of value as string[]) {
        assert.ok(!codes.has(code), `${code} is declared twice (${codes.get(code) ?? ''} and ${entry.name})`)
        codes.set(code, entry.name)
      }
    }
  }
  return codes
}

describe('error codes', () => {
  it('are declared by the folders that raise them', async () => {
    const codes = await declaredCodes()
    for (const folder of ['config', 'cli', 'stack', 'schemas']) {
      assert.ok([...codes.values()].includes(folder), `${folder}/errors.ts declares no codes`)
    }
  })

  it('are CHURN_-prefixed upper snake case', async () => {
    for (const code of (await declaredCodes()).keys()) {
      assert.match(code, /^CHURN_[A-Z]+(_[A-Z]+)+$/)
    }
  })

  it('are each listed in docs/errors.md, which lists no others', async () => {
    const codes = await declaredCodes()
    const doc = await readFile(path.join(root, 'docs', 'errors.md'), 'utf8')
    const documented = new Set([...doc.matchAll(/^\| `(CHURN_[A-Z_]+)` \|/gm)].map(m => m[1]))
    assert.deepEqual([...codes.keys()].filter(c => !documented.has(c)), [], 'codes missing from docs/errors.md')
    assert.deepEqual([...documented].filter(c => c !== undefined && !codes.has(c)), [], 'docs/errors.md lists codes nobody declares')
  })
})

describe('ChurnError', () => {
  it('carries its code, retriable flag, cause and context fields', () => {
    const cause = new Error('socket hang up')
    const error = new ChurnError('CHURN_TEST_THING', 'it broke', { cause, retriable: true, context: { topic: 't', partition: 3 } })
    assert.equal(error.code, 'CHURN_TEST_THING')
    assert.equal(error.retriable, true)
    assert.equal(error.cause, cause)
    assert.deepEqual({ ...error }, { name: 'ChurnError', code: 'CHURN_TEST_THING', retriable: true, topic: 't', partition: 3 })
  })

  it('does not let context overwrite its own fields', () => {
    const error = new ChurnError('CHURN_TEST_THING', 'it broke', { context: { code: 'OTHER', message: 'x' } })
    assert.equal(error.code, 'CHURN_TEST_THING')
    assert.equal(error.message, 'it broke')
  })

  it('is not retriable unless said so', () => {
    assert.equal(new ChurnError('CHURN_TEST_THING', 'x').retriable, false)
  })
})

describe('errorCode', () => {
  it('reads the code of errors and error-shaped objects that crossed a boundary', () => {
    assert.equal(errorCode(new ChurnError('CHURN_TEST_THING', 'x')), 'CHURN_TEST_THING')
    assert.equal(errorCode({ code: 'ECONNREFUSED' }), 'ECONNREFUSED')
    assert.equal(errorCode({ code: 42 }), undefined)
    assert.equal(errorCode('boom'), undefined)
    assert.equal(errorCode(null), undefined)
  })
})
