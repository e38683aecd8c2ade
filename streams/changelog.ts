/**
 * The feature changelog: Gold rows as `FeatureChange` Avro records, keyed by subscriber id, on a
 * compacted topic. Ingest writes it after each commit; the scorer reads it.
 */
import type { Type } from 'avsc'
import { latestSchema } from '../schemas/catalog.ts'
import { avroType, encodeFramed } from '../schemas/codec.ts'
import type { FeatureChange, GoldFeatures } from '../schemas/types.generated.ts'
import type { GoldRow } from '../lakehouse/lakehouse.ts'
import { lakehouseFeatureHash } from '../training/sets.ts'

/** The definition these features are computed with; the scorer compares its model's with it. */
const FEATURE_HASH = lakehouseFeatureHash()

export async function featureChangeType (): Promise<Type> {
  return avroType((await latestSchema('feature-changelog')).schema)
}

export function toFeatureChange (row: GoldRow): FeatureChange {
  return {
    subscriberId: row.subscriberId,
    version: row.version,
    featureTime: row.lastEventMs,
    firstEventTime: row.firstEventMs,
    updatedAt: row.updatedAtMs,
    features: row.features as unknown as GoldFeatures,
    featureHash: FEATURE_HASH
  }
}

/** Kafka messages for changed Gold rows, in the Confluent wire format. */
export function changelogMessages (rows: readonly GoldRow[], schemaId: number, type: Type): Array<{ key: string, value: Buffer }> {
  return rows.map(row => ({ key: row.subscriberId, value: encodeFramed(schemaId, type, toFeatureChange(row)) }))
}
