/**
 * Adds the lockfile entries that npm leaves out when the registry it resolved against omits some
 * platform builds (this machine kind's npm mirror serves only the builds for its own platform):
 * without them `npm ci` refuses the lockfile ("Missing: @duckdb/node-bindings-darwin-arm64@ from
 * lock file"). Each added entry names only the version and the platform it is for, which is all
 * `npm ci` reads before skipping a build for another platform.
 *
 * Run after every `npm install` that changes the lockfile: node .ci/complete-lockfile.ts
 */
import { readFile, writeFile } from 'node:fs/promises'
import path from 'node:path'

interface LockEntry {
  version?: string
  optional?: boolean
  os?: string[]
  cpu?: string[]
  libc?: string[]
  optionalDependencies?: Record<string, string>
}

const OS = ['darwin', 'linux', 'win32', 'freebsd', 'android', 'openbsd', 'sunos', 'aix']
const CPU = ['x64', 'arm64', 'arm', 'ia32', 'ppc64', 's390x', 'riscv64', 'loong64']

/** The platform a build package is for, from its name (`…-linux-x64-musl`, `…-win32-arm64`). */
function platformOf (name: string): Pick<LockEntry, 'os' | 'cpu' | 'libc'> | undefined {
  const parts = name.split('/').pop()?.split('-') ?? []
  const os = parts.find(p => OS.includes(p))
  const cpu = parts.find(p => CPU.includes(p))
  if (os === undefined || cpu === undefined) return undefined
  const entry: Pick<LockEntry, 'os' | 'cpu' | 'libc'> = { os: [os], cpu: [cpu] }
  if (parts.includes('musl')) entry.libc = ['musl']
  else if (os === 'linux' && parts.includes('gnu')) entry.libc = ['glibc']
  return entry
}

const file = path.resolve(import.meta.dirname, '..', 'package-lock.json')
const lock = JSON.parse(await readFile(file, 'utf8')) as { packages: Record<string, LockEntry> }
const added: string[] = []
for (const [location, entry] of Object.entries(lock.packages)) {
  for (const [name, version] of Object.entries(entry.optionalDependencies ?? {})) {
    const nested = `${location === '' ? '' : `${location}/`}node_modules/${name}`
    if (lock.packages[nested] !== undefined || lock.packages[`node_modules/${name}`] !== undefined) continue
    const platform = platformOf(name)
    if (platform === undefined) throw new Error(`${name} is missing from the lockfile and its name names no platform; resolve it against a full registry`)
    lock.packages[`node_modules/${name}`] = { version, optional: true, ...platform }
    added.push(`${name}@${version}`)
  }
}
lock.packages = Object.fromEntries(Object.entries(lock.packages).sort(([a], [b]) => a === '' ? -1 : b === '' ? 1 : a.localeCompare(b)))
await writeFile(file, `${JSON.stringify(lock, null, 2)}\n`)
process.stdout.write(added.length === 0 ? 'lockfile complete\n' : `added ${added.length} platform entries: ${added.join(', ')}\n`)
