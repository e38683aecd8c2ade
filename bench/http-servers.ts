/**
 * The two servers `npm run bench:http` measures, each in a process of its own as it runs in
 * production (so neither shares an event loop with the load generator): this project's
 * `churn serve` (`node cli/main.ts serve` with the benchmark's environment) and the FastAPI
 * reference (`peers/fastapi_server.py` on the venv's Python). Their logs go to files, so the
 * benchmark process spends no CPU reading them; the tail is shown when a server fails to start.
 */
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { open, readFile } from 'node:fs/promises'
import net from 'node:net'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { pythonEnvironment } from '../stack/index.ts'

const CLI = path.resolve(import.meta.dirname, '../cli/main.ts')
const PEER = path.resolve(import.meta.dirname, 'peers/fastapi_server.py')
/** Linux's USER_HZ: /proc/<pid>/stat counts CPU time in these ticks. */
const TICKS_PER_SECOND = 100

export interface Server {
  name: string
  port: number
  process: ChildProcess
  log: string
  /** CPU seconds (user + system) the process has used so far. */
  cpuSeconds: () => Promise<number>
  stop: () => Promise<void>
}

/** A port nothing listens on now (the OS picks it; a race with another process is unlikely on loopback). */
export async function freePort (): Promise<number> {
  const server = net.createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as net.AddressInfo
  server.close()
  await once(server, 'close')
  return port
}

async function cpuOf (pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
  // Fields after the command name (which may hold spaces), counted from the state field (3rd).
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND
}

async function tail (file: string): Promise<string> {
  const text = await readFile(file, 'utf8').catch(() => '')
  return text.trim().split('\n').slice(-20).join('\n')
}

async function start (name: string, command: string, args: string[], env: NodeJS.ProcessEnv, log: string, port: number, ready: () => Promise<boolean>, timeoutMs: number): Promise<Server> {
  const file = await open(log, 'a')
  const child = spawn(command, args, { env, stdio: ['ignore', file.fd, file.fd] })
  await file.close()
  let exited: string | undefined
  child.once('exit', (code, signal) => { exited = `exited (${signal ?? String(code)})` })
  const server: Server = {
    name,
    port,
    process: child,
    log,
    cpuSeconds: async () => await cpuOf(child.pid as number),
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return
      const gone = once(child, 'exit')
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000)
      await gone
      clearTimeout(timer)
    }
  }
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (exited !== undefined) throw new Error(`${name} ${exited} before answering; its log ${log}:\n${await tail(log)}`)
    if (await ready().catch(() => false)) return server
    if (Date.now() > deadline) {
      await server.stop()
      throw new Error(`${name} did not answer within ${timeoutMs / 1000} s; its log ${log}:\n${await tail(log)}`)
    }
    await sleep(200)
  }
}

/** `churn serve` as the CLI runs it, answering `probe` (a keyed request) with 200 before this resolves. */
export async function startChurnServe (options: { env: Record<string, string | undefined>, port: number, log: string, probe: { path: string, headers: Record<string, string> } }): Promise<Server> {
  const { port, probe } = options
  const ready = async (): Promise<boolean> => {
    const response = await fetch(`http://127.0.0.1:${port}${probe.path}`, { headers: probe.headers })
    await response.body?.cancel()
    return response.status === 200
  }
  return await start('churn serve', process.execPath, [CLI, 'serve'], options.env, options.log, port, ready, 60_000)
}

/** The FastAPI reference: fits its forest, then serves; resolves once `/api/v1/health` answers. */
export async function startReference (options: { python: string, spec: Record<string, unknown> & { port: number }, log: string }): Promise<Server> {
  const { port } = options.spec
  const ready = async (): Promise<boolean> => {
    const response = await fetch(`http://127.0.0.1:${port}/api/v1/health`)
    await response.body?.cancel()
    return response.status === 200
  }
  return await start('FastAPI reference', options.python, [PEER, JSON.stringify(options.spec)], pythonEnvironment(process.env), options.log, port, ready, 180_000)
}
