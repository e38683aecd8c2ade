/**
 * The Confluent wire format (magic byte 0, 4-byte big-endian schema id, Avro body) with a writer
 * schema cache and reader/writer resolution, so a consumer built against one version of a subject
 * reads events written with any compatible version.
 *
 * Decoding is split for the hot path: `loadWriters(ids)` fetches the writer schemas a micro-batch
 * needs (once per id per process), then `decode` is synchronous and allocates nothing beyond the
 * decoded record. Every failure is classified:
 * - `CHURN_AVRO_BAD_FRAME`: too short or not magic byte 0 (poison);
 * - `CHURN_AVRO_UNKNOWN_SCHEMA`: the registry does not know the id, after retries (poison);
 * - `CHURN_AVRO_WRONG_SCHEMA`: the writer schema cannot be read as the reader schema (poison);
 * - `CHURN_AVRO_CORRUPT`: the body does not decode under its writer schema (poison);
 * - `CHURN_SCHEMA_REGISTRY_UNAVAILABLE`: the registry is down (retriable; never a reason to
 *   dead-letter a message that may be perfectly good).
 */
import avro from 'avsc'
import type { Type } from 'avsc'
import { setTimeout as sleep } from 'node:timers/promises'
import { describeError } from '../core/errors.ts'
import { SchemaError } from './errors.ts'

export const MAGIC_BYTE = 0
export const FRAME_HEADER_BYTES = 5

export interface AvroCodecOptions {
  /** Base URL of the Confluent-compatible registry API. */
  registryUrl: string
  /**
   * How many times an unknown schema id is looked up again before the message counts as poison:
   * a schema registered a moment ago may not have reached every registry replica.
   * @defaultValue 3
   */
  unknownIdRetries?: number
  /** @defaultValue 200 */
  retryDelayMs?: number
  /** @defaultValue 10000 */
  requestTimeoutMs?: number
}

/** Builds an avsc type from a parsed `.avsc` document; logical types stay their underlying type. */
export function avroType (schema: object): Type {
  return avro.Type.forSchema(schema as avro.Schema, { wrapUnions: false })
}

/** Frames an Avro body in the Confluent wire format. */
export function encodeFramed (schemaId: number, type: Type, value: unknown): Buffer {
  const body = type.toBuffer(value)
  const framed = Buffer.allocUnsafe(FRAME_HEADER_BYTES + body.length)
  framed.writeUInt8(MAGIC_BYTE, 0)
  framed.writeInt32BE(schemaId, 1)
  body.copy(framed, FRAME_HEADER_BYTES)
  return framed
}

/** The schema id of a framed message, or a `CHURN_AVRO_BAD_FRAME` error. */
export function frameSchemaId (buffer: Buffer | null): number {
  if (buffer === null || buffer.length < FRAME_HEADER_BYTES) {
    throw new SchemaError('CHURN_AVRO_BAD_FRAME', `message of ${buffer?.length ?? 0} bytes is shorter than the ${FRAME_HEADER_BYTES}-byte Confluent frame header`)
  }
  if (buffer[0] !== MAGIC_BYTE) {
    throw new SchemaError('CHURN_AVRO_BAD_FRAME', `magic byte is ${buffer[0] ?? ''}, not ${MAGIC_BYTE}: not Confluent-framed Avro`)
  }
  return buffer.readInt32BE(1)
}

export class AvroCodec {
  readonly #options: Required<AvroCodecOptions>
  readonly #writers = new Map<number, Type>()
  readonly #unknown = new Set<number>()
  readonly #loading = new Map<number, Promise<void>>()
  /** Resolvers per reader type, per writer id; `null` when writer and reader are the same schema. */
  readonly #resolvers = new WeakMap<Type, Map<number, ReturnType<Type['createResolver']> | null | SchemaError>>()

  constructor (options: AvroCodecOptions) {
    this.#options = { unknownIdRetries: 3, retryDelayMs: 200, requestTimeoutMs: 10_000, ...options }
  }

  /** Records a writer schema already known by id (one this process just registered), sparing a lookup. */
  remember (id: number, writer: Type): void {
    this.#writers.set(id, writer)
    this.#unknown.delete(id)
  }

