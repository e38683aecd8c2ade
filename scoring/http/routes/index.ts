/**
 * The prediction, model and model-serving protocol routes. Added straight onto the app (not an
 * encapsulated plugin), so hooks the app adds at its root (authentication, rate limit, metrics)
 * apply to them whatever the order of registration.
 */
import type { FastifyInstance } from 'fastify'
import type { RoutesDeps } from './deps.ts'
import { inferenceV2Routes } from './inference-v2.ts'
import { kserveV1Routes } from './kserve-v1.ts'
import { modelCardRoute } from './model-card.ts'
import { predictRoute } from './predict.ts'
import { subscriberRoute } from './subscribers.ts'

export type { RoutesDeps } from './deps.ts'

export function registerServingRoutes (app: FastifyInstance, deps: RoutesDeps): void {
  // The API reads JSON only: a text/plain body is 415, not a confusing "body must be object".
  app.removeContentTypeParser('text/plain')
  subscriberRoute(app, deps)
  predictRoute(app, deps)
  modelCardRoute(app, deps)
  kserveV1Routes(app, deps)
  inferenceV2Routes(app, deps)
}
