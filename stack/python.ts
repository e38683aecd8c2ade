/**
 * The project-local Python environment, `<STACK_DIR>/venv`, built from `python/requirements.txt`
 * with the machine's python3, pip and uv. It runs the stack's MLflow tracking server and the
 * scikit-learn peer of the training benchmark.
 *
 * A venv cannot be built elsewhere and renamed into place (pip writes its own path into the
 * scripts it installs), so it is built where it lives, and a stamp written last marks it
 * complete: the stamp holds the hash of the requirements, so an interrupted build or a changed
 * file both mean "build again from nothing". A lock file keeps two processes (`stack install` and
 * a benchmark, say) from building it at once.
 */
import { spawn } from 'node:child_process'
import { createHash, randomUUID } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import { link, mkdir, readFile, realpath, rename, rm, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { StackError } from './errors.ts'
import { exec, which } from './exec.ts'
import type { ToolEnvironment } from './tools.ts'

/** The pinned requirements this checkout's venv is built from. */
export const REQUIREMENTS = path.join(import.meta.dirname, '..', 'python', 'requirements.txt')

/** numpy 2.4 and scikit-learn 1.9 need Python 3.11; mlflow 3 needs 3.10. */
const MIN_PYTHON: readonly [number, number] = [3, 11]
const STAMP = '.churn-stamp.json'
/** A cold build downloads some 250 MB of wheels; a waiter gives up after this long. */
const LOCK_WAIT_MS = 30 * 60_000

interface Stamp { requirements: string, python: string, builtAt: string }

export interface PythonEnvOptions {
  /** The stack folder (`STACK_DIR`); the venv is its `venv/` folder, the build log `logs/python-env.log`. */
  paths: { root: string }
  tools: ToolEnvironment
  /** @defaultValue `python/requirements.txt` of this checkout */
  requirements?: string
}

/** The exact version `requirements` pins for `name` (`name==version`). */
export async function pinnedRequirement (name: string, requirements = REQUIREMENTS): Promise<string> {
  const text = await readFile(requirements, 'utf8')
  const version = new RegExp(`^${name.replace(/[.-]/g, '[.-]')}==(\\S+)\\s*$`, 'im').exec(text)?.[1]
  if (version === undefined) throw new Error(`${requirements} does not pin ${name} with ==`)
  return version
}

export function venvDir (paths: { root: string }): string {
  return path.join(paths.root, 'venv')
}

/** The venv's interpreter; it exists and is complete only once `ensurePythonEnv` has returned. */
export function pythonPath (paths: { root: string }): string {
  return path.join(venvDir(paths), 'bin', 'python')
}

/**
 * The environment Python children run in: without PYTHONPATH/PYTHONHOME, which would mix another
 * installation's modules into the venv, and unbuffered, so logs and progress arrive as written.
 */
export function pythonEnvironment (env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const { PYTHONPATH: _path, PYTHONHOME: _home, ...rest } = env
  return { ...rest, PYTHONUNBUFFERED: '1', PIP_DISABLE_PIP_VERSION_CHECK: '1', PIP_NO_INPUT: '1' }
}

/**
 * The venv's interpreter, building the venv first when it is missing, incomplete or built from
 * other requirements. Safe to call from several processes at once.
 */
export async function ensurePythonEnv (options: PythonEnvOptions): Promise<string> {
  const requirements = options.requirements ?? REQUIREMENTS
  const hash = createHash('sha256').update(await readFile(requirements)).digest('hex')
  const python = pythonPath(options.paths)
  if (await isCurrent(options.paths, hash)) return python
  await mkdir(options.paths.root, { recursive: true })
  return await withLock(path.join(options.paths.root, 'venv.lock'), async () => {
    // Whoever held the lock before may just have built it.
    if (await isCurrent(options.paths, hash)) return python
    await build(options.paths, requirements, hash, options.tools)
    return python
  })
}

async function isCurrent (paths: { root: string }, hash: string): Promise<boolean> {
  try {
    const stamp = JSON.parse(await readFile(path.join(venvDir(paths), STAMP), 'utf8')) as Stamp
    // The venv's python links to the interpreter it was made from; that one may be gone.
    await realpath(pythonPath(paths))
    return stamp.requirements === hash
  } catch {
    return false
  }
}

async function build (paths: { root: string }, requirements: string, hash: string, tools: ToolEnvironment): Promise<void> {
  const venv = venvDir(paths)
  const logFile = path.join(paths.root, 'logs', 'python-env.log')
  const logger = tools.logger.child({ venv })
  const env = pythonEnvironment(tools.env)
  const base = await findPython(tools)
  const started = Date.now()
  logger.info({ python: base.path, version: base.version }, 'creating the Python environment')
  await rm(venv, { recursive: true, force: true })
  await mkdir(path.dirname(logFile), { recursive: true })
  const created = await exec(base.path, ['-m', 'venv', venv], { env })
  if (created.code !== 0) {
    const output = lastLines((created.stderr || created.stdout).trim(), 5)
    // Debian ships venv and ensurepip apart from python3.
    if (/ensurepip|No module named venv/.test(output)) {
      throw new StackError('CHURN_STACK_TOOL_MISSING', `${base.path} cannot create a virtual environment: its venv module or ensurepip is missing. Install it: apt-get install python3-venv (Debian/Ubuntu).\n${output}`)
    }
    throw new StackError('CHURN_STACK_PYTHON_ENV_FAILED', `${base.path} -m venv ${venv} failed (exit ${String(created.code)}):\n${output}`)
  }
  // pip installs uv, and uv the rest: the same packages, with its parallel downloads and
  // unpacking, in less than half pip's time. Byte-compiled up front, because the server imports
  // some 8,000 modules and a machine may forbid writing bytecode on import (PYTHONDONTWRITEBYTECODE).
  const python = pythonPath(paths)
  const uv = await pinnedRequirement('uv', requirements)
  const install = async (tool: string, args: readonly string[], onLine: (line: string) => void = () => {}): Promise<void> => {
    const result = await runLogged(python, args, env, logFile, onLine)
    if (result.code === 0) return
    throw new StackError('CHURN_STACK_PYTHON_ENV_FAILED', `${tool} could not install ${requirements} into ${venv} (exit ${String(result.code)}). Is PyPI reachable, and does every pin have a wheel for Python ${base.version}? See ${logFile}:\n${result.tail}`, { retriable: true, context: { logFile } })
  }
  logger.info({ uv }, 'installing uv with pip')
  await install('pip', ['-m', 'pip', 'install', '--only-binary=:all:', '--progress-bar', 'off', `uv==${uv}`])
  logger.info({ requirements }, 'installing the pinned requirements with uv (wheels only)')
  await install('uv', ['-m', 'uv', 'pip', 'install', '--python', python, '--only-binary', ':all:', '--compile-bytecode', '-r', requirements], (line) => {
    if (/^(Resolved|Prepared|Installed|Bytecode compiled) \d+/.test(line)) logger.info(line)
  })
  const stamp: Stamp = { requirements: hash, python: `${base.version} ${base.path}`, builtAt: new Date().toISOString() }
  await writeFile(path.join(venv, `${STAMP}.tmp`), JSON.stringify(stamp))
  await rename(path.join(venv, `${STAMP}.tmp`), path.join(venv, STAMP))
  logger.info({ ms: Date.now() - started }, 'Python environment ready')
}

/** A python3 of at least `MIN_PYTHON` on the search path. */
export async function findPython (tools: ToolEnvironment): Promise<{ path: string, version: string }> {
  const seen: string[] = []
  for (const name of ['python3', 'python3.13', 'python3.12', 'python3.11']) {
    const candidate = await which(name, tools.searchPath)
    if (candidate === undefined) continue
    const result = await exec(candidate, ['-c', 'import sys; print("%d.%d.%d" % sys.version_info[:3])'], { env: pythonEnvironment(tools.env) }).catch(() => undefined)
    const version = result?.code === 0 ? result.stdout.trim() : undefined
    if (version === undefined) continue
    const [major = 0, minor = 0] = version.split('.').map(Number)
    if (major > MIN_PYTHON[0] || (major === MIN_PYTHON[0] && minor >= MIN_PYTHON[1])) return { path: candidate, version }
    seen.push(`${candidate} (${version})`)
  }
  const found = seen.length === 0 ? 'none is on PATH' : `found only ${seen.join(', ')}`
  throw new StackError('CHURN_STACK_TOOL_MISSING', `The stack's Python environment (MLflow, scikit-learn) needs Python ${MIN_PYTHON.join('.')} or newer; ${found}. Install one: apt-get install python3 python3-venv (Debian 12 has 3.11), and put it on PATH.`)
}

/** Runs a command with its output appended to `logFile`, each line also shown to `onLine`. */
async function runLogged (command: string, args: readonly string[], env: NodeJS.ProcessEnv, logFile: string, onLine: (line: string) => void): Promise<{ code: number | null, tail: string }> {
  const log = createWriteStream(logFile, { flags: 'a' })
  log.write(`\n--- ${new Date().toISOString()} ${command} ${args.join(' ')}\n`)
  const tail: string[] = []
  try {
    return await new Promise((resolve, reject) => {
      const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] })
      let partial = ''
      const consume = (chunk: Buffer): void => {
        log.write(chunk)
        const lines = (partial + chunk.toString('utf8')).split('\n')
        partial = lines.pop() ?? ''
        for (const line of lines) {
          onLine(line)
          tail.push(line)
          if (tail.length > 15) tail.shift()
        }
      }
      child.stdout.on('data', consume)
      child.stderr.on('data', consume)
      child.once('error', reject)
      child.once('close', code => resolve({ code, tail: [...tail, partial].join('\n').trim() }))
    })
  } finally {
    await new Promise(resolve => log.end(resolve))
  }
}

