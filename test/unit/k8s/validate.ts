/**
 * Checks composed manifests offline: each resource against its Kubernetes (or CRD) OpenAPI schema
 * through kubernetes-models, and the wiring a schema cannot see: commands the CLI has, variables the
 * configuration knows, ConfigMap and Secret keys that exist, probe paths the API serves on the port
 * it listens on (and, for ingest, scorer and workers, the role server's routes on ROLE_HTTP_PORT), autoscaling within the partition count, topics the configuration names. Every
 * problem names the file and the reason.
 */
import path from 'node:path'
import { Model } from '@kubernetes-models/base'
import * as apps from 'kubernetes-models/apps/v1'
import * as batch from 'kubernetes-models/batch/v1'
import * as core from 'kubernetes-models/v1'
import * as networking from 'kubernetes-models/networking.k8s.io/v1'
import * as policy from 'kubernetes-models/policy/v1'
import * as keda from '@kubernetes-models/keda/keda.sh/v1alpha1'
import * as monitoring from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1'
import * as strimzi from '@kubernetes-models/strimzi-kafka-operator/kafka.strimzi.io/v1beta2'
import { ROLE_SERVER_ROUTES } from '../../../core/role-server.ts'
import { containers, describe, isObject, metadata, podSpec, str } from './kustomize.ts'
import type { Json, JsonObject, Resource } from './kustomize.ts'

export interface Problem {
  file: string
  resource: string
  reason: string
}

export interface WiringFacts {
  /** The CLI's commands with their usage lines (`COMMANDS` of cli/main.ts). */
  commands: ReadonlyArray<{ name: string, usage: string }>
  /** Every variable the configuration knows, with its default. */
  variables: Readonly<Record<string, { default: string | undefined }>>
  /** Whether the API serves GET `url`. */
  hasRoute: (url: string) => boolean
  /** The image the Dockerfile builds (repository, without tag), and its entry point. */
  image: string
  entrypoint: readonly string[]
  /** Keys of the out-of-band Secrets the README documents, by Secret name. */
  documentedSecrets: Readonly<Record<string, readonly string[]>>
}

type ModelClass = new (data: JsonObject) => Model<unknown>
const MODELS = new Map<string, ModelClass>()
for (const group of [apps, batch, core, networking, policy, keda, monitoring, strimzi] as unknown as Array<Record<string, unknown>>) {
  for (const value of Object.values(group)) {
    const c = value as { apiVersion?: unknown, kind?: unknown, prototype?: unknown }
    if (typeof value === 'function' && typeof c.apiVersion === 'string' && typeof c.kind === 'string' && c.prototype instanceof Model) {
      MODELS.set(`${c.apiVersion}/${c.kind}`, value as unknown as ModelClass)
    }
  }
}

function problem (r: Resource, reason: string): Problem {
  return { file: r.file, resource: `${str(r.object.kind)}/${str(metadata(r.object).name)}`, reason }
}

/** Validates every resource against the OpenAPI schema of its apiVersion and kind. */
export function schemaProblems (resources: readonly Resource[]): Problem[] {
  const problems: Problem[] = []
  for (const r of resources) {
    const model = MODELS.get(`${str(r.object.apiVersion)}/${str(r.object.kind)}`)
    if (model === undefined) {
      problems.push(problem(r, `no schema for ${str(r.object.apiVersion)} ${str(r.object.kind)}`))
      continue
    }
    try {
      new model(structuredClone(r.object)).validate()
    } catch (error) {
      problems.push(problem(r, `schema: ${(error as Error).message.split('\n').slice(0, 3).join(' ')}`))
    }
  }
  return problems
}

function find (resources: readonly Resource[], kind: string, name: Json | undefined): Resource | undefined {
  return resources.find(r => r.object.kind === kind && metadata(r.object).name === name)
}

function dataKeys (r: Resource): string[] {
  return [...Object.keys(isObject(r.object.data) ? r.object.data : {}), ...Object.keys(isObject(r.object.stringData) ? r.object.stringData : {})]
}

