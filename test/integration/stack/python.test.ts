import { after, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { ensurePythonEnv, pinnedRequirement, venvDir } from '../../../stack/python.ts'
import { tools } from '../../helpers/context.ts'

const run = promisify(execFile)

/** Whether the venv's python imports `module`. */
async function imports (python: string, module: string): Promise<boolean> {
  return await run(python, ['-c', `import ${module}`]).then(() => true, () => false)
}

const exists = async (file: string): Promise<boolean> => await stat(file).then(() => true, () => false)

describe('ensurePythonEnv', () => {
  it('builds the venv once, rebuilds it when the requirements change or a build did not finish', async () => {
    // A small requirements file of its own: the same machinery as the stack's, in seconds.
    const root = await mkdtemp(path.join(os.tmpdir(), 'churn-venv-'))
    after(async () => { await rm(root, { recursive: true, force: true }) })
    const requirements = path.join(root, 'requirements.txt')
    const uv = `uv==${await pinnedRequirement('uv')}\n`
    await writeFile(requirements, `${uv}six==1.17.0\n`)
    const options = { paths: { root }, tools, requirements }

    const python = await ensurePythonEnv(options)
    assert.equal(python, path.join(root, 'venv', 'bin', 'python'))
    assert.ok(await imports(python, 'six'))

    // Current: nothing is rebuilt (a file of ours inside the venv survives), and it is quick.
    const marker = path.join(venvDir({ root }), 'marker')
    await writeFile(marker, '')
    const started = Date.now()
    assert.equal(await ensurePythonEnv(options), python)
    assert.ok(Date.now() - started < 2000, `a current venv took ${Date.now() - started} ms to confirm`)
    assert.ok(await exists(marker))

    await writeFile(requirements, `${uv}six==1.17.0\nidna==3.10\n`)
    await ensurePythonEnv(options)
    assert.ok(!await exists(marker), 'changed requirements must rebuild the venv from nothing')
    assert.ok(await imports(python, 'idna'))

    // A build that stopped before its stamp was written is never taken for a finished one.
    await writeFile(marker, '')
    await rm(path.join(venvDir({ root }), '.churn-stamp.json'))
    await ensurePythonEnv(options)
    assert.ok(!await exists(marker), 'an unstamped venv must be rebuilt')
    assert.ok(await imports(python, 'idna'))
  })

  describe('when a pin has no wheel', () => {
    it('fails with CHURN_STACK_PYTHON_ENV_FAILED, quoting the installer and naming its log', async () => {
      const root = await mkdtemp(path.join(os.tmpdir(), 'churn-venv-'))
      after(async () => { await rm(root, { recursive: true, force: true }) })
      const requirements = path.join(root, 'requirements.txt')
      await writeFile(requirements, `uv==${await pinnedRequirement('uv')}\nsix==0.0.0\n`)
      await assert.rejects(ensurePythonEnv({ paths: { root }, tools, requirements }), (error: Error & { code?: string }) => {
        assert.equal(error.code, 'CHURN_STACK_PYTHON_ENV_FAILED')
        assert.match(error.message, /uv could not install .*requirements\.txt .*See .*python-env\.log:\n.*six/s)
        return true
      })
      assert.ok(!await exists(path.join(venvDir({ root }), '.churn-stamp.json')))
    })
  })
})
