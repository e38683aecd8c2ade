/**
 * Registers every published version of every subject, oldest first, so the registry's history of
 * each subject is the history of its `.avsc` files and each new version is checked against the
 * previous ones (BACKWARD) before anything can produce with it.
 */
import type { SchemaRegistry } from '@kafkajs/confluent-schema-registry'
import type { Config } from '../config/index.ts'
import { DERIVED_STREAMS, SOURCE_STREAMS, schemaVersions, subjectForTopic } from './catalog.ts'
import type { SubjectName } from './catalog.ts'
import { registerAvroSchema } from './registry.ts'

export interface RegisteredSubject {
  name: SubjectName
  subject: string
  topic: string
  /** Schema id of each version, v1 first. */
  ids: number[]
  /** The id producers of this build write with. */
  latestId: number
}

/** Registers the source streams' subjects (what producers and ingest need). */
export async function registerSourceSchemas (options: { registry: SchemaRegistry, url: string, topics: Config['topics'] }): Promise<RegisteredSubject[]> {
  return await registerStreams(SOURCE_STREAMS, options)
}

/** Registers the subjects of the streams the project produces itself (the feature changelog). */
export async function registerDerivedSchemas (options: { registry: SchemaRegistry, url: string, topics: Config['topics'] }): Promise<RegisteredSubject[]> {
  return await registerStreams(DERIVED_STREAMS, options)
}

async function registerStreams (
  streams: ReadonlyArray<{ subject: SubjectName, topicKey: typeof SOURCE_STREAMS[number]['topicKey'] | typeof DERIVED_STREAMS[number]['topicKey'] }>,
  options: { registry: SchemaRegistry, url: string, topics: Config['topics'] }
): Promise<RegisteredSubject[]> {
  const registered: RegisteredSubject[] = []
  for (const source of streams) {
    const topic = options.topics[source.topicKey]
    const subject = subjectForTopic(topic)
    const ids: number[] = []
    for (const version of await schemaVersions(source.subject)) {
      ids.push(await registerAvroSchema({ registry: options.registry, url: options.url, subject, schema: version.schema }))
    }
    registered.push({ name: source.subject, subject, topic, ids, latestId: ids[ids.length - 1] ?? -1 })
  }
  return registered
}