function lastLines (text: string, count: number): string {
  return text.split('\n').slice(-count).join('\n')
}

function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/**
 * Runs `fn` holding a lock file that names its holder's pid. The file appears whole (written
 * aside, then hard-linked into place, which fails if it exists), and a lock whose holder has
 * died is taken over.
 */
async function withLock<T> (file: string, fn: () => Promise<T>): Promise<T> {
  const mine = `${file}.${process.pid}.${randomUUID()}`
  await writeFile(mine, String(process.pid))
  const deadline = Date.now() + LOCK_WAIT_MS
  try {
    for (;;) {
      try {
        await link(mine, file)
        break
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
      }
      const holder = Number(await readFile(file, 'utf8').catch(() => ''))
      if (!Number.isInteger(holder) || holder <= 0 || !alive(holder)) {
        await rm(file, { force: true })
        continue
      }
      if (Date.now() > deadline) {
        throw new StackError('CHURN_STACK_PYTHON_ENV_FAILED', `Process ${holder} has been building the Python environment for over ${LOCK_WAIT_MS / 60_000} minutes (${file}); stop it or delete the lock file.`)
      }
      await sleep(500)
    }
  } finally {
    await rm(mine, { force: true })
  }
  try {
    return await fn()
  } finally {
    await rm(file, { force: true })
  }
}
