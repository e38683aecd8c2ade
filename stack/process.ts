/**
 * Background service processes and their pid files. A pid file records the pid together with the
 * process's start time (from /proc), so a recycled pid is never mistaken for our service and
 * `stack down` never signals a stranger.
 */
import { spawn } from 'node:child_process'
import { open, readFile, rm, writeFile } from 'node:fs/promises'
import { setTimeout as sleep } from 'node:timers/promises'

export interface PidRecord {
  pid: number
  /** Clock ticks since boot when the process started (field 22 of /proc/<pid>/stat). */
  startTime: string | undefined
  service: string
  /** The address the service was started to serve; a stack never adopts it for another. */
  address: string
  command: string
}

export interface LaunchSpec {
  command: string
  args: readonly string[]
  cwd: string
  env: NodeJS.ProcessEnv
}

async function procStat (pid: number): Promise<{ state: string | undefined, startTime: string | undefined } | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
    // The command name (field 2) may hold spaces and parentheses; fields resume after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return { state: fields[0], startTime: fields[19] }
  } catch {
    return undefined
  }
}

function signalable (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** Whether the process a pid file describes is still the one running under that pid. */
export async function isRunning (record: PidRecord): Promise<boolean> {
  if (!signalable(record.pid)) return false
  const stat = await procStat(record.pid)
  if (stat === undefined) return true
  // A zombie has exited; it only waits for its parent to collect the status.
  if (stat.state === 'Z') return false
  return record.startTime === undefined || stat.startTime === record.startTime
}

export async function readPidFile (file: string): Promise<PidRecord | undefined> {
  try {
    const record = JSON.parse(await readFile(file, 'utf8')) as PidRecord
    return Number.isInteger(record.pid) && record.pid > 0 ? record : undefined
  } catch {
    return undefined
  }
}

/**
 * Starts a long-running process detached from this one (it outlives the CLI), with stdout and
 * stderr appended to `logFile`, and records it in `pidFile`.
 */
export async function startDetached (service: string, address: string, spec: LaunchSpec, logFile: string, pidFile: string): Promise<PidRecord> {
  const log = await open(logFile, 'a')
  try {
    await log.write(`\n--- ${new Date().toISOString()} starting ${service}: ${spec.command} ${spec.args.join(' ')}\n`)
    const child = spawn(spec.command, spec.args, { cwd: spec.cwd, env: spec.env, detached: true, stdio: ['ignore', log.fd, log.fd] })
    const pid = await new Promise<number>((resolve, reject) => {
      child.once('error', reject)
      child.once('spawn', () => resolve(child.pid ?? -1))
    })
    child.unref()
    const record: PidRecord = { pid, startTime: (await procStat(pid))?.startTime, service, address, command: spec.command }
    await writeFile(pidFile, JSON.stringify(record))
    return record
  } finally {
    await log.close()
  }
}

/**
 * Stops a recorded process: SIGTERM, then SIGKILL once `graceMs` has passed. Resolves to how it
 * ended. Signals the whole process group, since services such as Kafka run as their own leader.
 */
export async function stopProcess (record: PidRecord, graceMs: number): Promise<'stopped' | 'killed' | 'gone'> {
  if (!await isRunning(record)) return 'gone'
  const signal = (name: NodeJS.Signals): void => {
    try {
      process.kill(-record.pid, name)
    } catch {
      try { process.kill(record.pid, name) } catch {}
    }
  }
  signal('SIGTERM')
  const deadline = Date.now() + graceMs
  while (Date.now() < deadline) {
    if (!await isRunning(record)) return 'stopped'
    await sleep(100)
  }
  signal('SIGKILL')
  while (await isRunning(record)) await sleep(50)
  return 'killed'
}

export async function removePidFile (file: string): Promise<void> {
  await rm(file, { force: true })
}
