/**
 * The OpenAPI 3.1 document, generated from the route schemas, at `/docs/json` (and `/docs/yaml`),
 * and Swagger UI at `/docs`. Registered before any route: @fastify/swagger collects routes as
 * they are added. Both are public (`auth.ts`); Swagger UI's "Authorize" button takes the key and
 * sends it as `x-api-key` with "Try it out".
 *
 * Every keyed operation carries the `apiKey` (header `x-api-key`) and `bearer` security schemes
 * and documents the 401 and 429 answers the auth hook gives; public ones say `security: []`. The
 * bull-board dashboard (`/queues`) and the docs routes themselves are left out: they are pages,
 * not the API, and the fuzzer reads this document.
 */
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import type { FastifyInstance, FastifySchema } from 'fastify'
import { DOCS_PATH, isPublicRoute } from './auth.ts'

/** Tags the routes use, in the order the page shows them. */
export const TAGS = [
  { name: 'operations', description: 'Health, readiness and metrics (no key)' },
  { name: 'predictions', description: 'Churn scores by subscriber id, from a profile or feature vector' },
  { name: 'kserve', description: 'KServe V1 and Open Inference Protocol V2' },
  { name: 'quality', description: 'Data quality of the lakehouse' }
] as const

/**
 * The documented body of the auth hook's 401 and the rate limit's 429: Fastify's shape on most
 * routes, `{ error }` alone where the model-serving protocols answer the rate limit in theirs.
 */
export const errorSchema = {
  type: 'object',
  required: ['error'],
  properties: {
    statusCode: { type: 'integer' },
    code: { type: 'string' },
    error: { type: 'string' },
    message: { type: 'string' }
  }
} as const

const HIDDEN_PREFIXES = ['/queues', DOCS_PATH]

/** `info.version`: the version of this API's contract (the `/api/v1` paths). */
export const API_VERSION = '1.0.0'

export async function registerOpenApi (app: FastifyInstance): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Churn scorer API',
        description: 'Churn-risk predictions by subscriber, from profiles and feature vectors, and the KServe V1 / Open Inference Protocol V2 endpoints. Every route but health, readiness, metrics and these docs needs an API key, in `x-api-key` or as `Authorization: Bearer <key>`.',
        version: API_VERSION
      },
      components: {
        securitySchemes: {
          apiKey: { type: 'apiKey', in: 'header', name: 'x-api-key', description: 'One of the keys in API_KEYS.' },
          bearer: { type: 'http', scheme: 'bearer', description: 'The same key as a bearer token.' }
        }
      },
      tags: [...TAGS]
    },
    transform: ({ schema, url }) => ({ schema: describeAccess(schema, url), url })
  })
  await app.register(swaggerUi, { routePrefix: DOCS_PATH, uiConfig: { persistAuthorization: false } })
}

/** The route's schema as documented: hidden, public, or keyed with the auth answers added. */
export function describeAccess (schema: FastifySchema | undefined, url: string): FastifySchema {
  const base: FastifySchema = schema ?? {}
  if (HIDDEN_PREFIXES.some(prefix => url === prefix || url.startsWith(`${prefix}/`))) return { ...base, hide: true }
  if (isPublicRoute(url)) return { tags: ['operations'], ...base, security: [] }
  const response = { ...(base.response as Record<string, unknown> | undefined) }
  // A route's own 4xx schema, when it has one, documents these answers already.
  if (!('4xx' in response)) {
    response['401'] ??= { description: 'Missing or invalid API key', ...errorSchema }
    response['429'] ??= { description: 'Rate limit of the key exceeded (Retry-After says when to come back)', ...errorSchema }
  }
  return { ...base, response, security: [{ apiKey: [] }, { bearer: [] }] }
}
