import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'

const EXIT = fileURLToPath(new URL('../../../cli/exit.ts', import.meta.url))
const LOGGER = fileURLToPath(new URL('../../../core/logger.ts', import.meta.url))

/** Runs a script that finishes a "command" with `code` while `holdOpen` keeps its event loop alive (or not). */
async function finish (code: number, holdOpen: boolean): Promise<{ exitCode: number | null, stderr: string }> {
  const script = `
    import { exitIfHeld } from ${JSON.stringify(EXIT)}
    import { createRootLogger } from ${JSON.stringify(LOGGER)}
    const logger = await createRootLogger({ name: 'exit-test' })
    ${holdOpen ? 'setInterval(() => {}, 1000)' : ''}
    process.exitCode = ${code}
    exitIfHeld(logger, ${code}, 300)
  `
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  // A guard, not a timing assertion: a child the function failed to end must not hang the suite.
  const guard = setTimeout(() => child.kill('SIGKILL'), 60_000)
  const exitCode = await new Promise<number | null>(resolve => child.once('exit', resolve))
  clearTimeout(guard)
  return { exitCode, stderr }
}

describe('exitIfHeld', () => {
  it('ends a finished command that something still holds open, with its own code, naming what held it', async () => {
    const { exitCode, stderr } = await finish(3, true)
    assert.equal(exitCode, 3, stderr)
    const line = JSON.parse(stderr.trim().split('\n').at(-1) ?? '{}') as { code?: string, exitCode?: number, resources?: string[] }
    assert.equal(line.code, 'CHURN_EXIT_LINGERING')
    assert.equal(line.exitCode, 3)
    assert.ok(line.resources?.includes('Timeout'), `the interval is named: ${JSON.stringify(line.resources)}`)
  })

  it('stays silent when nothing holds the process: it exits on its own', async () => {
    const { exitCode, stderr } = await finish(0, false)
    assert.equal(exitCode, 0)
    assert.doesNotMatch(stderr, /CHURN_EXIT_LINGERING/)
  })
})
