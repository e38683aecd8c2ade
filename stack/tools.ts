/**
 * Finds the external programs the local stack needs (a JDK, Maven, redis-server) and says, when
 * one is missing, exactly what to install.
 */
import { readdir, readFile, realpath } from 'node:fs/promises'
import path from 'node:path'
import { StackError } from './errors.ts'
import { exec, which } from './exec.ts'
import type { Logger } from '../core/logger.ts'

export interface Jdk { home: string, java: string, major: number }

export interface ToolEnvironment {
  /** PATH-style search path for executables. */
  searchPath: string
  /** Environment for child processes. */
  env: NodeJS.ProcessEnv
  /** Whether this process may install Debian packages (running as root). */
  isRoot: boolean
  logger: Logger
}

async function readMajor (home: string): Promise<number | undefined> {
  try {
    const release = await readFile(path.join(home, 'release'), 'utf8')
    const match = /^JAVA_VERSION="(\d+)(?:\.(\d+))?/m.exec(release)
    if (match !== null) return match[1] === '1' ? Number(match[2]) : Number(match[1])
  } catch {}
  const result = await exec(path.join(home, 'bin', 'java'), ['-version']).catch(() => undefined)
  const match = result === undefined ? null : /version "(\d+)(?:\.(\d+))?/.exec(result.stderr)
  if (match === null) return undefined
  return match[1] === '1' ? Number(match[2]) : Number(match[1])
}

async function jdkAt (home: string): Promise<Jdk | undefined> {
  const java = path.join(home, 'bin', 'java')
  try {
    await realpath(java)
  } catch {
    return undefined
  }
  const major = await readMajor(home)
  return major === undefined ? undefined : { home, java, major }
}

/** Every JDK this machine offers: the configured home, the one on PATH, and /usr/lib/jvm/*. */
export async function discoverJdks (hint: string | undefined, tools: ToolEnvironment): Promise<Jdk[]> {
  const homes = new Set<string>()
  if (hint !== undefined) homes.add(hint)
  const onPath = await which('java', tools.searchPath)
  if (onPath !== undefined) homes.add(path.dirname(path.dirname(await realpath(onPath))))
  try {
    for (const entry of await readdir('/usr/lib/jvm', { withFileTypes: true })) {
      if (entry.isDirectory()) homes.add(await realpath(path.join('/usr/lib/jvm', entry.name)))
    }
  } catch {}
  const found = new Map<string, Jdk>()
  for (const home of homes) {
    const jdk = await jdkAt(home)
    if (jdk !== undefined) found.set(await realpath(jdk.home), jdk)
  }
  return [...found.values()].sort((a, b) => a.major - b.major)
}

/**
 * The JDK to run a service that needs Java `minimum` or newer. An explicitly configured JDK must
 * qualify; otherwise the oldest qualifying JDK is taken, as the release its service was most
 * tested on.
 */
export async function selectJdk (service: string, minimum: number, javaHome: { path: string | undefined, explicit: boolean }, tools: ToolEnvironment): Promise<Jdk> {
  if (javaHome.explicit && javaHome.path !== undefined) {
    const jdk = await jdkAt(javaHome.path)
    if (jdk !== undefined && jdk.major >= minimum) return jdk
    throw new StackError('CHURN_STACK_TOOL_MISSING', `${service} needs Java ${minimum} or newer, but STACK_JAVA_HOME=${javaHome.path} ${jdk === undefined ? 'holds no bin/java' : `is Java ${jdk.major}`}. Point STACK_JAVA_HOME at a JDK ${minimum}+ or unset it to let the stack look for one.`)
  }
  const jdks = await discoverJdks(javaHome.path, tools)
  const chosen = jdks.find(jdk => jdk.major >= minimum)
  if (chosen !== undefined) return chosen
  const seen = jdks.length === 0 ? 'no JDK was found' : `found only ${jdks.map(j => `Java ${j.major} (${j.home})`).join(', ')}`
  throw new StackError('CHURN_STACK_TOOL_MISSING', `${service} needs Java ${minimum} or newer; ${seen}. Install one (Debian: apt-get install openjdk-${minimum}-jre-headless where available, or a Temurin ${minimum}+ JDK) and put it on PATH or set STACK_JAVA_HOME.`)
}

export async function findMaven (tools: ToolEnvironment): Promise<string> {
  const mvn = await which('mvn', tools.searchPath)
  if (mvn !== undefined) return mvn
  throw new StackError('CHURN_STACK_TOOL_MISSING', 'Maven (mvn) is not on PATH; the local stack fetches Kafka and Apicurio Registry with it. Install it: apt-get install maven (Debian), or download Apache Maven 3.8+ and add its bin/ to PATH.')
}

/** redis-server, installed from Debian's packages when absent and this process is root. */
export async function findRedisServer (tools: ToolEnvironment): Promise<string> {
  const searchPath = tools.searchPath
  const found = await which('redis-server', searchPath)
  if (found !== undefined) return found
  const advice = 'Install it: apt-get install redis-server (Debian/Ubuntu), or build Redis 7+ and put redis-server on PATH.'
  const aptGet = await which('apt-get', searchPath)
  if (!tools.isRoot || aptGet === undefined) {
    throw new StackError('CHURN_STACK_TOOL_MISSING', `redis-server is not installed. ${advice}`)
  }
  tools.logger.info({ package: 'redis-server' }, 'redis-server is missing; installing it with apt-get')
  const env = { ...tools.env, DEBIAN_FRONTEND: 'noninteractive' }
  let result = await exec(aptGet, ['install', '-y', '-q', 'redis-server'], { env })
  if (result.code !== 0) {
    await exec(aptGet, ['update', '-q'], { env })
    result = await exec(aptGet, ['install', '-y', '-q', 'redis-server'], { env })
  }
  const installed = await which('redis-server', searchPath)
  if (result.code === 0 && installed !== undefined) return installed
  throw new StackError('CHURN_STACK_TOOL_MISSING', `redis-server is not installed and apt-get could not install it (exit ${String(result.code)}: ${result.stderr.trim().split('\n').slice(-3).join(' ')}). ${advice}`)
}
