/**
 * A small, offline kustomize for the tests: it composes `k8s/` as `kustomize build` would, for the
 * subset of kustomize the manifests use, and refuses everything else (so a manifest cannot use a
 * feature this composer would get wrong without the test saying so).
 *
 * Supported: `resources` (files and folders with a kustomization.yaml), `namespace`, `labels`
 * (pairs on metadata.labels only: no selectors, no templates), `images` (newName, newTag),
 * `configMapGenerator` (envs, literals, files; behavior create or merge; options.labels),
 * `secretGenerator` (literals), `generatorOptions.disableNameSuffixHash: true` (required: this
 * composer does not add hash suffixes nor rewrite references to them), and `patches` as JSON 6902
 * operations add, replace and remove with a `target` of kind and optional name. Not supported:
 * strategic-merge patches, components, replacements, name prefixes and suffixes, Helm charts.
 */
import { readFileSync, statSync } from 'node:fs'
import path from 'node:path'
import { parseAllDocuments, parse } from 'yaml'

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json }
export type JsonObject = { [key: string]: Json }

/** A composed resource and the file it came from (for error messages). */
export interface Resource {
  object: JsonObject
  file: string
}

const KNOWN_FIELDS = new Set(['apiVersion', 'kind', 'namespace', 'labels', 'resources', 'images', 'configMapGenerator', 'secretGenerator', 'generatorOptions', 'patches'])

export class ComposeError extends Error {}

/** A value as text: strings as they are, anything else as JSON (never `[object Object]`). */
export function str (value: unknown): string {
  if (typeof value === 'string') return value
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return value.toString()
  return value === undefined ? 'undefined' : JSON.stringify(value)
}

export function isObject (value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

export function metadata (object: JsonObject): JsonObject {
  if (!isObject(object.metadata)) object.metadata = {}
  return object.metadata
}

export function describe (r: Resource): string {
  return `${str(r.object.kind)}/${str(metadata(r.object).name)} (${r.file})`
}

/** Reads every YAML document of a file, naming the file when one does not parse. */
export function readYaml (file: string): JsonObject[] {
  const text = readFileSync(file, 'utf8')
  const docs = parseAllDocuments(text)
  const objects: JsonObject[] = []
  for (const doc of docs) {
    if (doc.errors.length > 0) throw new ComposeError(`${file}: YAML does not parse: ${doc.errors[0]?.message ?? ''}`)
    const value = doc.toJS() as unknown
    if (value === null || value === undefined) continue
    if (!isObject(value)) throw new ComposeError(`${file}: a document is not a mapping`)
    objects.push(value)
  }
  return objects
}

function unescapePointer (token: string): string {
  return token.replaceAll('~1', '/').replaceAll('~0', '~')
}

/** Applies one JSON 6902 operation (add, replace, remove), as kustomize does. */
export function applyOperation (target: JsonObject, op: JsonObject, where: string): void {
  const pointer = str(op.path ?? '')
  if (!pointer.startsWith('/')) throw new ComposeError(`${where}: path ${JSON.stringify(pointer)} is not a JSON pointer`)
  const tokens = pointer.slice(1).split('/').map(unescapePointer)
  const last = tokens.pop() as string
  let parent: Json = target
  for (const token of tokens) {
    const next: Json | undefined = Array.isArray(parent) ? parent[Number(token)] : isObject(parent) ? parent[token] : undefined
    if (next === undefined) throw new ComposeError(`${where}: ${pointer} does not exist (no ${token})`)
    parent = next
  }
  const kind = str(op.op)
  if (Array.isArray(parent)) {
    const index = last === '-' ? parent.length : Number(last)
    if (!Number.isInteger(index) || index < 0 || index > parent.length || (kind !== 'add' && index >= parent.length)) throw new ComposeError(`${where}: ${pointer}: no element ${last}`)
    if (kind === 'add') parent.splice(index, 0, op.value as Json)
    else if (kind === 'replace') parent[index] = op.value as Json
    else if (kind === 'remove') parent.splice(index, 1)
    else throw new ComposeError(`${where}: operation ${kind} is not supported`)
    return
  }
  if (!isObject(parent)) throw new ComposeError(`${where}: ${pointer}: the parent is not an object`)
  if (kind === 'add') parent[last] = op.value as Json
  else if (kind === 'replace' || kind === 'remove') {
    if (!(last in parent)) throw new ComposeError(`${where}: ${pointer} does not exist, so it cannot be ${kind}d`)
    if (kind === 'replace') parent[last] = op.value as Json
    else Reflect.deleteProperty(parent, last)
  } else throw new ComposeError(`${where}: operation ${kind} is not supported`)
}

/** Every container (init containers included) of a workload's pod template. */
export function podSpec (object: JsonObject): JsonObject | undefined {
  const spec = object.spec
  if (!isObject(spec)) return undefined
  if (object.kind === 'CronJob') {
    const job = spec.jobTemplate
    return isObject(job) && isObject(job.spec) && isObject(job.spec.template) && isObject(job.spec.template.spec) ? job.spec.template.spec : undefined
  }
  return isObject(spec.template) && isObject(spec.template.spec) ? spec.template.spec : undefined
}

export function containers (object: JsonObject): Array<{ container: JsonObject, init: boolean }> {
  const spec = podSpec(object)
  if (spec === undefined) return []
  const list = (value: Json | undefined, init: boolean): Array<{ container: JsonObject, init: boolean }> =>
    Array.isArray(value) ? value.filter(isObject).map(container => ({ container, init })) : []
  return [...list(spec.initContainers, true), ...list(spec.containers, false)]
}

function parseEnvFile (file: string): Record<string, string> {
  const data: Record<string, string> = {}
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const trimmed = line.trim()
    if (trimmed === '' || trimmed.startsWith('#')) continue
    const at = trimmed.indexOf('=')
    if (at < 1) throw new ComposeError(`${file}: ${JSON.stringify(line)} is not KEY=VALUE`)
    data[trimmed.slice(0, at)] = trimmed.slice(at + 1)
  }
  return data
}