/** The environment a container gets from literal values and whole ConfigMaps (not Secrets). */
export function containerEnvironment (resources: readonly Resource[], container: JsonObject): Map<string, string> {
  const env = new Map<string, string>()
  for (const from of Array.isArray(container.envFrom) ? container.envFrom : []) {
    if (!isObject(from) || !isObject(from.configMapRef)) continue
    const map = find(resources, 'ConfigMap', from.configMapRef.name)
    if (map !== undefined && isObject(map.object.data)) for (const [k, v] of Object.entries(map.object.data)) env.set(k, str(v))
  }
  for (const e of Array.isArray(container.env) ? container.env : []) {
    if (isObject(e) && typeof e.value === 'string') env.set(str(e.name), e.value)
  }
  return env
}

function setting (facts: WiringFacts, env: ReadonlyMap<string, string>, name: string): string | undefined {
  return env.get(name) ?? facts.variables[name]?.default
}

function checkKeyRef (resources: readonly Resource[], facts: WiringFacts, r: Resource, kind: 'ConfigMap' | 'Secret', ref: JsonObject, where: string): Problem[] {
  const target = find(resources, kind, ref.name)
  if (target !== undefined) {
    return dataKeys(target).includes(str(ref.key)) ? [] : [problem(r, `${where}: ${kind} ${str(ref.name)} has no key ${str(ref.key)} (it has ${dataKeys(target).join(', ')})`)]
  }
  const documented = kind === 'Secret' ? facts.documentedSecrets[str(ref.name)] : undefined
  if (documented === undefined) return [problem(r, `${where}: ${kind} ${str(ref.name)} is neither in the manifests nor documented as created out of band`)]
  return documented.includes(str(ref.key)) ? [] : [problem(r, `${where}: key ${str(ref.key)} of Secret ${str(ref.name)} (created out of band) is not in k8s/README.md's list (${documented.join(', ')})`)]
}

/** The commands that start the role server (core/role-server.ts) when ROLE_HTTP_PORT is set. */
const ROLE_SERVER_COMMANDS: readonly string[] = ['ingest', 'score', 'work']

function isRoleRoute (url: string): boolean {
  return (ROLE_SERVER_ROUTES as readonly string[]).includes(url)
}

function resolvePort (container: JsonObject, port: Json | undefined): number | undefined {
  if (typeof port === 'number') return port
  for (const p of Array.isArray(container.ports) ? container.ports : []) if (isObject(p) && p.name === port) return Number(p.containerPort)
  return undefined
}

