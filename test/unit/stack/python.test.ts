import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { pinnedRequirement, pythonEnvironment, pythonPath, REQUIREMENTS, venvDir } from '../../../stack/python.ts'

describe('python/requirements.txt', () => {
  it('pins every requirement exactly, so a venv built from it is the same everywhere', async () => {
    const lines = (await readFile(REQUIREMENTS, 'utf8')).split('\n').map(l => l.trim()).filter(l => l !== '' && !l.startsWith('#'))
    assert.ok(lines.length >= 4)
    for (const line of lines) assert.match(line, /^[A-Za-z0-9._-]+==\d+(\.\d+)+$/)
  })

  it('pins the server, the benchmark peer and the installer', async () => {
    assert.match(await pinnedRequirement('mlflow'), /^3\.\d+\.\d+$/)
    assert.match(await pinnedRequirement('scikit-learn'), /^1\.\d+\.\d+$/)
    assert.match(await pinnedRequirement('numpy'), /^2\.\d+\.\d+$/)
    assert.match(await pinnedRequirement('uv'), /^0\.\d+\.\d+$/)
    await assert.rejects(pinnedRequirement('mlflow-skinny'), /does not pin mlflow-skinny/)
  })
})

describe('pythonPath', () => {
  it('is the interpreter of the venv in the stack folder', () => {
    assert.equal(venvDir({ root: '/w/.stack' }), '/w/.stack/venv')
    assert.equal(pythonPath({ root: '/w/.stack' }), '/w/.stack/venv/bin/python')
  })
})

describe('pythonEnvironment', () => {
  it('keeps other installations\' modules out of the venv and output unbuffered', () => {
    const env = pythonEnvironment({ PATH: '/usr/bin', PYTHONPATH: '/elsewhere', PYTHONHOME: '/opt/py' })
    assert.equal(env.PATH, '/usr/bin')
    assert.equal(env.PYTHONPATH, undefined)
    assert.equal(env.PYTHONHOME, undefined)
    assert.equal(env.PYTHONUNBUFFERED, '1')
  })
})
