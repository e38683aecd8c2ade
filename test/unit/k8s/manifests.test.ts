/**
 * The Kubernetes deployment, offline: k8s/ composed as kustomize would (base, dev, prod), every
 * resource valid against its schema, and wired to what the code really has (commands, variables,
 * ConfigMap and Secret keys, probe routes and ports (the API's and the role server's), autoscaling ceilings, topics, the image).
 */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { describe, it, before, after } from 'node:test'
import { pino } from 'pino'
import type { FastifyInstance } from 'fastify'
import { COMMANDS } from '../../../cli/main.ts'
import { VARIABLES } from '../../../config/variables.ts'
import { buildApp } from '../../../scoring/http/app.ts'
import { applyOperation, compose, containers, isObject, metadata, str } from './kustomize.ts'
import type { JsonObject, Resource } from './kustomize.ts'
import { schemaProblems, wiringProblems } from './validate.ts'
import type { Problem, WiringFacts } from './validate.ts'

const ROOT = path.resolve(import.meta.dirname, '../../..')
const K8S = path.join(ROOT, 'k8s')
const TARGETS = { base: path.join(K8S, 'base'), dev: path.join(K8S, 'overlays/dev'), prod: path.join(K8S, 'overlays/prod') }

/** ENTRYPOINT of the Dockerfile's last stage, as JSON. */
function dockerfile (): { text: string, entrypoint: string[] } {
  const text = readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8')
  const line = text.split('\n').filter(l => l.startsWith('ENTRYPOINT ')).at(-1) ?? 'ENTRYPOINT []'
  return { text, entrypoint: JSON.parse(line.slice('ENTRYPOINT '.length)) as string[] }
}

/** The out-of-band Secret keys k8s/README.md documents, between its secret-keys markers. */
function documentedSecrets (): Record<string, string[]> {
  const readme = readFileSync(path.join(K8S, 'README.md'), 'utf8')
  const section = readme.split('<!-- secret-keys:start -->')[1]?.split('<!-- secret-keys:end -->')[0] ?? ''
  const keys: Record<string, string[]> = {}
  for (const [, secret, key] of section.matchAll(/^\| `([a-z0-9-]+)` \| `([a-z0-9-]+)` \|/gm)) (keys[secret as string] ??= []).push(key as string)
  return keys
}

function report (problems: readonly Problem[]): string {
  return problems.map(p => `${p.file}: ${p.resource}: ${p.reason}`).join('\n')
}

