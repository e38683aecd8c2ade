import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import path from 'node:path'
import { ConfigError, loadConfig, maskSecret, renderConfigTable } from '../../../config/index.ts'

const cwd = '/srv/churn'

describe('loadConfig', () => {
  describe('when the environment is empty', () => {
    it('points every address at the local stack', () => {
      const config = loadConfig({}, { cwd })
      assert.deepEqual(config.kafka.brokers, [{ host: '127.0.0.1', port: 9092 }])
      assert.equal(config.registry.url, 'http://127.0.0.1:8081/apis/ccompat/v7')
      assert.equal(config.redis.url, 'redis://127.0.0.1:6379')
      assert.equal(config.stack.kafkaControllerPort, 9093)
    })

    it('resolves paths against the working directory', () => {
      const config = loadConfig({}, { cwd })
      assert.equal(config.lakehouse.path, '/srv/churn/data/lakehouse.duckdb')
      assert.equal(config.model.dir, '/srv/churn/data/models')
      assert.equal(config.stack.dir, '/srv/churn/.stack')
    })

    it('names dead-letter topics after the topic they serve', () => {
      const config = loadConfig({}, { cwd })
      assert.equal(config.topics.deadLetter(config.topics.billing), 'telco.billing.events.dlq')
    })

    it('leaves optional variables unset', () => {
      assert.equal(loadConfig({}, { cwd }).stack.javaHome, undefined)
    })
  })

  it('returns a deeply frozen object', () => {
    const config = loadConfig({}, { cwd })
    assert.ok(Object.isFrozen(config))
    assert.ok(Object.isFrozen(config.kafka.brokers))
    assert.ok(Object.isFrozen(config.kafka.brokers[0]))
    assert.throws(() => { (config.topics as { partitions: number }).partitions = 1 }, TypeError)
  })

  it('parses given values into their types', () => {
    const config = loadConfig({
      KAFKA_BROKERS: 'k1:9092, k2:19092',
      TOPIC_PARTITIONS: '12',
      STACK_KAFKA_HEAP: '1G',
      LOG_LEVEL: 'debug',
      STACK_JAVA_HOME: '/opt/jdk-21',
      SCHEMA_REGISTRY_URL: 'https://registry.example/apis/ccompat/v7/'
    }, { cwd })
    assert.deepEqual(config.kafka.brokers, [{ host: 'k1', port: 9092 }, { host: 'k2', port: 19092 }])
    assert.equal(config.topics.partitions, 12)
    assert.equal(config.stack.kafkaHeap, '1g')
    assert.equal(config.log.level, 'debug')
    assert.equal(config.stack.javaHome, '/opt/jdk-21')
    assert.equal(config.stack.javaHomeExplicit, true)
    assert.equal(config.registry.url, 'https://registry.example/apis/ccompat/v7')
  })

  it('treats a blank value as unset', () => {
    assert.equal(loadConfig({ TOPIC_PARTITIONS: '  ' }, { cwd }).topics.partitions, 6)
  })

  it('takes JAVA_HOME as a hint, not as a requirement', () => {
    const config = loadConfig({ JAVA_HOME: '/usr/lib/jvm/java-17' }, { cwd })
    assert.equal(config.stack.javaHome, '/usr/lib/jvm/java-17')
    assert.equal(config.stack.javaHomeExplicit, false)
  })

  describe('when values are invalid', () => {
    it('reports every bad variable at once, with what was expected', () => {
      const env = {
        KAFKA_BROKERS: 'localhost',
        TOPIC_PARTITIONS: '0',
        REDIS_URL: 'http://127.0.0.1:6379',
        LOG_LEVEL: 'loud',
        STACK_KAFKA_HEAP: '12',
        TOPIC_BILLING: 'bad topic!'
      }
      assert.throws(() => loadConfig(env, { cwd }), (error: unknown) => {
        assert.ok(error instanceof ConfigError)
        assert.equal(error.code, 'CHURN_CONFIG_INVALID')
        assert.deepEqual(error.problems.map(p => p.variable).sort(), Object.keys(env).sort())
        for (const name of Object.keys(env)) assert.match(error.message, new RegExp(`${name}=`))
        assert.match(error.message, /TOPIC_PARTITIONS="0": expected an integer from 1 to 10000/)
        assert.match(error.message, /6 problems/)
        return true
      })
    })

    it('reports rules across variables together with the others', () => {
      assert.throws(() => loadConfig({ TOPIC_NETWORK: 'telco.billing.events', STACK_KAFKA_CONTROLLER_PORT: '9092', LOG_FORMAT: 'xml' }, { cwd }), (error: unknown) => {
        assert.ok(error instanceof ConfigError)
        assert.deepEqual(error.problems.map(p => p.variable).sort(), ['LOG_FORMAT', 'STACK_KAFKA_CONTROLLER_PORT', 'TOPIC_NETWORK'])
        assert.match(error.message, /TOPIC_NETWORK="telco.billing.events": expected a topic name different from TOPIC_BILLING/)
        return true
      })
    })

    it('refuses a topic that would collide with a dead-letter topic', () => {
      assert.throws(() => loadConfig({ TOPIC_DEVICE: 'telco.device.dlq' }, { cwd }), /dead-letter suffix/)
    })

    it('masks the password of a bad secret', () => {
      assert.throws(() => loadConfig({ REDIS_URL: 'http://user:hunter2@127.0.0.1:6379' }, { cwd }), (error: unknown) => {
        assert.ok(error instanceof ConfigError)
        assert.doesNotMatch(error.message, /hunter2/)
        assert.match(error.message, /REDIS_URL="http:\/\/user:\*\*\*@127.0.0.1:6379"/)
        return true
      })
    })
  })
})

describe('maskSecret', () => {
  it('hides a URL password and keeps the rest', () => {
    assert.equal(maskSecret('redis://:s3cret@redis:6379/0'), 'redis://:***@redis:6379/0')
    assert.equal(maskSecret('redis://redis:6379'), 'redis://redis:6379')
  })

  it('hides anything that is not a URL entirely', () => {
    assert.equal(maskSecret('s3cret'), '***')
  })
})

describe('renderConfigTable', () => {
  it('is what the README shows', async () => {
    const readme = await readFile(path.resolve(import.meta.dirname, '../../../README.md'), 'utf8')
    const start = readme.indexOf('<!-- config-table:start -->')
    const end = readme.indexOf('<!-- config-table:end -->')
    assert.ok(start >= 0 && end > start, 'README.md lacks the config-table markers')
    const shown = readme.slice(start, end).split('\n').slice(1).join('\n').trim()
    assert.equal(shown, renderConfigTable(), 'README.md configuration table is stale: regenerate it with `npx churn config --doc`')
  })
})