/** Problems of one container of the project's image. */
function containerProblems (resources: readonly Resource[], facts: WiringFacts, r: Resource, container: JsonObject, init: boolean): Problem[] {
  const problems: Problem[] = []
  const where = `${init ? 'init container' : 'container'} ${str(container.name)}`
  if (container.command !== undefined && JSON.stringify(container.command) !== JSON.stringify(facts.entrypoint)) {
    problems.push(problem(r, `${where}: command ${JSON.stringify(container.command)} replaces the image's entry point ${JSON.stringify(facts.entrypoint)}; give the churn command in args`))
  }
  const args = Array.isArray(container.args) ? container.args.map(String) : []
  const command = facts.commands.find(c => c.name === args[0])
  if (command === undefined) {
    problems.push(problem(r, `${where}: args ${JSON.stringify(args)} do not start with a churn command (${facts.commands.map(c => c.name).join(', ')})`))
  } else {
    const known = new Set(command.usage.match(/--[a-z][a-z0-9-]*/g) ?? [])
    for (const arg of args.slice(1).filter(a => a.startsWith('--'))) {
      const flag = arg.split('=')[0] as string
      if (!known.has(flag)) problems.push(problem(r, `${where}: churn ${command.name} has no option ${flag} (usage: ${command.usage})`))
    }
  }
  const env = Array.isArray(container.env) ? container.env.filter(isObject) : []
  const expanded = JSON.stringify([container.args, env.map(e => e.value)])
  for (const e of env) {
    const name = str(e.name)
    const valueFrom = isObject(e.valueFrom) ? e.valueFrom : undefined
    // Kubernetes-only variables (the downward API) are allowed when used for $(NAME) expansion.
    const plumbing = valueFrom !== undefined && isObject(valueFrom.fieldRef) && expanded.includes(`$(${name})`)
    if (!(name in facts.variables) && !plumbing) problems.push(problem(r, `${where}: environment variable ${name} is not one the configuration knows (config/variables.ts)`))
    if (valueFrom !== undefined && isObject(valueFrom.configMapKeyRef)) problems.push(...checkKeyRef(resources, facts, r, 'ConfigMap', valueFrom.configMapKeyRef, `${where} ${name}`))
    if (valueFrom !== undefined && isObject(valueFrom.secretKeyRef)) problems.push(...checkKeyRef(resources, facts, r, 'Secret', valueFrom.secretKeyRef, `${where} ${name}`))
  }
  for (const from of Array.isArray(container.envFrom) ? container.envFrom : []) {
    if (!isObject(from)) continue
    if (isObject(from.secretRef)) problems.push(problem(r, `${where}: envFrom a Secret hides which keys it sets; use secretKeyRef per variable`))
    if (!isObject(from.configMapRef)) continue
    const map = find(resources, 'ConfigMap', from.configMapRef.name)
    if (map === undefined) {
      problems.push(problem(r, `${where}: ConfigMap ${str(from.configMapRef.name)} does not exist`))
      continue
    }
    for (const key of dataKeys(map)) if (!(key in facts.variables)) problems.push(problem(r, `${where}: ConfigMap ${str(from.configMapRef.name)} sets ${key}, which the configuration does not know (config/variables.ts)`))
  }
  const environment = containerEnvironment(resources, container)
  const httpPort = Number(setting(facts, environment, 'HTTP_PORT'))
  const roleServer = ROLE_SERVER_COMMANDS.includes(args[0] ?? '')
  const rolePortSetting = setting(facts, environment, 'ROLE_HTTP_PORT')
  const rolePort = rolePortSetting === undefined ? undefined : Number(rolePortSetting)
  let probed = false
  for (const probeName of ['readinessProbe', 'livenessProbe', 'startupProbe']) {
    const probe = container[probeName]
    if (!isObject(probe)) continue
    probed = true
    if (!isObject(probe.httpGet)) {
      problems.push(problem(r, `${where}: ${probeName} is not an HTTP probe of the ${roleServer ? 'role server' : 'API'}`))
      continue
    }
    const url = str(probe.httpGet.path)
    const port = resolvePort(container, probe.httpGet.port)
    if (args[0] === 'serve') {
      if (!facts.hasRoute(url)) problems.push(problem(r, `${where}: ${probeName} path ${url} is not a route of the API (scoring/http/app.ts)`))
      if (port !== httpPort) problems.push(problem(r, `${where}: ${probeName} port ${str(probe.httpGet.port)} (${str(port)}) is not HTTP_PORT ${httpPort}`))
    } else if (roleServer) {
      if (!isRoleRoute(url)) problems.push(problem(r, `${where}: ${probeName} path ${url} is not a route of the role server (${ROLE_SERVER_ROUTES.join(', ')}, core/role-server.ts)`))
      if (rolePort === undefined) problems.push(problem(r, `${where}: ${probeName} needs the role server, but ROLE_HTTP_PORT is not set`))
      else if (port !== rolePort) problems.push(problem(r, `${where}: ${probeName} port ${str(probe.httpGet.port)} (${str(port)}) is not ROLE_HTTP_PORT ${rolePort}`))
    } else {
      problems.push(problem(r, `${where}: ${probeName}, but churn ${args[0] ?? ''} serves no HTTP`))
    }
  }
  if (roleServer && probed && setting(facts, environment, 'HTTP_HOST') === '127.0.0.1') problems.push(problem(r, `${where}: HTTP_HOST is loopback, so neither probes nor Prometheus reach the role server`))
  if (args[0] === 'serve') {
    if (!isObject(container.readinessProbe) || !isObject(container.livenessProbe)) problems.push(problem(r, `${where}: the API needs a readiness and a liveness probe`))
    if (setting(facts, environment, 'HTTP_HOST') === '127.0.0.1') problems.push(problem(r, `${where}: HTTP_HOST is loopback, so neither probes nor clients reach the API`))
  }
  const sc = isObject(container.securityContext) ? container.securityContext : {}
  if (sc.readOnlyRootFilesystem !== true || sc.allowPrivilegeEscalation !== false) problems.push(problem(r, `${where}: securityContext needs readOnlyRootFilesystem: true and allowPrivilegeEscalation: false`))
  const resourcesField = isObject(container.resources) ? container.resources : {}
  if (!isObject(resourcesField.requests) || !isObject(resourcesField.limits)) problems.push(problem(r, `${where}: resources need requests and limits`))
  // One writer per DuckDB file: only ingest (or bootstrap without an export) may mount its folder.
  const lakehouseDir = path.posix.dirname(setting(facts, environment, 'DUCKDB_PATH') ?? '')
  const writer = args[0] === 'ingest' || (args[0] === 'bootstrap' && !args.includes('--from-export'))
  for (const mount of Array.isArray(container.volumeMounts) ? container.volumeMounts.filter(isObject) : []) {
    if (mount.mountPath === lakehouseDir && !writer) problems.push(problem(r, `${where}: churn ${args[0] ?? ''} mounts the lakehouse folder ${lakehouseDir}; only the ingest role opens the DuckDB file`))
  }
  return problems
}