function literals (list: Json | undefined, where: string): Record<string, string> {
  const data: Record<string, string> = {}
  for (const item of Array.isArray(list) ? list : []) {
    const text = str(item)
    const at = text.indexOf('=')
    if (at < 1) throw new ComposeError(`${where}: literal ${JSON.stringify(text)} is not KEY=VALUE`)
    data[text.slice(0, at)] = text.slice(at + 1)
  }
  return data
}

/** `kustomize build <dir>`, for the supported subset. */
export function compose (dir: string): Resource[] {
  const file = path.join(dir, 'kustomization.yaml')
  const k = parse(readFileSync(file, 'utf8')) as unknown
  if (!isObject(k)) throw new ComposeError(`${file}: not a mapping`)
  for (const key of Object.keys(k)) if (!KNOWN_FIELDS.has(key)) throw new ComposeError(`${file}: field ${key} is not supported by the test composer (k8s/README.md lists what is)`)
  const resources: Resource[] = []
  for (const entry of Array.isArray(k.resources) ? k.resources : []) {
    const target = path.resolve(dir, str(entry))
    if (statSync(target, { throwIfNoEntry: false }) === undefined) throw new ComposeError(`${file}: resource ${str(entry)} does not exist`)
    if (statSync(target).isDirectory()) resources.push(...compose(target))
    else resources.push(...readYaml(target).map(object => ({ object, file: path.relative(process.cwd(), target) })))
  }
  const options = isObject(k.generatorOptions) ? k.generatorOptions : {}
  const generators = [...(Array.isArray(k.configMapGenerator) ? k.configMapGenerator : []), ...(Array.isArray(k.secretGenerator) ? k.secretGenerator : [])]
  if (generators.length > 0 && options.disableNameSuffixHash !== true) throw new ComposeError(`${file}: generators need generatorOptions.disableNameSuffixHash: true (the test composer adds no hash suffix)`)
  const where = path.relative(process.cwd(), file)
  for (const [kind, list] of [['ConfigMap', k.configMapGenerator], ['Secret', k.secretGenerator]] as const) {
    for (const g of Array.isArray(list) ? list : []) {
      if (!isObject(g)) continue
      const data: Record<string, string> = { ...literals(g.literals, where) }
      for (const env of Array.isArray(g.envs) ? g.envs : []) Object.assign(data, parseEnvFile(path.resolve(dir, str(env))))
      for (const f of Array.isArray(g.files) ? g.files : []) data[path.basename(str(f))] = readFileSync(path.resolve(dir, str(f)), 'utf8')
      const name = str(g.name)
      const existing = resources.find(r => r.object.kind === kind && metadata(r.object).name === name)
      if (g.behavior === 'merge') {
        if (existing === undefined) throw new ComposeError(`${where}: ${kind} ${name} to merge into does not exist`)
        const field = 'data'
        const current = isObject(existing.object[field]) ? existing.object[field] : {}
        const encoded = kind === 'Secret' ? Object.fromEntries(Object.entries(data).map(([key, v]) => [key, Buffer.from(v).toString('base64')])) : data
        existing.object[field] = { ...current, ...encoded }
        continue
      }
      if (existing !== undefined) throw new ComposeError(`${where}: ${kind} ${name} exists already (use behavior: merge)`)
      const labels = isObject(g.options) && isObject(g.options.labels) ? g.options.labels : undefined
      const object: JsonObject = {
        apiVersion: 'v1',
        kind,
        metadata: { name, ...(labels === undefined ? {} : { labels }) },
        ...(kind === 'Secret' ? { type: 'Opaque', data: Object.fromEntries(Object.entries(data).map(([key, v]) => [key, Buffer.from(v).toString('base64')])) } : { data })
      }
      resources.push({ object, file: `${where} (${kind === 'Secret' ? 'secretGenerator' : 'configMapGenerator'} ${name})` })
    }
  }
  for (const patch of Array.isArray(k.patches) ? k.patches : []) {
    if (!isObject(patch) || !isObject(patch.target) || typeof patch.patch !== 'string') throw new ComposeError(`${where}: a patch needs a target and an inline JSON 6902 patch`)
    const target = patch.target
    const operations = parse(patch.patch) as unknown
    if (!Array.isArray(operations)) throw new ComposeError(`${where}: the patch for ${JSON.stringify(target)} is not a JSON 6902 list (strategic-merge patches are not supported)`)
    const matched = resources.filter(r => r.object.kind === target.kind && (target.name === undefined || metadata(r.object).name === target.name))
    if (matched.length === 0) throw new ComposeError(`${where}: patch target ${JSON.stringify(target)} matches no resource`)
    for (const r of matched) for (const op of operations) applyOperation(r.object, op as JsonObject, `${where}: patch of ${describe(r)}`)
  }
  for (const image of Array.isArray(k.images) ? k.images : []) {
    if (!isObject(image)) continue
    for (const r of resources) {
      for (const { container } of containers(r.object)) {
        // An overlay's entry may name the image as written or as the base already renamed it.
        const [name, tag] = str(container.image).split(':')
        if (name !== image.name && name !== image.newName) continue
        const newTag = image.newTag ?? tag
        container.image = `${str(image.newName ?? name)}${newTag === undefined ? '' : `:${str(newTag)}`}`
      }
    }
  }
  if (typeof k.namespace === 'string') for (const r of resources) metadata(r.object).namespace = k.namespace
  for (const entry of Array.isArray(k.labels) ? k.labels : []) {
    if (!isObject(entry) || !isObject(entry.pairs)) continue
    if (entry.includeSelectors === true || entry.includeTemplates === true) throw new ComposeError(`${where}: labels with includeSelectors or includeTemplates are not supported by the test composer`)
    for (const r of resources) metadata(r.object).labels = { ...(isObject(metadata(r.object).labels) ? metadata(r.object).labels as JsonObject : {}), ...entry.pairs }
  }
  return resources
}
