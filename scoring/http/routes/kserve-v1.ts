/**
 * The KServe V1 data-plane protocol over the served model: list, readiness, and
 * `POST /v1/models/<name>:predict` with `{"instances": [...]}` answering `{"predictions": [p, ...]}`,
 * one churn probability per instance. An instance is a feature vector in model feature order, or
 * an object: named features for a lakehouse model, a raw customer profile for a tabular one.
 * Errors answer `{"error": "..."}` (see `../errors.ts`); a name other than the served one is 404.
 *
 * The predict path has a literal colon after the name. find-my-way reads `:name::predict` as one
 * parameter named `name::predict`, so the name parameter carries a pattern (anything but `:` and
 * `/`), after which `::` is the escaped literal colon.
 */
import type { FastifyInstance } from 'fastify'
import { protocolErrorSchema } from '../errors.ts'
import { checkServedName, servingModel } from './deps.ts'
import type { RoutesDeps } from './deps.ts'
import { countPredictions, scoreRows } from './rows.ts'
import type { Row } from './rows.ts'

export interface V1PredictBody {
  instances: Array<Array<number | null> | Record<string, unknown>>
}

const nameParams = { type: 'object', required: ['name'], properties: { name: { type: 'string' } } } as const
const errors = { '4xx': protocolErrorSchema, '5xx': protocolErrorSchema } as const
const modelStatus = { type: 'object', required: ['name', 'ready'], properties: { name: { type: 'string' }, ready: { type: 'boolean' } } } as const

export function kserveV1Routes (app: FastifyInstance, deps: RoutesDeps): void {
  const { maxBatch, bodyLimitBytes } = deps.config.api

  app.get('/v1/models', {
    schema: { summary: 'KServe V1: served models', tags: ['kserve-v1'], response: { 200: { type: 'object', required: ['models'], properties: { models: { type: 'array', items: { type: 'string' } } } }, ...errors } }
  }, () => ({ models: [deps.config.serving.modelName] }))

  app.get<{ Params: { name: string } }>('/v1/models/:name', {
    schema: { summary: 'KServe V1: model readiness', tags: ['kserve-v1'], params: nameParams, response: { 200: modelStatus, 503: modelStatus, ...errors } }
  }, async (request, reply) => {
    const name = checkServedName(deps, request.params.name)
    const ready = deps.models?.current !== undefined
    return await reply.code(ready ? 200 : 503).send({ name, ready })
  })

  app.post<{ Params: { name: string }, Body: V1PredictBody }>('/v1/models/:name(^[^:/]+)::predict', {
    bodyLimit: bodyLimitBytes,
    schema: {
      summary: 'KServe V1: predict churn probabilities',
      tags: ['kserve-v1'],
      params: nameParams,
      body: {
        type: 'object',
        required: ['instances'],
        properties: {
          instances: {
            type: 'array',
            minItems: 1,
            maxItems: maxBatch,
            items: {
              anyOf: [
                { type: 'array', items: { type: ['number', 'null'] }, description: 'Features in model feature order.' },
                { type: 'object', description: 'Named features (lakehouse model) or a raw customer profile (tabular model).' }
              ]
            }
          }
        }
      },
      response: { 200: { type: 'object', required: ['predictions'], properties: { predictions: { type: 'array', items: { type: 'number' } } } }, ...errors }
    }
  }, request => {
    checkServedName(deps, request.params.name)
    const model = servingModel(deps)
    const tabular = model.artifact.features.kind === 'tabular'
    const rows = request.body.instances.map((values): Row => Array.isArray(values)
      ? { kind: 'vector', values }
      : tabular ? { kind: 'profile', values } : { kind: 'named', values })
    const scored = scoreRows(model, rows, r => `instances[${r}]`)
    countPredictions(request.server, scored.probabilities, deps.config.risk)
    return { predictions: Array.from(scored.probabilities) }
  })
}