function podLabels (r: Resource): JsonObject {
  const spec = r.object.spec
  if (!isObject(spec)) return {}
  const template = r.object.kind === 'CronJob' && isObject(spec.jobTemplate) && isObject(spec.jobTemplate.spec) ? spec.jobTemplate.spec.template : spec.template
  return isObject(template) && isObject(template.metadata) && isObject(template.metadata.labels) ? template.metadata.labels : {}
}

function selects (selector: Json | undefined, labels: JsonObject): boolean {
  if (!isObject(selector)) return false
  const match = isObject(selector.matchLabels) ? selector.matchLabels : {}
  if (!Object.entries(match).every(([k, v]) => labels[k] === v)) return false
  for (const e of Array.isArray(selector.matchExpressions) ? selector.matchExpressions.filter(isObject) : []) {
    const values = Array.isArray(e.values) ? e.values : []
    const has = str(e.key) in labels
    if (e.operator === 'In' && !(has && values.includes(labels[str(e.key)] as Json))) return false
    if (e.operator === 'Exists' && !has) return false
  }
  return true
}

/** The wiring problems of a composed set of manifests. */
export function wiringProblems (resources: readonly Resource[], facts: WiringFacts): Problem[] {
  const problems: Problem[] = []
  const workloads = resources.filter(r => podSpec(r.object) !== undefined)
  for (const r of workloads) {
    const spec = podSpec(r.object) as JsonObject
    const volumes = new Set((Array.isArray(spec.volumes) ? spec.volumes.filter(isObject) : []).map(v => v.name))
    const spec0 = r.object.spec as JsonObject
    for (const t of Array.isArray(spec0.volumeClaimTemplates) ? spec0.volumeClaimTemplates.filter(isObject) : []) volumes.add(metadata(t).name)
    for (const v of Array.isArray(spec.volumes) ? spec.volumes.filter(isObject) : []) {
      if (isObject(v.persistentVolumeClaim) && find(resources, 'PersistentVolumeClaim', v.persistentVolumeClaim.claimName) === undefined) problems.push(problem(r, `volume ${str(v.name)}: PersistentVolumeClaim ${str(v.persistentVolumeClaim.claimName)} does not exist`))
    }
    const sc = isObject(spec.securityContext) ? spec.securityContext : {}
    for (const { container, init } of containers(r.object)) {
      for (const m of Array.isArray(container.volumeMounts) ? container.volumeMounts.filter(isObject) : []) {
        if (!volumes.has(m.name)) problems.push(problem(r, `container ${str(container.name)}: volume mount ${str(m.name)} names no volume of the pod`))
      }
      const csc = isObject(container.securityContext) ? container.securityContext : {}
      if (sc.runAsNonRoot !== true && csc.runAsNonRoot !== true) problems.push(problem(r, `container ${str(container.name)}: runs without runAsNonRoot`))
      if (str(container.image).split(':')[0] === facts.image) problems.push(...containerProblems(resources, facts, r, container, init))
    }
  }
  // Autoscaling: targets exist; the scorer's ceiling is the partition count of what it consumes.
  for (const r of resources.filter(x => x.object.kind === 'ScaledObject')) {
    const spec = r.object.spec as JsonObject
    const ref = spec.scaleTargetRef as JsonObject
    const target = resources.find(x => (x.object.kind === (ref.kind ?? 'Deployment')) && metadata(x.object).name === ref.name)
    if (target === undefined) {
      problems.push(problem(r, `scaleTargetRef ${str(ref.name)} names no workload`))
      continue
    }
    const main = containers(target.object).find(c => !c.init)?.container ?? {}
    const env = containerEnvironment(resources, main)
    for (const trigger of Array.isArray(spec.triggers) ? spec.triggers.filter(isObject) : []) {
      const meta = isObject(trigger.metadata) ? trigger.metadata : {}
      const value = (field: string): string | undefined => typeof meta[field] === 'string' ? meta[field] : typeof meta[`${field}FromEnv`] === 'string' ? setting(facts, env, str(meta[`${field}FromEnv`])) : undefined
      for (const field of Object.keys(meta).filter(k => k.endsWith('FromEnv'))) {
        if (setting(facts, env, str(meta[field])) === undefined) problems.push(problem(r, `trigger ${str(trigger.type)}: ${field} ${str(meta[field])} is not set in ${describe(target)}`))
      }
      if (trigger.type === 'kafka') {
        const topic = value('topic')
        const kafkaTopic = resources.find(x => x.object.kind === 'KafkaTopic' && isObject(x.object.spec) && (x.object.spec.topicName ?? metadata(x.object).name) === topic)
        if (kafkaTopic === undefined) problems.push(problem(r, `kafka trigger: topic ${str(topic)} has no KafkaTopic`))
        else if (Number(spec.maxReplicaCount ?? 100) > Number((kafkaTopic.object.spec as JsonObject).partitions)) problems.push(problem(r, `maxReplicaCount ${str(spec.maxReplicaCount)} is above the ${str((kafkaTopic.object.spec as JsonObject).partitions)} partitions of ${str(topic)}: the extra consumers would sit idle`))
        const argsOfTarget = Array.isArray(main.args) ? main.args.map(String) : []
        const group = argsOfTarget[0] === 'score' ? setting(facts, env, 'SCORER_GROUP_ID') : argsOfTarget[0] === 'ingest' ? setting(facts, env, 'INGEST_GROUP_ID') : undefined
        if (value('consumerGroup') !== group) problems.push(problem(r, `kafka trigger: consumer group ${str(value('consumerGroup'))} is not the group ${describe(target)} consumes in (${str(group)})`))
      }
      if (trigger.type === 'redis') {
        const prefix = setting(facts, env, 'REDIS_KEY_PREFIX')
        const list = str(meta.listName)
        if (!new RegExp(`^${str(prefix)}:bull:campaign-(crm|sms):wait$`).test(list)) problems.push(problem(r, `redis trigger: list ${list} is not a campaign queue's wait list under REDIS_KEY_PREFIX ${str(prefix)}`))
      }
      if (isObject(trigger.authenticationRef) && find(resources, 'TriggerAuthentication', trigger.authenticationRef.name) === undefined) problems.push(problem(r, `trigger ${str(trigger.type)}: TriggerAuthentication ${str(trigger.authenticationRef.name)} does not exist`))
    }
  }
  for (const r of resources.filter(x => x.object.kind === 'TriggerAuthentication')) {
    for (const ref of Array.isArray((r.object.spec as JsonObject).secretTargetRef) ? ((r.object.spec as JsonObject).secretTargetRef as Json[]).filter(isObject) : []) {
      problems.push(...checkKeyRef(resources, facts, r, 'Secret', ref, `secretTargetRef ${str(ref.parameter)}`))
    }
  }
  // Topics the configuration names exist, the changelog compacted.
  const churnContainer = workloads.flatMap(r => containers(r.object)).find(c => str(c.container.image).split(':')[0] === facts.image)?.container ?? {}
  const env = containerEnvironment(resources, churnContainer)
  const topics = new Map(resources.filter(x => x.object.kind === 'KafkaTopic').map(x => [str((x.object.spec as JsonObject).topicName ?? metadata(x.object).name), x]))
  for (const name of ['TOPIC_BILLING', 'TOPIC_NETWORK', 'TOPIC_DEVICE', 'TOPIC_CRM_OUTCOMES', 'TOPIC_FEATURES', 'TOPIC_CHURN_RISK']) {
    const topic = setting(facts, env, name) as string
    const dlq = `${topic}${setting(facts, env, 'TOPIC_DLQ_SUFFIX') ?? ''}`
    if (!topics.has(topic)) problems.push({ file: 'k8s/base/topics.yaml', resource: `KafkaTopic/${topic}`, reason: `${name} names ${topic}, which has no KafkaTopic` })
    if (name !== 'TOPIC_CHURN_RISK' && !topics.has(dlq)) problems.push({ file: 'k8s/base/topics.yaml', resource: `KafkaTopic/${dlq}`, reason: `the dead-letter topic of ${topic} has no KafkaTopic` })
  }
  const changelog = topics.get(setting(facts, env, 'TOPIC_FEATURES') as string)
  if (changelog !== undefined && ((changelog.object.spec as JsonObject).config as JsonObject | undefined)?.['cleanup.policy'] !== 'compact') problems.push(problem(changelog, 'the feature changelog must be compacted (cleanup.policy: compact)'))
  // Selectors select something.
  for (const r of resources.filter(x => ['PodDisruptionBudget', 'NetworkPolicy', 'PodMonitor', 'Service'].includes(str(x.object.kind)))) {
    const spec = r.object.spec as JsonObject
    const selector = r.object.kind === 'Service' ? { matchLabels: spec.selector ?? null } : r.object.kind === 'NetworkPolicy' ? spec.podSelector : spec.selector
    const matched = workloads.filter(w => selects(selector as Json, podLabels(w)))
    if (matched.length === 0) problems.push(problem(r, 'its selector matches no pod template'))
    if (r.object.kind === 'PodMonitor') {
      for (const e of Array.isArray(spec.podMetricsEndpoints) ? spec.podMetricsEndpoints.filter(isObject) : []) {
        // Each container with the named port answers the path: the API, or a role server on ROLE_HTTP_PORT.
        const serving = matched.flatMap(w => containers(w.object).filter(c => !c.init)).filter(c => Array.isArray(c.container.ports) && c.container.ports.some(p => isObject(p) && p.name === e.port))
        if (serving.length === 0) problems.push(problem(r, `metrics port ${str(e.port)} is no named port of the pods it selects`))
        for (const { container } of serving) {
          const command = Array.isArray(container.args) ? str(container.args[0]) : ''
          if (command === 'serve') {
            if (!facts.hasRoute(str(e.path))) problems.push(problem(r, `metrics path ${str(e.path)} is not a route of the API`))
          } else if (ROLE_SERVER_COMMANDS.includes(command)) {
            if (!isRoleRoute(str(e.path))) problems.push(problem(r, `metrics path ${str(e.path)} is not a route of the role server of container ${str(container.name)}`))
            const rolePort = setting(facts, containerEnvironment(resources, container), 'ROLE_HTTP_PORT')
            const port = resolvePort(container, e.port)
            if (rolePort === undefined || port !== Number(rolePort)) problems.push(problem(r, `metrics port ${str(e.port)} (${str(port)}) of container ${str(container.name)} is not its ROLE_HTTP_PORT ${str(rolePort)}`))
          } else {
            problems.push(problem(r, `metrics port ${str(e.port)} is on container ${str(container.name)}, whose churn ${command} serves no HTTP`))
          }
        }
      }
    }
  }
  return problems
}
