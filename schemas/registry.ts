/**
 * Registration through any Confluent-compatible schema registry (Confluent's own, or Apicurio
 * under `/apis/ccompat/v7`), with the subject's compatibility level set before the schema.
 *
 * Why the level is set first: `@kafkajs/confluent-schema-registry`'s `register()` reads
 * `GET /config/<subject>` and throws when the level it finds differs from the one requested.
 * Confluent answers 404 for a subject without its own level, which the client takes as "first
 * registration" and then sets the level itself; Apicurio answers 200 with the global default
 * (NONE), so the client refuses to register at all. Setting the subject's level explicitly
 * (`PUT /config/<subject>`, which both registries implement) makes the check pass on both and
 * makes the subject's rule explicit rather than inherited from a global default.
 */
import { COMPATIBILITY, SchemaRegistry, SchemaType } from '@kafkajs/confluent-schema-registry'
import { describeError } from '../core/errors.ts'
import { SchemaError } from './errors.ts'

export type Compatibility = `${COMPATIBILITY}`

export interface RegistryClientOptions {
  url: string
  /** Retries of a failed request (network errors, 5xx) before giving up. @defaultValue 3 */
  retries?: number
}

export function createSchemaRegistry (options: RegistryClientOptions): SchemaRegistry {
  return new SchemaRegistry({
    host: options.url,
    clientId: 'churn-scorer',
    retry: { retries: options.retries ?? 3, initialRetryTimeInSecs: 0.2, maxRetryTimeInSecs: 5 }
  })
}

function statusOf (error: unknown): number | undefined {
  if (typeof error === 'object' && error !== null && 'status' in error) {
    const status = (error).status
    return typeof status === 'number' ? status : undefined
  }
  return undefined
}

/** The subject's own compatibility level, or undefined when it has none (or it cannot be read). */
async function subjectCompatibility (url: string, subject: string): Promise<string | undefined> {
  try {
    const response = await fetch(`${url}/config/${encodeURIComponent(subject)}`, { headers: { accept: 'application/json' }, signal: AbortSignal.timeout(10_000) })
    if (!response.ok) return undefined
    const body = await response.json() as { compatibilityLevel?: unknown, compatibility?: unknown }
    const level = body.compatibilityLevel ?? body.compatibility
    return typeof level === 'string' ? level.toUpperCase() : undefined
  } catch {
    return undefined
  }
}

/**
 * Makes `level` the subject's own compatibility level (`PUT /config/<subject>`), unless it already
 * is: credentials that may register schemas but not change configuration then still work on
 * subjects an operator has set up.
 */
export async function setSubjectCompatibility (url: string, subject: string, level: Compatibility): Promise<void> {
  if (await subjectCompatibility(url, subject) === level) return
  let response: Response
  try {
    response = await fetch(`${url}/config/${encodeURIComponent(subject)}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/vnd.schemaregistry.v1+json', accept: 'application/json' },
      body: JSON.stringify({ compatibility: level }),
      signal: AbortSignal.timeout(10_000)
    })
  } catch (error) {
    throw new SchemaError('CHURN_SCHEMA_REGISTRY_UNAVAILABLE', `The schema registry at ${url} did not answer: ${describeError(error)}`, { cause: error, retriable: true, context: { subject } })
  }
  if (!response.ok) {
    const body = await response.text().catch(() => '')
    // Two registrants racing on a new subject (the producer and ingest starting together):
    // Apicurio answers the second PUT 409 "rule already exists". The level the other one set is
    // the one asked for, so that is success; any other level is still refused below.
    if (response.status === 409 && await subjectCompatibility(url, subject) === level) return
    throw new SchemaError(response.status >= 500 ? 'CHURN_SCHEMA_REGISTRY_UNAVAILABLE' : 'CHURN_SCHEMA_REGISTRY_REFUSED', `Setting ${level} compatibility on subject ${subject} failed: ${response.status} ${body}`, { retriable: response.status >= 500, context: { subject } })
  }
}

export interface RegisterOptions {
  registry: SchemaRegistry
  /** The registry's base URL (the same the client was built with). */
  url: string
  subject: string
  /** An Avro schema as parsed JSON (the contents of an `.avsc` file). */
  schema: object
  /** @defaultValue 'BACKWARD' */
  compatibility?: Compatibility
}

/**
 * Registers an Avro schema under `subject` with the subject's compatibility enforced, and
 * returns its id. Registering an identical schema again returns the same id.
 * @throws SchemaError `CHURN_SCHEMA_INCOMPATIBLE` when the registry refuses it as incompatible
 *   with the subject's earlier versions; `CHURN_SCHEMA_INVALID` for a schema it cannot parse.
 */
export async function registerAvroSchema (options: RegisterOptions): Promise<number> {
  const compatibility = options.compatibility ?? 'BACKWARD'
  await setSubjectCompatibility(options.url, options.subject, compatibility)
  try {
    const { id } = await options.registry.register(
      { type: SchemaType.AVRO, schema: JSON.stringify(options.schema) },
      { subject: options.subject, compatibility: COMPATIBILITY[compatibility], updateConfig: false }
    )
    return id
  } catch (error) {
    const status = statusOf(error)
    const context = { subject: options.subject, compatibility }
    if (status === 409) throw new SchemaError('CHURN_SCHEMA_INCOMPATIBLE', `The registry refused the schema for ${options.subject}: it is not ${compatibility} compatible with the subject's earlier versions. ${describeError(error)}`, { cause: error, context })
    // The client parses the schema with avsc before sending it (ArgumentError, InvalidSchemaError);
    // the registry answers 422 for what only it can judge.
    const localRefusals = ['ConfluentSchemaRegistryArgumentError', 'ConfluentSchemaRegistryInvalidSchemaError', 'ConfluentSchemaRegistryValidationError']
    if (status === 422 || (error instanceof Error && localRefusals.includes(error.name))) {
      throw new SchemaError('CHURN_SCHEMA_INVALID', `The schema for ${options.subject} is not valid Avro: ${describeError(error)}`, { cause: error, context })
    }
    if (status !== undefined && status < 500) throw new SchemaError('CHURN_SCHEMA_REGISTRY_REFUSED', `Registering ${options.subject} failed: ${describeError(error)}`, { cause: error, context })
    throw new SchemaError('CHURN_SCHEMA_REGISTRY_UNAVAILABLE', `Registering ${options.subject} failed: ${describeError(error)}`, { cause: error, retriable: true, context })
  }
}
