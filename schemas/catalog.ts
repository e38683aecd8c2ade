/**
 * The catalog of the project's Avro subjects: which `.avsc` files make up each subject's history,
 * and which topic (hence subject, by the topic-name strategy `<topic>-value`) each belongs to.
 * Files are named by a logical subject (`billing.v1.avsc`) because topic names are configuration.
 */
import { readdir, readFile } from 'node:fs/promises'
import path from 'node:path'
import type { Config } from '../config/index.ts'

export const AVRO_DIR = path.join(import.meta.dirname, 'avro')

/** The logical subjects, in the order they are registered. */
export const SUBJECTS = ['billing', 'network', 'device', 'crm-outcome', 'feature-changelog', 'churn-risk'] as const
export type SubjectName = typeof SUBJECTS[number]

/** The source streams ingest consumes, each with its subject. */
export const SOURCE_STREAMS = [
  { stream: 'billing', subject: 'billing', topicKey: 'billing' },
  { stream: 'network', subject: 'network', topicKey: 'network' },
  { stream: 'device', subject: 'device', topicKey: 'device' },
  { stream: 'crm', subject: 'crm-outcome', topicKey: 'crmOutcomes' }
] as const satisfies ReadonlyArray<{ stream: string, subject: SubjectName, topicKey: keyof Config['topics'] }>

export type SourceStream = typeof SOURCE_STREAMS[number]['stream']

/** The streams the project itself produces, each with its subject. */
export const DERIVED_STREAMS = [
  { stream: 'features', subject: 'feature-changelog', topicKey: 'features' },
  { stream: 'risk', subject: 'churn-risk', topicKey: 'churnRisk' }
] as const satisfies ReadonlyArray<{ stream: string, subject: SubjectName, topicKey: keyof Config['topics'] }>

export interface SchemaVersion {
  subject: SubjectName
  version: number
  file: string
  /** The parsed `.avsc` document. */
  schema: Record<string, unknown>
}

/** Every published version of `subject`, oldest first. */
export async function schemaVersions (subject: SubjectName, dir = AVRO_DIR): Promise<SchemaVersion[]> {
  const pattern = new RegExp(`^${subject.replace(/[.-]/g, '\\$&')}\\.v(\\d+)\\.avsc$`)
  const versions: SchemaVersion[] = []
  for (const file of await readdir(dir)) {
    const match = pattern.exec(file)
    if (match === null) continue
    const schema = JSON.parse(await readFile(path.join(dir, file), 'utf8')) as Record<string, unknown>
    versions.push({ subject, version: Number(match[1]), file: path.join(dir, file), schema })
  }
  versions.sort((a, b) => a.version - b.version)
  versions.forEach((v, i) => {
    if (v.version !== i + 1) throw new Error(`${subject}: schema versions must run 1..N without gaps; found v${v.version} at position ${i + 1}`)
  })
  if (versions.length === 0) throw new Error(`no ${subject}.v<N>.avsc in ${dir}`)
  return versions
}

/** The newest version of `subject`: what this build's producers write and consumers read as. */
export async function latestSchema (subject: SubjectName, dir = AVRO_DIR): Promise<SchemaVersion> {
  const versions = await schemaVersions(subject, dir)
  const latest = versions[versions.length - 1]
  if (latest === undefined) throw new Error(`no ${subject} schema`)
  return latest
}

/** The registry subject of a topic under the topic-name strategy. */
export function subjectForTopic (topic: string): string {
  return `${topic}-value`
}