  /** Makes the writer schemas of `ids` available to `decode`; unknown ids are remembered as such. */
  async loadWriters (ids: Iterable<number>): Promise<void> {
    const pending: Array<Promise<void>> = []
    for (const id of new Set(ids)) {
      if (this.#writers.has(id) || this.#unknown.has(id)) continue
      let loading = this.#loading.get(id)
      if (loading === undefined) {
        loading = this.#fetchWriter(id).finally(() => this.#loading.delete(id))
        this.#loading.set(id, loading)
      }
      pending.push(loading)
    }
    await Promise.all(pending)
  }

  async #fetchWriter (id: number): Promise<void> {
    const { registryUrl, unknownIdRetries, retryDelayMs, requestTimeoutMs } = this.#options
    for (let attempt = 0; ; attempt++) {
      let response: Response
      try {
        response = await fetch(`${registryUrl}/schemas/ids/${id}`, { headers: { accept: 'application/json' }, signal: AbortSignal.timeout(requestTimeoutMs) })
      } catch (error) {
        throw new SchemaError('CHURN_SCHEMA_REGISTRY_UNAVAILABLE', `The schema registry did not answer for schema id ${id}: ${describeError(error)}`, { cause: error, retriable: true, context: { schemaId: id } })
      }
      if (response.status === 404) {
        await response.body?.cancel()
        if (attempt >= unknownIdRetries) {
          this.#unknown.add(id)
          return
        }
        await sleep(retryDelayMs * 2 ** attempt)
        continue
      }
      if (!response.ok) {
        await response.body?.cancel()
        throw new SchemaError('CHURN_SCHEMA_REGISTRY_UNAVAILABLE', `The schema registry answered ${response.status} for schema id ${id}`, { retriable: true, context: { schemaId: id } })
      }
      const body = await response.json() as { schema?: unknown, schemaType?: unknown }
      if (typeof body.schema !== 'string' || (body.schemaType !== undefined && body.schemaType !== 'AVRO')) {
        // Not an Avro schema (JSON Schema, Protobuf): no Avro reader can read it.
        this.#writers.set(id, avroType({ type: 'record', name: 'NotAvro', namespace: `dev.churnscorer.notavro.${typeof body.schemaType === 'string' ? body.schemaType.toLowerCase() : 'unknown'}`, fields: [] }))
        return
      }
      this.#writers.set(id, avroType(JSON.parse(body.schema) as object))
      return
    }
  }

  #resolver (reader: Type, id: number): ReturnType<Type['createResolver']> | null {
    let byId = this.#resolvers.get(reader)
    if (byId === undefined) {
      byId = new Map()
      this.#resolvers.set(reader, byId)
    }
    let resolver = byId.get(id)
    if (resolver === undefined) {
      const writer = this.#writers.get(id)
      if (writer === undefined) {
        const known = this.#unknown.has(id)
        throw new SchemaError('CHURN_AVRO_UNKNOWN_SCHEMA', known ? `schema id ${id} is unknown to the registry` : `schema id ${id} was not loaded; call loadWriters first`, { context: { schemaId: id } })
      }
      try {
        resolver = writer.equals(reader) ? null : reader.createResolver(writer)
      } catch (error) {
        resolver = new SchemaError('CHURN_AVRO_WRONG_SCHEMA', `schema id ${id} (${writer.name ?? writer.typeName}) cannot be read as ${reader.name ?? reader.typeName}: ${describeError(error)}`, { context: { schemaId: id } })
      }
      byId.set(id, resolver)
    }
    if (resolver instanceof SchemaError) throw resolver
    return resolver
  }

  /**
   * Decodes a framed message as `reader`, whose writer schema `loadWriters` has loaded.
   * @throws SchemaError with one of the poison codes above.
   */
  decode<T> (buffer: Buffer | null, reader: Type): { value: T, schemaId: number } {
    const schemaId = frameSchemaId(buffer)
    const resolver = this.#resolver(reader, schemaId)
    try {
      const body = (buffer as Buffer).subarray(FRAME_HEADER_BYTES)
      const value = (resolver === null ? reader.fromBuffer(body) : reader.fromBuffer(body, resolver)) as T
      return { value, schemaId }
    } catch (error) {
      throw new SchemaError('CHURN_AVRO_CORRUPT', `the body does not decode as schema id ${schemaId}: ${describeError(error)}`, { cause: error, context: { schemaId } })
    }
  }
}