describe('k8s manifests', () => {
  let app: FastifyInstance
  let facts: WiringFacts
  const composed: Record<string, Resource[]> = {}

  before(async () => {
    const before = new Set(process.getActiveResourcesInfo())
    app = await buildApp({ logger: pino({ level: 'silent' }), checks: {}, queues: [] })
    await app.ready()
    // Built without Kafka, Redis or a model, the app must not have opened a connection to find its routes.
    const opened = process.getActiveResourcesInfo().filter(r => /TCP|Pipe|UDP/.test(r) && !before.has(r))
    assert.deepEqual(opened, [], 'buildApp opened a connection')
    const base = (await import('yaml')).parse(readFileSync(path.join(TARGETS.base, 'kustomization.yaml'), 'utf8')) as { images: Array<{ newName: string }> }
    facts = {
      commands: COMMANDS,
      variables: VARIABLES,
      hasRoute: url => app.hasRoute({ method: 'GET', url }),
      image: base.images[0]?.newName ?? '',
      entrypoint: dockerfile().entrypoint,
      documentedSecrets: documentedSecrets()
    }
    for (const [name, dir] of Object.entries(TARGETS)) composed[name] = compose(dir)
  })
  after(async () => { await app.close() })

  for (const target of ['base', 'dev', 'prod'] as const) {
    describe(`when composed for ${target}`, () => {
      it('validates every resource against its Kubernetes or CRD schema', () => {
        const problems = schemaProblems(composed[target] ?? [])
        assert.deepEqual(problems, [], report(problems))
      })
      if (target !== 'base') {
        it('wires commands, variables, keys, probes, autoscaling and topics to the code', () => {
          const problems = wiringProblems(composed[target] ?? [], facts)
          assert.deepEqual(problems, [], report(problems))
        })
      }
    })
  }

  it('holds every role: API with its training init container, ingest StatefulSet, scorer, workers, retraining CronJob', () => {
    const dev = composed.dev ?? []
    const commandsOf = (kind: string, name: string): string[][] => containers(dev.find(r => r.object.kind === kind && metadata(r.object).name === name)?.object ?? {}).map(c => (c.container.args as string[]))
    assert.deepEqual(commandsOf('Deployment', 'churn-api').map(a => a[0]), ['bootstrap', 'serve'])
    assert.ok(commandsOf('Deployment', 'churn-api')[0]?.includes('--seed-demo'), 'dev seeds demo history')
    assert.ok(!(composed.prod ?? []).some(r => JSON.stringify(r.object).includes('--seed-demo')), 'prod seeds nothing')
    assert.deepEqual(commandsOf('StatefulSet', 'churn-ingest').map(a => a[0]), ['ingest'])
    assert.deepEqual(commandsOf('Deployment', 'churn-scorer').map(a => a[0]), ['score'])
    assert.deepEqual(commandsOf('Deployment', 'churn-workers').map(a => a[0]), ['work'])
    assert.deepEqual(commandsOf('CronJob', 'churn-retrain'), [['train', '--from-export', '/export']])
    const ingest = dev.find(r => r.object.kind === 'StatefulSet')?.object.spec as JsonObject
    assert.equal(ingest.replicas, 1, 'one writer of the lakehouse')
    for (const kind of ['KafkaTopic', 'Kafka', 'KafkaNodePool', 'ScaledObject', 'PodMonitor', 'NetworkPolicy', 'PodDisruptionBudget', 'Secret']) {
      assert.ok(dev.some(r => r.object.kind === kind), `dev has a ${kind}`)
    }
    assert.ok(!(composed.prod ?? []).some(r => r.object.kind === 'Secret' || r.object.kind === 'Kafka'), 'prod brings no Secret and no Kafka of its own')
    assert.ok((composed.prod ?? []).every(r => metadata(r.object).namespace === 'churn'))
  })

  it('probes and scrapes ingest, scorer and workers on their role server', () => {
    const dev = composed.dev ?? []
    const monitors = dev.filter(r => r.object.kind === 'PodMonitor')
    for (const name of ['churn-ingest', 'churn-scorer', 'churn-workers']) {
      const workload = dev.find(r => metadata(r.object).name === name && r.object.kind !== 'Service')
      const main = containers(workload?.object ?? {})[0]?.container ?? {}
      assert.ok(isObject(main.readinessProbe) && isObject(main.livenessProbe), `${name} has readiness and liveness probes`)
      assert.ok((main.env as JsonObject[]).some(e => e.name === 'ROLE_HTTP_PORT'), `${name} sets ROLE_HTTP_PORT`)
      const labels = (((workload?.object.spec as JsonObject).template as JsonObject).metadata as JsonObject).labels as JsonObject
      const scraped = monitors.some(m => {
        const expressions = (((m.object.spec as JsonObject).selector as JsonObject).matchExpressions ?? []) as JsonObject[]
        return expressions.some(e => (e.values as string[]).includes(str(labels['app.kubernetes.io/component'])))
      })
      assert.ok(scraped, `a PodMonitor selects ${name}`)
    }
  })

  it('carries a Grafana dashboard with the panels the issue asks for', () => {
    const map = (composed.prod ?? []).find(r => r.object.kind === 'ConfigMap' && metadata(r.object).name === 'churn-grafana-dashboard')
    const dashboard = JSON.parse(str((map?.object.data as JsonObject)['dashboard.json'])) as { panels: Array<{ title: string, targets: Array<{ expr: string }> }> }
    const titles = dashboard.panels.map(p => p.title.toLowerCase()).join(' | ')
    for (const words of ['ingest rate', 'lag', 'quarantine', 'tier', 'p99', 'queue depth']) assert.ok(titles.includes(words), `a panel on ${words}: ${titles}`)
    for (const p of dashboard.panels) for (const t of p.targets) assert.match(t.expr, /churn_|http_request_duration_seconds/)
  })

  it('builds a non-root, production-only image whose entry point is the CLI', () => {
    const { text, entrypoint } = dockerfile()
    assert.deepEqual(entrypoint, ['node', 'cli/main.ts'])
    assert.ok((text.match(/^FROM /gm) ?? []).length >= 2, 'multi-stage')
    assert.match(text, /npm ci --omit=dev/)
    assert.match(text, /^USER [1-9]\d*:[1-9]\d*$/m)
    assert.match(text, /^HEALTHCHECK .*\n?.*\/api\/v1\/health/m)
    assert.ok(facts.hasRoute('/api/v1/health'))
    // Every folder cli/main.ts reaches at run time is copied into the image.
    for (const folder of ['cli', 'config', 'core', 'streams', 'schemas', 'lakehouse', 'training', 'scoring', 'stack']) assert.match(text, new RegExp(`^COPY ${folder} \\./${folder}$`, 'm'))
    const ignored = readFileSync(path.join(ROOT, '.dockerignore'), 'utf8').split('\n')
    for (const entry of ['node_modules', '.stack', 'data', '.git']) assert.ok(ignored.includes(entry), `.dockerignore lists ${entry}`)
  })

  describe('when a manifest is wrong', () => {
    const broken = (mutate: (resources: Resource[]) => void): Problem[] => {
      const copy = (composed.dev ?? []).map(r => ({ file: r.file, object: structuredClone(r.object) }))
      mutate(copy)
      return wiringProblems(copy, facts)
    }
    const api = (resources: Resource[]): { init: JsonObject, main: JsonObject } => {
      const list = containers(resources.find(r => metadata(r.object).name === 'churn-api' && r.object.kind === 'Deployment')?.object ?? {})
      return { init: list[0]?.container ?? {}, main: list[1]?.container ?? {} }
    }

    it('names the file and the probe path the API does not serve', () => {
      const problems = broken(r => { ((api(r).main.readinessProbe as JsonObject).httpGet as JsonObject).path = '/api/v1/healthz' })
      assert.equal(problems.length, 1, report(problems))
      assert.equal(problems[0]?.file, 'k8s/base/api.yaml')
      assert.match(problems[0]?.reason ?? '', /readinessProbe path \/api\/v1\/healthz is not a route of the API/)
    })

    it('names a probe port that is not HTTP_PORT', () => {
      const problems = broken(r => { ((api(r).main.livenessProbe as JsonObject).httpGet as JsonObject).port = 9090 })
      assert.match(report(problems), /k8s\/base\/api\.yaml: .*livenessProbe port 9090 .* is not HTTP_PORT 8080/)
    })

    const role = (resources: Resource[], name: string): JsonObject => containers(resources.find(r => metadata(r.object).name === name && r.object.kind !== 'Service')?.object ?? {})[0]?.container ?? {}

    it('names the file and the probe path the role server does not serve', () => {
      const problems = broken(r => { ((role(r, 'churn-scorer').readinessProbe as JsonObject).httpGet as JsonObject).path = '/api/v1/ready' })
      assert.equal(problems.length, 1, report(problems))
      assert.equal(problems[0]?.file, 'k8s/base/scorer.yaml')
      assert.match(problems[0]?.reason ?? '', /container scorer: readinessProbe path \/api\/v1\/ready is not a route of the role server/)
    })

    it('names a role probe port that is not ROLE_HTTP_PORT, and a role probe without ROLE_HTTP_PORT', () => {
      const problems = broken(r => {
        ((role(r, 'churn-workers').livenessProbe as JsonObject).httpGet as JsonObject).port = 8080
        const ingest = role(r, 'churn-ingest')
        ingest.env = (ingest.env as JsonObject[]).filter(e => e.name !== 'ROLE_HTTP_PORT')
      })
      const text = report(problems)
      assert.match(text, /k8s\/base\/workers\.yaml: .*livenessProbe port 8080 .* is not ROLE_HTTP_PORT 9464/)
      assert.match(text, /k8s\/base\/ingest\.yaml: .*readinessProbe needs the role server, but ROLE_HTTP_PORT is not set/)
      assert.match(text, /k8s\/base\/monitoring\.yaml: PodMonitor\/churn-roles: metrics port metrics .* of container ingest is not its ROLE_HTTP_PORT/)
    })

    it('names a missing ConfigMap key and a missing Secret key', () => {
      const problems = broken(r => {
        (api(r).main.env as JsonObject[]).push({ name: 'LOG_LEVEL', valueFrom: { configMapKeyRef: { name: 'churn-config', key: 'LOG_LEVL' } } })
        ;(((api(r).main.env as JsonObject[])[0]?.valueFrom as JsonObject).secretKeyRef as JsonObject).key = 'redis-uri'
      })
      assert.match(report(problems), /k8s\/base\/api\.yaml: Deployment\/churn-api: container api LOG_LEVEL: ConfigMap churn-config has no key LOG_LEVL/)
      assert.match(report(problems), /Secret churn-secrets has no key redis-uri/)
    })

    it('names a key of an out-of-band Secret that the README does not document', () => {
      const prod = (composed.prod ?? []).map(r => ({ file: r.file, object: structuredClone(r.object) }))
      const workers = containers(prod.find(r => metadata(r.object).name === 'churn-workers' && r.object.kind === 'Deployment')?.object ?? {})[0]?.container ?? {}
      ;(((workers.env as JsonObject[]).at(-1)?.valueFrom as JsonObject).secretKeyRef as JsonObject).key = 'hmac-key'
      assert.match(report(wiringProblems(prod, facts)), /key hmac-key of Secret churn-secrets \(created out of band\) is not in k8s\/README\.md's list/)
    })

    it('names an unknown command, an unknown option and an unknown variable', () => {
      const problems = broken(r => {
        api(r).main.args = ['server']
        api(r).init.args = ['bootstrap', '--from-exports', '/export']
        ;(api(r).main.env as JsonObject[]).push({ name: 'HTTP_PORTS', value: '8080' })
      })
      const text = report(problems)
      assert.match(text, /container api: args \["server"\] do not start with a churn command/)
      assert.match(text, /init container bootstrap: churn bootstrap has no option --from-exports/)
      assert.match(text, /environment variable HTTP_PORTS is not one the configuration knows/)
    })

    it('names a scorer ceiling above the partition count and a role that opens the lakehouse', () => {
      const problems = broken(r => {
        (r.find(x => x.object.kind === 'ScaledObject' && metadata(x.object).name === 'churn-scorer')?.object.spec as JsonObject).maxReplicaCount = 12
        ;(api(r).main.volumeMounts as JsonObject[]).push({ name: 'tmp', mountPath: '/data' })
      })
      const text = report(problems)
      assert.match(text, /k8s\/base\/autoscaling\.yaml: ScaledObject\/churn-scorer: maxReplicaCount 12 is above the 6 partitions/)
      assert.match(text, /churn serve mounts the lakehouse folder \/data; only the ingest role opens the DuckDB file/)
    })

    it('names a schema violation', () => {
      const copy = (composed.dev ?? []).map(r => ({ file: r.file, object: structuredClone(r.object) }))
      const api = copy.find(r => metadata(r.object).name === 'churn-api' && r.object.kind === 'Deployment')
      if (api !== undefined) (api.object.spec as JsonObject).replicas = 'three'
      assert.match(report(schemaProblems(copy)), /k8s\/base\/api\.yaml: Deployment\/churn-api: schema: .*replicas/)
    })

    it('refuses a patch whose path does not exist', () => {
      assert.throws(() => { applyOperation({ spec: {} }, { op: 'replace', path: '/spec/replicas', value: 2 }, 'k8s/overlays/x/kustomization.yaml') }, /kustomization\.yaml: \/spec\/replicas does not exist/)
      assert.ok(isObject({}))
    })
  })
})
