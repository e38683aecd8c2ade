/**
 * `POST /api/v1/predict`: scores what the caller sends, not what the store holds. One of
 * `features` (one row of named features), `instances` (rows, each a vector in model feature
 * order or named features), `profile` or `profiles` (raw customer profiles, for a model trained
 * on a customer table such as the Telco CSV). Each row gets the reference design's answer
 * (probability, risk level, recommended action) and the features that pushed it up.
 */
import type { FastifyInstance } from 'fastify'
import { RequestError } from '../../errors.ts'
import { apiErrorSchema } from '../errors.ts'
import { servingModel } from './deps.ts'
import type { RoutesDeps } from './deps.ts'
import { assess, countPredictions, namedFeaturesSchema, profileSchema, reasonSchema, reasonsOf, scoreRows, vectorSchema } from './rows.ts'
import type { Assessment, ReasonBody, Row } from './rows.ts'

export interface PredictBody {
  features?: Record<string, number | null>
  instances?: Array<Array<number | null> | Record<string, number | null>>
  profile?: Record<string, string | number | boolean | null>
  profiles?: Array<Record<string, string | number | boolean | null>>
}

export interface PredictReply {
  model_name: string
  model_version: number
  predictions: Array<Assessment & { reasons: ReasonBody[] }>
}

const INPUTS = ['features', 'instances', 'profile', 'profiles'] as const

export function predictRoute (app: FastifyInstance, deps: RoutesDeps): void {
  const { maxBatch, bodyLimitBytes } = deps.config.api
  const body = {
    type: 'object',
    description: 'Exactly one of features, instances, profile, profiles.',
    additionalProperties: false,
    properties: {
      features: namedFeaturesSchema,
      instances: { type: 'array', minItems: 1, maxItems: maxBatch, items: { anyOf: [vectorSchema, namedFeaturesSchema] } },
      profile: profileSchema,
      profiles: { type: 'array', minItems: 1, maxItems: maxBatch, items: profileSchema }
    }
  } as const
  const response = {
    type: 'object',
    required: ['model_name', 'model_version', 'predictions'],
    properties: {
      model_name: { type: 'string' },
      model_version: { type: 'integer' },
      predictions: {
        type: 'array',
        items: {
          type: 'object',
          required: ['churn_probability', 'risk_level', 'recommended_action', 'reasons'],
          properties: {
            churn_probability: { type: 'number', description: 'Rounded to 3 places.' },
            risk_level: { type: 'string', enum: ['low', 'medium', 'high'] },
            recommended_action: { type: 'string' },
            reasons: { type: 'array', items: reasonSchema }
          }
        }
      }
    }
  } as const

  app.post<{ Body: PredictBody }>('/api/v1/predict', {
    bodyLimit: bodyLimitBytes,
    schema: { summary: 'Score posted features or customer profiles', tags: ['predict'], body, response: { 200: response, '4xx': apiErrorSchema, '5xx': apiErrorSchema } }
  }, request => {
    const given = INPUTS.filter(key => request.body[key] !== undefined)
    if (given.length !== 1) {
      throw new RequestError('CHURN_API_BAD_REQUEST', 400, `body must have exactly one of ${INPUTS.join(', ')}; it has ${given.length === 0 ? 'none' : given.join(' and ')}`)
    }
    const input = given[0] as typeof INPUTS[number]
    const rows = toRows(request.body, input)
    const model = servingModel(deps)
    const scored = scoreRows(model, rows, r => input === 'features' || input === 'profile' ? `body/${input}` : `body/${input}/${r}`)
    countPredictions(request.server, scored.probabilities, deps.config.risk)
    const reply: PredictReply = {
      model_name: model.name,
      model_version: model.version,
      predictions: Array.from(scored.probabilities, (p, r) => ({ ...assess(p, deps.config.risk), reasons: reasonsOf(model, scored, r) }))
    }
    return reply
  })
}

function toRows (body: PredictBody, input: typeof INPUTS[number]): Row[] {
  switch (input) {
    case 'features': return [{ kind: 'named', values: body.features ?? {} }]
    case 'instances': return (body.instances ?? []).map(values => Array.isArray(values) ? { kind: 'vector', values } : { kind: 'named', values })
    case 'profile': return [{ kind: 'profile', values: body.profile ?? {} }]
    case 'profiles': return (body.profiles ?? []).map(values => ({ kind: 'profile', values }))
  }
}
