import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { pinnedVersions, SERVICE_NAMES, stackPaths } from '../../../stack/services.ts'

describe('pinnedVersions', () => {
  it('reads a Kafka 4.x and an Apicurio Registry 3.x from the stack\'s pom', async () => {
    const versions = await pinnedVersions()
    assert.match(versions.kafka, /^4\.\d+\.\d+$/)
    assert.match(versions.apicurio, /^3\.\d+\.\d+$/)
  })

  it('reads an MLflow 3.x from the Python requirements', async () => {
    assert.match((await pinnedVersions()).mlflow, /^3\.\d+\.\d+$/)
  })
})

describe('stackPaths', () => {
  it('keeps cache, data, logs and pid files apart under the stack folder', () => {
    const paths = stackPaths('/w/.stack')
    assert.equal(paths.cache, '/w/.stack/cache')
    assert.equal(paths.data('kafka'), '/w/.stack/data/kafka')
    assert.equal(paths.log('registry'), '/w/.stack/logs/registry.log')
    assert.equal(paths.pid('redis'), '/w/.stack/run/redis.pid')
    assert.equal(paths.data('mlflow'), '/w/.stack/data/mlflow')
  })
})

describe('SERVICE_NAMES', () => {
  it('lists the four services of the local stack in start order', () => {
    assert.deepEqual(SERVICE_NAMES, ['kafka', 'registry', 'redis', 'mlflow'])
  })
})
