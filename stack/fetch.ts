/**
 * Fetches a service's distribution from Maven Central with `mvn` into the download cache, and
 * proves what landed is whole before the service is started from it.
 *
 * Three guards against a corrupt or half-finished download:
 * - Maven runs with strict checksums (`-C`), so a download that does not match Central's
 *   checksum fails instead of landing;
 * - before resolving, every artifact in the local Maven repository is checked against the
 *   `.sha1` Maven stored beside it, and a mismatch is deleted so Maven fetches it again;
 * - the distribution is resolved into a scratch folder and renamed into place only after a
 *   manifest (every file and its size) has been written, so an interrupted fetch never looks
 *   complete, and a file truncated later is noticed on the next `stack up`.
 */
import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { mkdir, readdir, readFile, rename, rm, stat, unlink, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { StackError } from './errors.ts'
import { exec } from './exec.ts'
import type { Logger } from '../core/logger.ts'

export interface Distribution {
  /** Short name, e.g. `kafka`; also the Maven profile that resolves it. */
  name: string
  version: string
}

export interface FetchOptions {
  /** Root of the download cache (`<STACK_DIR>/cache`). */
  cacheDir: string
  pom: string
  mvn: string
  env: NodeJS.ProcessEnv
  logger: Logger
}

const MANIFEST = '.complete.json'

interface Manifest { name: string, version: string, files: Array<[string, number]> }

export function distributionDir (cacheDir: string, dist: Distribution): string {
  return path.join(cacheDir, 'dist', `${dist.name}-${dist.version}`)
}

async function listFiles (root: string, dir = root): Promise<string[]> {
  const files: string[] = []
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name)
    if (entry.isDirectory()) files.push(...await listFiles(root, full))
    else if (entry.isFile()) files.push(path.relative(root, full))
  }
  return files.sort()
}

/** Whether `dir` holds a complete distribution: its manifest, and every file at its size. */
export async function isComplete (dir: string): Promise<boolean> {
  let manifest: Manifest
  try {
    manifest = JSON.parse(await readFile(path.join(dir, MANIFEST), 'utf8')) as Manifest
  } catch {
    return false
  }
  if (!Array.isArray(manifest.files) || manifest.files.length === 0) return false
  for (const [file, size] of manifest.files) {
    const info = await stat(path.join(dir, file)).catch(() => undefined)
    if (info?.size !== size) return false
  }
  return true
}

async function sha1Of (file: string): Promise<string> {
  const hash = createHash('sha1')
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer)
  return hash.digest('hex')
}

/**
 * Checks every artifact in a local Maven repository against its stored `.sha1` and deletes the
 * ones that do not match (with their checksum and Maven's resolution record), so the next `mvn`
 * run downloads them again. Returns the paths it deleted.
 */
export async function purgeCorruptArtifacts (repository: string): Promise<string[]> {
  const purged: string[] = []
  let files: string[]
  try {
    files = await listFiles(repository)
  } catch {
    return purged
  }
  for (const file of files) {
    if (!file.endsWith('.sha1')) continue
    const artifact = path.join(repository, file.slice(0, -'.sha1'.length))
    const expected = (await readFile(path.join(repository, file), 'utf8')).trim().split(/\s+/)[0]?.toLowerCase()
    const actual = await sha1Of(artifact).catch(() => undefined)
    if (actual === undefined || expected === actual) continue
    await unlink(artifact).catch(() => {})
    await unlink(path.join(repository, file)).catch(() => {})
    await unlink(path.join(path.dirname(artifact), '_remote.repositories')).catch(() => {})
    purged.push(artifact)
  }
  return purged
}

/**
 * The folder of a complete distribution, fetching it first when the cache lacks it or holds a
 * broken copy.
 */
export async function ensureDistribution (dist: Distribution, options: FetchOptions): Promise<string> {
  const target = distributionDir(options.cacheDir, dist)
  if (await isComplete(target)) return target

  const logger = options.logger.child({ distribution: `${dist.name}-${dist.version}` })
  const repository = path.join(options.cacheDir, 'm2')
  const scratch = path.join(options.cacheDir, 'dist', `.partial-${dist.name}-${dist.version}`)
  const purged = await purgeCorruptArtifacts(repository)
  if (purged.length > 0) logger.warn({ purged }, 'deleted corrupt artifacts from the Maven cache; fetching them again')

  logger.info('fetching from Maven Central')
  await rm(scratch, { recursive: true, force: true })
  await mkdir(scratch, { recursive: true })
  const started = Date.now()
  const result = await exec(options.mvn, [
    '-B', '-q', '-C', '-f', options.pom, `-P${dist.name}`, 'package',
    `-Dmaven.repo.local=${repository}`,
    `-Dstack.dist=${scratch}`,
    `-Dstack.build=${path.join(options.cacheDir, 'maven-build')}`
  ], { env: options.env })
  if (result.code !== 0) {
    const output = `${result.stdout}\n${result.stderr}`.trim().split('\n').filter(l => l.includes('ERROR')).slice(0, 5).join('\n')
    throw new StackError('CHURN_STACK_FETCH_FAILED', `Fetching ${dist.name} ${dist.version} with Maven failed (exit ${String(result.code)}). Is Maven Central reachable?\n${output}`, { retriable: true })
  }

  const source = path.join(scratch, `${dist.name}-${dist.version}`)
  const files = await listFiles(source).catch(() => [])
  if (files.length === 0) {
    throw new StackError('CHURN_STACK_FETCH_FAILED', `Maven finished but left no files for ${dist.name} ${dist.version} in ${source}.`)
  }
  const manifest: Manifest = { name: dist.name, version: dist.version, files: [] }
  for (const file of files) manifest.files.push([file, (await stat(path.join(source, file))).size])
  await writeFile(path.join(source, MANIFEST), JSON.stringify(manifest))
  await rm(target, { recursive: true, force: true })
  await rename(source, target)
  await rm(scratch, { recursive: true, force: true })
  logger.info({ files: files.length, ms: Date.now() - started }, 'fetched')
  return target
}
