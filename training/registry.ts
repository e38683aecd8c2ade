/**
 * The models folder: versioned artifacts per model name, a pointer to the promoted one, and a log
 * of every training run.
 *
 *   <MODEL_DIR>/<name>/v<version>.json   artifacts, never rewritten
 *   <MODEL_DIR>/<name>/current.json      { version, promotedAt, reason, history }
 *   <MODEL_DIR>/<name>/runs.jsonl        one line per training run, promoted or not
 *
 * Nothing is ever half-written: an artifact is written to a temporary file, flushed, then linked
 * to its version's name (a link fails if the name exists, so two trainers racing get different
 * versions), and the pointer is replaced by a rename. A reader sees the old file or the new one.
 */
import { randomBytes } from 'node:crypto'
import { appendFile, link, mkdir, open, readFile, readdir, rename, rm } from 'node:fs/promises'
import path from 'node:path'
import type { ModelArtifact } from './artifact.ts'
import { parseArtifact, serializeArtifact } from './artifact.ts'
import { TrainingError } from './errors.ts'

const NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/
const VERSION_FILE = /^v(\d+)\.json$/

export interface CurrentPointer {
  version: number
  promotedAt: string
  reason: string
  /** Versions promoted before, oldest first: `rollback` returns to the last of them. */
  history: number[]
}

export interface ModelSummary {
  name: string
  version: number
  createdAt: string
  engine: string
  labels: string
  rows: number
  testAuc: number
  cvAuc: number | null
  current: boolean
}

/** Model names are DNS labels, as KServe and Kubernetes want them. */
export function checkModelName (name: string): string {
  if (!NAME.test(name)) throw new TrainingError('CHURN_TRAIN_BAD_OPTIONS', `model name ${JSON.stringify(name)} must be 1-63 of a-z 0-9 and -, starting and ending with a letter or digit`)
  return name
}

async function writeDurably (file: string, text: string): Promise<string> {
  const temporary = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`)
  const handle = await open(temporary, 'wx')
  try {
    await handle.writeFile(text)
    await handle.sync()
  } finally {
    await handle.close()
  }
  return temporary
}

async function syncDirectory (dir: string): Promise<void> {
  const handle = await open(dir, 'r')
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
}

export class ModelRegistry {
  readonly dir: string

  constructor (dir: string) {
    this.dir = dir
  }

  #folder (name: string): string {
    return path.join(this.dir, checkModelName(name))
  }

  /** Where version `version` of `name` is (or would be) stored. */
  file (name: string, version: number): string {
    return path.join(this.#folder(name), `v${version}.json`)
  }

  async names (): Promise<string[]> {
    try {
      const entries = await readdir(this.dir, { withFileTypes: true })
      return entries.filter(e => e.isDirectory() && NAME.test(e.name)).map(e => e.name).sort()
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return []
      throw error
    }
  }

  async versions (name: string): Promise<number[]> {
    try {
      return (await readdir(this.#folder(name)))
        .map(f => VERSION_FILE.exec(f)?.[1]).filter((v): v is string => v !== undefined).map(Number).sort((a, b) => a - b)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return []
      throw error
    }
  }

  /** Stores a new artifact under the next free version and returns it as stored. */
  async save (draft: Omit<ModelArtifact, 'version' | 'createdAt'>): Promise<ModelArtifact> {
    const folder = this.#folder(draft.name)
    await mkdir(folder, { recursive: true })
    const existing = await this.versions(draft.name)
    let version = (existing[existing.length - 1] ?? 0) + 1
    for (;;) {
      const artifact: ModelArtifact = { ...draft, version, createdAt: new Date().toISOString() }
      const file = this.file(draft.name, version)
      const temporary = await writeDurably(file, serializeArtifact(artifact))
      try {
        await link(temporary, file)
        await syncDirectory(folder)
        return artifact
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
        version++
      } finally {
        await rm(temporary, { force: true })
      }
    }
  }

  async load (name: string, version: number): Promise<ModelArtifact> {
    const file = this.file(name, version)
    let text: string
    try {
      text = await readFile(file, 'utf8')
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new TrainingError('CHURN_MODEL_NOT_FOUND', `model ${name} has no version ${version} in ${this.dir}`)
      throw error
    }
    return parseArtifact(text, file)
  }

  async pointer (name: string): Promise<CurrentPointer | undefined> {
    try {
      return JSON.parse(await readFile(path.join(this.#folder(name), 'current.json'), 'utf8')) as CurrentPointer
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw new TrainingError('CHURN_MODEL_BAD_ARTIFACT', `the pointer of model ${name} is unreadable: ${(error as Error).message}`, { cause: error })
    }
  }

  /** The promoted artifact of a model, or undefined when none was promoted yet. */
  async current (name: string): Promise<ModelArtifact | undefined> {
    const pointer = await this.pointer(name)
    return pointer === undefined ? undefined : await this.load(name, pointer.version)
  }

  async #setPointer (name: string, pointer: CurrentPointer): Promise<void> {
    const folder = this.#folder(name)
    const file = path.join(folder, 'current.json')
    const temporary = await writeDurably(file, `${JSON.stringify(pointer, null, 2)}\n`)
    await rename(temporary, file)
    await syncDirectory(folder)
  }

  /** Makes `version` current (it must load cleanly); the one it replaces goes on the history. */
  async promote (name: string, version: number, reason: string): Promise<CurrentPointer> {
    await this.load(name, version)
    const previous = await this.pointer(name)
    const history = previous === undefined ? [] : [...previous.history, previous.version].filter(v => v !== version).slice(-50)
    const pointer: CurrentPointer = { version, promotedAt: new Date().toISOString(), reason, history }
    await this.#setPointer(name, pointer)
    return pointer
  }

  /** Returns to the version promoted before the current one. */
  async rollback (name: string): Promise<CurrentPointer> {
    const pointer = await this.pointer(name)
    if (pointer === undefined) throw new TrainingError('CHURN_MODEL_NOT_FOUND', `model ${name} has no promoted version to roll back from`)
    const previous = pointer.history[pointer.history.length - 1]
    if (previous === undefined) throw new TrainingError('CHURN_MODEL_NOT_FOUND', `model ${name} v${pointer.version} is the first promoted version; there is nothing to roll back to`)
    await this.load(name, previous)
    const next: CurrentPointer = { version: previous, promotedAt: new Date().toISOString(), reason: `rollback from v${pointer.version}`, history: pointer.history.slice(0, -1) }
    await this.#setPointer(name, next)
    return next
  }

  async list (name?: string): Promise<ModelSummary[]> {
    const summaries: ModelSummary[] = []
    for (const n of name === undefined ? await this.names() : [checkModelName(name)]) {
      const current = (await this.pointer(n))?.version
      for (const version of await this.versions(n)) {
        const a = await this.load(n, version)
        summaries.push({
          name: n,
          version,
          createdAt: a.createdAt,
          engine: a.engine,
          labels: a.training.labels,
          rows: a.training.rows,
          testAuc: a.metrics.test.rocAuc,
          cvAuc: a.metrics.cv?.mean ?? null,
          current: version === current
        })
      }
    }
    return summaries
  }

  /** Appends one training run to the model's local log. */
  async recordRun (name: string, run: Record<string, unknown>): Promise<void> {
    const folder = this.#folder(name)
    await mkdir(folder, { recursive: true })
    await appendFile(path.join(folder, 'runs.jsonl'), `${JSON.stringify({ at: new Date().toISOString(), ...run })}\n`)
  }
}
