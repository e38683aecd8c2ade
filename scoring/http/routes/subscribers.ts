/**
 * `GET /api/v1/subscribers/:id/predict`: the reference design's answer for a subscriber, from
 * the online store the scorer keeps. The stored score is reported as is when the serving model
 * made it (`scored_by: 'store'`); when another version did (a model promoted since, and the
 * subscriber's features have not changed), the stored features are scored again with the serving
 * model, `days_since_last_activity` as of now as the scorer would (`scored_by: 'api'`; the store
 * is not written: that is the scorer's job, and `churn score --rescore` does it for everyone).
 * The reasons always come from scoring the stored features with the serving model.
 */
import type { FastifyInstance } from 'fastify'
import { DAYS_SINCE_LAST_ACTIVITY, daysSinceLastActivity } from '../../../lakehouse/features.ts'
import { RequestError } from '../../errors.ts'
import { checkSubscriberId } from '../../store.ts'
import type { OnlineEntry } from '../../store.ts'
import { apiErrorSchema } from '../errors.ts'
import { servingModel } from './deps.ts'
import type { RoutesDeps } from './deps.ts'
import { assess, countPredictions, reasonSchema, reasonsOf, scoreRows } from './rows.ts'
import type { Assessment, ReasonBody } from './rows.ts'

export interface SubscriberPredictReply extends Assessment {
  subscriber_id: string
  model_version: number
  scored_at: string
  scored_by: 'store' | 'api'
  reasons: ReasonBody[]
  feature_time: string
  feature_age_seconds: number
  stale: boolean
}

const params = {
  type: 'object',
  required: ['id'],
  properties: { id: { type: 'string', description: 'Subscriber id: 1-64 characters, no control characters.' } }
} as const

const response = {
  type: 'object',
  required: ['subscriber_id', 'churn_probability', 'risk_level', 'recommended_action', 'model_version', 'scored_at', 'scored_by', 'reasons', 'feature_time', 'feature_age_seconds', 'stale'],
  properties: {
    subscriber_id: { type: 'string' },
    churn_probability: { type: 'number', description: 'Rounded to 3 places.' },
    risk_level: { type: 'string', enum: ['low', 'medium', 'high'], description: 'By the thresholds alone (RISK_HIGH_THRESHOLD, RISK_MEDIUM_THRESHOLD), without the scorer\'s hysteresis.' },
    recommended_action: { type: 'string' },
    model_version: { type: 'integer' },
    scored_at: { type: 'string', format: 'date-time' },
    scored_by: { type: 'string', enum: ['store', 'api'], description: 'store: the scorer\'s stored score (made by the serving model); api: scored now, the stored one being from another model version.' },
    reasons: { type: 'array', items: reasonSchema },
    feature_time: { type: 'string', format: 'date-time', description: 'Time of the latest event behind the features.' },
    feature_age_seconds: { type: 'integer' },
    stale: { type: 'boolean', description: 'Features older than FEATURE_STALE_MS.' }
  }
} as const

export function subscriberRoute (app: FastifyInstance, deps: RoutesDeps): void {
  const now = deps.now ?? Date.now
  app.get<{ Params: { id: string } }>('/api/v1/subscribers/:id/predict', {
    schema: { summary: 'Churn risk of a subscriber, from the online store', tags: ['predict'], params, response: { 200: response, '4xx': apiErrorSchema, '5xx': apiErrorSchema } }
  }, async request => {
    const id = checkSubscriberId(request.params.id)
    const model = servingModel(deps)
    if (model.artifact.features.kind !== 'lakehouse') {
      throw new RequestError('CHURN_API_MODEL_UNSUITED', 503, `model ${model.name} v${model.version} scores raw customer profiles (POST /api/v1/predict), not the online store's features`, { retriable: true })
    }
    const entry = await read(deps, id)
    if (entry === undefined) throw new RequestError('CHURN_API_NOT_FOUND', 404, `subscriber ${JSON.stringify(id)} has no features in the online store`)
    const at = now()
    const fromStore = entry.modelVersion === model.version
    const features = fromStore ? entry.features : { ...entry.features, [DAYS_SINCE_LAST_ACTIVITY]: daysSinceLastActivity(Math.max(at, entry.featureTime), entry.featureTime) }
    // By name, missing ones NaN, as the scorer builds its rows (it never refuses a stored feature).
    const scored = scoreRows(model, [{ kind: 'vector', values: model.names.map(name => features[name] ?? null) }], () => 'stored features')
    const probability = fromStore ? entry.probability : scored.probabilities[0] as number
    countPredictions(request.server, [probability], deps.config.risk)
    const age = Math.max(0, at - entry.featureTime)
    const reply: SubscriberPredictReply = {
      subscriber_id: id,
      ...assess(probability, deps.config.risk),
      model_version: model.version,
      scored_at: new Date(fromStore ? entry.scoredAt : at).toISOString(),
      scored_by: fromStore ? 'store' : 'api',
      reasons: reasonsOf(model, scored, 0),
      feature_time: new Date(entry.featureTime).toISOString(),
      feature_age_seconds: Math.round(age / 1000),
      stale: age > deps.config.scorer.staleMs
    }
    return reply
  })
}

async function read (deps: RoutesDeps, id: string): Promise<OnlineEntry | undefined> {
  if (deps.store === undefined) throw new RequestError('CHURN_API_STORE_UNAVAILABLE', 503, 'this server has no online store configured', { retriable: true })
  try {
    return await deps.store.get(id)
  } catch (error) {
    throw new RequestError('CHURN_API_STORE_UNAVAILABLE', 503, 'the online store did not answer; try again shortly', { cause: error, retriable: true })
  }
}
