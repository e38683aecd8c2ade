/**
 * The columns of each source's Bronze and Silver tables, derived from the newest `.avsc` of its
 * subject (one definition: a field added in a new schema version becomes a nullable column the
 * next time the lakehouse opens), plus how each value is written to a data chunk.
 *
 * Naming: Avro `camelCase` fields become `snake_case` columns; a `timestamp-millis` field gets an
 * `_ms` suffix (`eventTime` → `event_time_ms`, a BIGINT of epoch milliseconds) and a `date` field
 * stays a DATE. Enums are VARCHAR (their symbols), so a new symbol never needs a migration.
 */
import { BIGINT, BOOLEAN, DATE, DOUBLE, DuckDBDateValue, INTEGER, VARCHAR } from '@duckdb/node-api'
import type { DuckDBType, DuckDBValue } from '@duckdb/node-api'
import { SOURCE_STREAMS, latestSchema } from '../schemas/catalog.ts'
import type { SourceStream } from '../schemas/catalog.ts'
import { LakehouseError } from './errors.ts'

export type DuckType = 'VARCHAR' | 'DOUBLE' | 'INTEGER' | 'BIGINT' | 'BOOLEAN' | 'DATE'

export interface SourceColumn {
  /** The Avro field it comes from. */
  field: string
  /** The column name. */
  name: string
  type: DuckType
  /** Whether the Avro type admits null (a `["null", T]` union). */
  nullable: boolean
}

export interface SourceTable {
  stream: SourceStream
  /** `bronze_<stream>` */
  bronze: string
  /** `silver_<stream>` */
  silver: string
  columns: SourceColumn[]
}

/** Columns every Bronze row carries besides the event's own: where it came from and when. */
export const PROVENANCE_COLUMNS = [
  { name: 'kafka_topic', type: 'VARCHAR' },
  { name: 'kafka_partition', type: 'INTEGER' },
  { name: 'kafka_offset', type: 'BIGINT' },
  { name: 'schema_id', type: 'INTEGER' },
  { name: 'batch_id', type: 'BIGINT' },
  { name: 'ingested_at_ms', type: 'BIGINT' }
] as const satisfies ReadonlyArray<{ name: string, type: DuckType }>

/** The envelope every source event starts with; the lakehouse's rules rely on these columns. */
export const ENVELOPE_COLUMNS = ['event_id', 'subscriber_id', 'event_time_ms', 'quality_score'] as const

export function snakeCase (name: string): string {
  return name.replace(/([a-z0-9])([A-Z])/g, '$1_$2').replace(/([A-Z])([A-Z][a-z])/g, '$1_$2').toLowerCase()
}

type AvroTypeSpec = string | { type: AvroTypeSpec, logicalType?: string, symbols?: unknown } | AvroTypeSpec[]

function columnOf (field: { name: string, type: AvroTypeSpec }): SourceColumn {
  let spec = field.type
  let nullable = false
  if (Array.isArray(spec)) {
    const branches = spec.filter(branch => branch !== 'null')
    if (branches.length !== 1 || branches[0] === undefined) {
      throw new LakehouseError('CHURN_LAKEHOUSE_SCHEMA_UNSUPPORTED', `field ${field.name}: only ["null", T] unions map to a column`)
    }
    nullable = branches.length < spec.length
    spec = branches[0]
  }
  if (Array.isArray(spec)) throw new LakehouseError('CHURN_LAKEHOUSE_SCHEMA_UNSUPPORTED', `field ${field.name}: nested unions do not map to a column`)
  let name = snakeCase(field.name)
  let type: DuckType
  const primitive = typeof spec === 'string' ? spec : typeof spec.type === 'string' ? spec.type : 'nested'
  const logical = typeof spec === 'string' ? undefined : spec.logicalType
  if (logical === 'timestamp-millis') {
    type = 'BIGINT'
    name = `${name}_ms`
  } else if (logical === 'date') {
    type = 'DATE'
  } else {
    switch (primitive) {
      case 'string':
      case 'enum': type = 'VARCHAR'; break
      case 'double':
      case 'float': type = 'DOUBLE'; break
      case 'int': type = 'INTEGER'; break
      case 'long': type = 'BIGINT'; break
      case 'boolean': type = 'BOOLEAN'; break
      default:
        throw new LakehouseError('CHURN_LAKEHOUSE_SCHEMA_UNSUPPORTED', `field ${field.name}: Avro type ${JSON.stringify(primitive)} has no column mapping`)
    }
  }
  return { field: field.name, name, type, nullable }
}

/** The Bronze/Silver layout of every source stream, from the newest schema of each subject. */
export async function sourceTables (): Promise<SourceTable[]> {
  const tables: SourceTable[] = []
  for (const source of SOURCE_STREAMS) {
    const { schema } = await latestSchema(source.subject)
    const fields = schema.fields as Array<{ name: string, type: AvroTypeSpec }>
    const columns = fields.map(columnOf)
    for (const [i, expected] of ENVELOPE_COLUMNS.entries()) {
      if (columns[i]?.name !== expected) {
        throw new LakehouseError('CHURN_LAKEHOUSE_SCHEMA_UNSUPPORTED', `${source.subject}: field ${i + 1} must map to ${expected}, found ${columns[i]?.name ?? 'nothing'}`)
      }
    }
    tables.push({ stream: source.stream, bronze: `bronze_${source.stream}`, silver: `silver_${source.stream}`, columns })
  }
  return tables
}

/** The DuckDB type of a column type. */
export function duckType (type: DuckType): DuckDBType {
  switch (type) {
    case 'VARCHAR': return VARCHAR
    case 'DOUBLE': return DOUBLE
    case 'INTEGER': return INTEGER
    case 'BIGINT': return BIGINT
    case 'BOOLEAN': return BOOLEAN
    case 'DATE': return DATE
  }
}

const JS_TYPE: Readonly<Record<DuckType, string>> = { VARCHAR: 'string', DOUBLE: 'number', INTEGER: 'number', BIGINT: 'number', BOOLEAN: 'boolean', DATE: 'number' }

/**
 * A value as avsc decoded it, as a data chunk vector of the column's type takes it. A value of
 * the wrong JavaScript type throws: a typed vector would silently store it as NaN or 0.
 */
export function toVectorItem (column: SourceColumn, value: unknown): DuckDBValue {
  if (value === null || value === undefined) return null
  if (typeof value !== JS_TYPE[column.type]) {
    throw new LakehouseError('CHURN_LAKEHOUSE_BAD_VALUE', `column ${column.name} (${column.type}) cannot hold ${typeof value} ${JSON.stringify(value)}`)
  }
  switch (column.type) {
    case 'BIGINT': return BigInt(value as number)
    case 'DATE': return new DuckDBDateValue(value as number)
    default: return value as DuckDBValue
  }
}
