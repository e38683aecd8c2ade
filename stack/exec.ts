/** Running short helper commands (java -version, mvn, apt-get) and finding executables. */
import { spawn } from 'node:child_process'
import { access, constants, readFile } from 'node:fs/promises'
import path from 'node:path'

export interface ExecResult { code: number | null, stdout: string, stderr: string }

/** Runs a command to completion, capturing its output; never throws for a non-zero exit. */
export async function exec (command: string, args: readonly string[], options: { cwd?: string, env?: NodeJS.ProcessEnv, timeoutMs?: number } = {}): Promise<ExecResult> {
  return await new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env: options.env, stdio: ['ignore', 'pipe', 'pipe'], timeout: options.timeoutMs })
    const out: Buffer[] = []
    const err: Buffer[] = []
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk))
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk))
    child.once('error', reject)
    child.once('close', (code) => resolve({ code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') }))
  })
}

/** The absolute path of `name` on `searchPath` (a PATH-style string), if executable there. */
export async function which (name: string, searchPath: string): Promise<string | undefined> {
  for (const dir of searchPath.split(path.delimiter).filter(d => d !== '')) {
    const candidate = path.join(dir, name)
    try {
      await access(candidate, constants.X_OK)
      return candidate
    } catch {}
  }
  return undefined
}

/** The last `lines` lines of a log file, for error messages; empty when it cannot be read. */
export async function tailFile (file: string, lines = 20): Promise<string> {
  try {
    const text = await readFile(file, 'utf8')
    return text.trimEnd().split('\n').slice(-lines).join('\n')
  } catch {
    return ''
  }
}
