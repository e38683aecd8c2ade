import { after, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { cp, mkdir, mkdtemp, readdir, rm, stat, truncate, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { distributionDir, ensureDistribution, isComplete, purgeCorruptArtifacts } from '../../../stack/fetch.ts'
import { pinnedVersions } from '../../../stack/services.ts'
import { findMaven } from '../../../stack/tools.ts'
import { config, logger, tools } from '../../helpers/context.ts'

const POM = path.resolve(import.meta.dirname, '../../../stack/maven/pom.xml')
const cacheDir = path.join(config.stack.dir, 'cache')

async function tempDir (): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'churn-fetch-'))
  after(async () => { await rm(dir, { recursive: true, force: true }) })
  return dir
}

describe('distribution cache', () => {
  it('holds complete Kafka and Apicurio distributions after `stack up`', async () => {
    const versions = await pinnedVersions()
    assert.equal(await isComplete(distributionDir(cacheDir, { name: 'kafka', version: versions.kafka })), true)
    assert.equal(await isComplete(distributionDir(cacheDir, { name: 'apicurio', version: versions.apicurio })), true)
  })

  describe('when a distribution is half-finished or truncated', () => {
    it('is not taken as complete', async () => {
      const { kafka } = await pinnedVersions()
      const copy = path.join(await tempDir(), 'kafka')
      await cp(distributionDir(cacheDir, { name: 'kafka', version: kafka }), copy, { recursive: true })
      assert.equal(await isComplete(copy), true)
      const jar = path.join(copy, 'libs', `kafka-clients-${kafka}.jar`)
      await truncate(jar, (await stat(jar)).size - 1000)
      assert.equal(await isComplete(copy), false)
      await rm(path.join(copy, '.complete.json'))
      assert.equal(await isComplete(copy), false, 'a folder without its manifest never counts as complete')
    })
  })

  describe('when the Maven cache holds a corrupt artifact', () => {
    it('deletes it so Maven fetches it again', async () => {
      const repository = await tempDir()
      const dir = path.join(repository, 'org', 'example', 'thing', '1.0')
      await mkdir(dir, { recursive: true })
      await writeFile(path.join(dir, 'thing-1.0.jar'), 'not the bytes that were published')
      await writeFile(path.join(dir, 'thing-1.0.jar.sha1'), '0123456789abcdef0123456789abcdef01234567')
      await writeFile(path.join(dir, 'good.pom'), 'abc')
      await writeFile(path.join(dir, 'good.pom.sha1'), 'a9993e364706816aba3e25717850c26c9cd0d89d  good.pom\n')
      assert.deepEqual(await purgeCorruptArtifacts(repository), [path.join(dir, 'thing-1.0.jar')])
      assert.deepEqual((await readdir(dir)).sort(), ['good.pom', 'good.pom.sha1'])
    })

    it('fetches the distribution again, whole', async () => {
      const { kafka } = await pinnedVersions()
      const cache = await tempDir()
      // Seed the temporary cache with the real Maven repository, then damage one jar in it.
      await cp(path.join(cacheDir, 'm2'), path.join(cache, 'm2'), { recursive: true })
      const jar = path.join(cache, 'm2', 'org', 'apache', 'kafka', 'kafka-clients', kafka, `kafka-clients-${kafka}.jar`)
      const size = (await stat(jar)).size
      await truncate(jar, 1000)
      const dist = await ensureDistribution({ name: 'kafka', version: kafka }, { cacheDir: cache, pom: POM, mvn: await findMaven(tools), env: tools.env, logger })
      assert.equal(await isComplete(dist), true)
      assert.equal((await stat(path.join(dist, 'libs', `kafka-clients-${kafka}.jar`))).size, size)
    })
  })
})
