import { after, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { loadConfig } from '../../../config/index.ts'
import { stackStatus, stackUp } from '../../../stack/index.ts'
import { startDetached, stopProcess } from '../../../stack/process.ts'
import { findMaven, findRedisServer, selectJdk } from '../../../stack/tools.ts'
import { config, logger, tools } from '../../helpers/context.ts'

const run = promisify(execFile)
const cli = path.resolve(import.meta.dirname, '../../../cli/main.ts')

/** A TCP server on a free loopback port that speaks no protocol of ours. */
async function squatter (): Promise<{ port: number, close: () => void }> {
  const sockets = new Set<net.Socket>()
  const server = net.createServer((socket) => {
    sockets.add(socket)
    socket.on('error', () => {})
    socket.on('close', () => sockets.delete(socket))
    socket.end('HTTP/1.1 418 I am not Kafka\r\n\r\n')
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as net.AddressInfo).port
  return {
    port,
    close: () => {
      for (const socket of sockets) socket.destroy()
      server.close()
    }
  }
}

describe('stack', () => {
  describe('when every service is already up', () => {
    it('reports each up, with what its health check found', async () => {
      const rows = await stackStatus({ config, tools })
      assert.deepEqual(rows.map(r => [r.service, r.state]), [['kafka', 'up'], ['registry', 'up'], ['redis', 'up'], ['mlflow', 'up']])
      assert.match(rows[0]?.detail ?? '', /cluster \S+, 1 broker/)
      assert.match(rows[1]?.detail ?? '', /subject/)
      assert.match(rows[2]?.detail ?? '', /redis \d+\.\d+/)
      assert.match(rows[3]?.detail ?? '', /mlflow 3\.\d+\.\d+/)
    })

    it('reuses them on `up` instead of starting another', async () => {
      const outcomes = await stackUp({ config, tools })
      assert.deepEqual(outcomes.map(o => [o.service, o.state]), [['kafka', 'reused'], ['registry', 'reused'], ['redis', 'reused'], ['mlflow', 'reused']])
    })
  })

  describe('when a port is held by something that is not the service', () => {
    it('names the port and starts nothing', async () => {
      const squat = await squatter()
      after(squat.close)
      const stackDir = await mkdtemp(path.join(os.tmpdir(), 'churn-stack-'))
      after(async () => { await rm(stackDir, { recursive: true, force: true }) })
      const squatted = loadConfig({ REDIS_URL: `redis://127.0.0.1:${squat.port}`, STACK_DIR: stackDir }, { cwd: process.cwd() })
      const [outcome] = await stackUp({ config: squatted, tools, services: ['redis'] })
      assert.equal(outcome?.state, 'failed')
      assert.ok(outcome?.state === 'failed')
      assert.equal(outcome.error.code, 'CHURN_STACK_PORT_IN_USE')
      assert.match(outcome.error.message, new RegExp(`Port ${squat.port} on 127\\.0\\.0\\.1 is held by something that is not Redis`))
    })

    it('says so for a registry port too, from its health check', async () => {
      const squat = await squatter()
      after(squat.close)
      const stackDir = await mkdtemp(path.join(os.tmpdir(), 'churn-stack-'))
      after(async () => { await rm(stackDir, { recursive: true, force: true }) })
      const squatted = loadConfig({ SCHEMA_REGISTRY_URL: `http://127.0.0.1:${squat.port}/apis/ccompat/v7`, STACK_DIR: stackDir }, { cwd: process.cwd() })
      const [outcome] = await stackUp({ config: squatted, tools, services: ['registry'] })
      assert.ok(outcome?.state === 'failed')
      assert.equal(outcome.error.code, 'CHURN_STACK_PORT_IN_USE')
      assert.match(outcome.error.message, /not Apicurio Registry .*GET \/subjects/)
    })

    it('says so for the MLflow port too, from its health check', async () => {
      const squat = await squatter()
      after(squat.close)
      const stackDir = await mkdtemp(path.join(os.tmpdir(), 'churn-stack-'))
      after(async () => { await rm(stackDir, { recursive: true, force: true }) })
      const squatted = loadConfig({ STACK_MLFLOW_PORT: String(squat.port), STACK_DIR: stackDir }, { cwd: process.cwd() })
      const [outcome] = await stackUp({ config: squatted, tools, services: ['mlflow'] })
      assert.ok(outcome?.state === 'failed')
      assert.equal(outcome.error.code, 'CHURN_STACK_PORT_IN_USE')
      assert.match(outcome.error.message, new RegExp(`Port ${squat.port} on 127\\.0\\.0\\.1 is held by something that is not MLflow 3\\.\\d+\\.\\d+ \\(GET /health`))
    })
  })

  describe('when this stack runs a service on another address than the configured one', () => {
    it('says where it runs instead of adopting or duplicating it', async () => {
      const stackDir = await mkdtemp(path.join(os.tmpdir(), 'churn-stack-'))
      await mkdir(path.join(stackDir, 'run'), { recursive: true })
      // A process this stack "started" for Redis on port 2 (a sleeping stand-in, recorded as ours).
      const record = await startDetached('redis', '127.0.0.1:2', { command: 'sleep', args: ['60'], cwd: stackDir, env: process.env }, path.join(stackDir, 'sleep.log'), path.join(stackDir, 'run', 'redis.pid'))
      after(async () => {
        await stopProcess(record, 1000)
        await rm(stackDir, { recursive: true, force: true })
      })
      const elsewhere = loadConfig({ REDIS_URL: 'redis://127.0.0.1:1', STACK_DIR: stackDir }, { cwd: process.cwd() })
      const [outcome] = await stackUp({ config: elsewhere, tools, services: ['redis'] })
      assert.ok(outcome?.state === 'failed')
      assert.equal(outcome.error.code, 'CHURN_STACK_PORT_IN_USE')
      assert.match(outcome.error.message, /already runs on 127\.0\.0\.1:2 \(pid \d+\), not on the configured 127\.0\.0\.1:1/)
    })
  })

  describe('when a configured service is on another machine and down', () => {
    it('refuses to start it and says why', async () => {
      const remote = loadConfig({ KAFKA_BROKERS: '192.0.2.1:9092', STACK_START_TIMEOUT_MS: '5000' }, { cwd: process.cwd() })
      // 192.0.2.1 is TEST-NET-1 (RFC 5737): never a real host.
      const [outcome] = await stackUp({ config: remote, tools, services: ['kafka'] })
      assert.ok(outcome?.state === 'failed')
      assert.equal(outcome.error.code, 'CHURN_STACK_NOT_LOCAL')
      assert.match(outcome.error.message, /192\.0\.2\.1:9092/)
    })
  })
})

describe('stack tools', () => {
  describe('when Java is too old or absent', () => {
    it('names the Java the service needs and how to get it', async () => {
      const empty = await mkdtemp(path.join(os.tmpdir(), 'churn-nojava-'))
      after(async () => { await rm(empty, { recursive: true, force: true }) })
      await assert.rejects(selectJdk('Apicurio Registry', 21, { path: empty, explicit: true }, tools), (error: Error & { code?: string }) => {
        assert.equal(error.code, 'CHURN_STACK_TOOL_MISSING')
        assert.match(error.message, /Apicurio Registry needs Java 21 or newer.*holds no bin\/java.*STACK_JAVA_HOME/)
        return true
      })
      await assert.rejects(selectJdk('Something', 99, { path: undefined, explicit: false }, tools), /needs Java 99 or newer; (found only Java|no JDK)/)
    })

    it('finds a JDK that qualifies when one is installed', async () => {
      const jdk = await selectJdk('Apache Kafka', 17, { path: undefined, explicit: false }, tools)
      assert.ok(jdk.major >= 17)
    })
  })

  describe('when Maven is not on PATH', () => {
    it('says to install Maven', async () => {
      await assert.rejects(findMaven({ ...tools, searchPath: '' }), (error: Error & { code?: string }) => {
        assert.equal(error.code, 'CHURN_STACK_TOOL_MISSING')
        assert.match(error.message, /Maven \(mvn\) is not on PATH.*apt-get install maven/)
        return true
      })
    })
  })

  describe('when redis-server is absent and the process may not install packages', () => {
    it('says to install redis-server', async () => {
      await assert.rejects(findRedisServer({ ...tools, searchPath: '', isRoot: false, logger }), (error: Error & { code?: string }) => {
        assert.equal(error.code, 'CHURN_STACK_TOOL_MISSING')
        assert.match(error.message, /redis-server is not installed.*apt-get install redis-server/)
        return true
      })
    })
  })
})

describe('churn CLI', () => {
  describe('when the configuration is invalid', () => {
    it('exits 2 listing every bad variable, before touching anything', async () => {
      await assert.rejects(run(process.execPath, [cli, 'stack', 'status'], { env: { ...process.env, KAFKA_BROKERS: 'nope', REDIS_URL: 'x', TOPIC_PARTITIONS: '-1' } }), (error: Error & { code?: number, stderr?: string }) => {
        assert.equal(error.code, 2)
        assert.match(error.stderr ?? '', /Invalid configuration \(3 problems\)/)
        for (const name of ['KAFKA_BROKERS', 'REDIS_URL', 'TOPIC_PARTITIONS']) assert.match(error.stderr ?? '', new RegExp(name))
        return true
      })
    })
  })

  it('prints the status of the running stack as a table', async () => {
    const { stdout } = await run(process.execPath, [cli, 'stack', 'status'], { env: { ...process.env, LOG_LEVEL: 'warn' } })
    assert.match(stdout, /^service\s+address\s+state/)
    const broker = config.kafka.brokers[0]
    const registry = new URL(config.registry.url)
    assert.match(stdout, new RegExp(`Apache Kafka 4\\.\\d+\\.\\d+ \\(KRaft\\)\\s+${broker?.host ?? ''}:${broker?.port ?? ''}\\s+up`))
    assert.match(stdout, new RegExp(`Apicurio Registry 3\\.\\d+\\.\\d+\\s+${registry.hostname}:${registry.port}\\s+up`))
    assert.match(stdout, new RegExp(`MLflow 3\\.\\d+\\.\\d+\\s+127\\.0\\.0\\.1:${config.stack.mlflowPort}\\s+up`))
  })

  it('rejects an unknown subcommand with usage', async () => {
    await assert.rejects(run(process.execPath, [cli, 'stack', 'sideways']), (error: Error & { code?: number, stderr?: string }) => {
      assert.equal(error.code, 2)
      assert.match(error.stderr ?? '', /stack takes up, down, status or install; got sideways/)
      return true
    })
  })
})
