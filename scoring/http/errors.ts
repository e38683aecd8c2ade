/**
 * One error handler and one not-found handler for every route, so a refusal looks the same
 * whichever layer raised it (Fastify's body parser and validator, a route, the model):
 *
 * - `/api/...` and the rest keep Fastify's shape `{ statusCode, code?, error, message }`
 *   (`error` the status text, `message` what is wrong, `code` the project's or Fastify's code);
 * - the model-serving protocols (`/v1/...` KServe V1, `/v2/...` Open Inference V2) answer
 *   `{ error: "<what is wrong>" }`, the shape their clients parse.
 *
 * Statuses: a validation error 400 (Fastify's message names the field: `body/instances/0 must
 * be array`), malformed JSON 400, an unsupported content type 415, an oversize body 413, an
 * unknown route 404; the project's codes map below. A 5xx answers `internal error` and the
 * request id, never the error's own message (it may name files, hosts or queries): the real
 * error is logged at error level under that id. The exception is a 503 the project raises on
 * purpose (no model loaded, the store down): its message is written for the client and says
 * when to come back.
 */
import { STATUS_CODES } from 'node:http'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { describeError, errorCode } from '../../core/errors.ts'

/** Codes raised below the routes, with the status they are answered with. */
const CODE_STATUS: Readonly<Record<string, number>> = {
  CHURN_MODEL_BAD_INPUT: 400,
  CHURN_SCORE_BAD_SUBSCRIBER: 400,
  CHURN_SCORE_NO_MODEL: 503
}

/** Fastify's error shape, for `/api` routes. */
export interface ApiErrorBody {
  statusCode: number
  code?: string
  error: string
  message: string
  /** On a 5xx only: quote it when reporting the failure (the log has the details under it). */
  requestId?: string
}

/** The model-serving protocols' error shape. */
export interface ProtocolErrorBody {
  error: string
  requestId?: string
}

/** Response schema of `ApiErrorBody` (declared on each `/api` route for its 4xx and 5xx). */
export const apiErrorSchema = {
  type: 'object',
  required: ['statusCode', 'error', 'message'],
  properties: {
    statusCode: { type: 'integer' },
    code: { type: 'string' },
    error: { type: 'string' },
    message: { type: 'string' },
    requestId: { type: 'string' }
  }
} as const

/**
 * Response schema of `ProtocolErrorBody`. The optional Fastify fields are kept so a refusal sent
 * by a hook in Fastify's shape (authentication, rate limit) is not stripped to its status text.
 */
export const protocolErrorSchema = {
  type: 'object',
  required: ['error'],
  properties: {
    error: { type: 'string' },
    requestId: { type: 'string' },
    statusCode: { type: 'integer' },
    code: { type: 'string' },
    message: { type: 'string' }
  }
} as const

/** Whether a URL belongs to a model-serving protocol (KServe V1, Open Inference V2). */
export function isProtocolUrl (url: string): boolean {
  return /^\/v[12](\/|$|\?)/.test(url)
}

function statusOf (error: unknown): number {
  const declared = typeof error === 'object' && error !== null ? (error as { statusCode?: unknown }).statusCode : undefined
  if (typeof declared === 'number' && Number.isInteger(declared) && declared >= 400 && declared <= 599) return declared
  return CODE_STATUS[errorCode(error) ?? ''] ?? 500
}

function send (request: FastifyRequest, reply: FastifyReply, status: number, message: string, code: string | undefined, withId: boolean): FastifyReply {
  const requestId = withId ? String(request.id) : undefined
  if (isProtocolUrl(request.url)) {
    const body: ProtocolErrorBody = { error: message, ...(requestId === undefined ? {} : { requestId }) }
    return reply.code(status).send(body)
  }
  const body: ApiErrorBody = {
    statusCode: status,
    ...(code === undefined ? {} : { code }),
    error: STATUS_CODES[status] ?? 'Error',
    message,
    ...(requestId === undefined ? {} : { requestId })
  }
  return reply.code(status).send(body)
}

/** Installs the handlers; call before any route is added, so every route and plugin inherits them. */
export function installErrorHandling (app: FastifyInstance): void {
  app.setErrorHandler((error, request, reply) => {
    const status = statusOf(error)
    const code = errorCode(error)
    const deliberate = status === 503 && code?.startsWith('CHURN_') === true
    if (status >= 500 && !deliberate) {
      request.log.error({ err: error, reqId: request.id, statusCode: status }, 'request failed')
      return send(request, reply, status, 'internal error', undefined, true)
    }
    // The client's fault (or a dependency we said is down): worth a line, not an alert.
    request.log[status >= 500 ? 'warn' : 'info']({ code, statusCode: status, reason: describeError(error) }, 'request refused')
    return send(request, reply, status, describeError(error), code, false)
  })

  app.setNotFoundHandler((request, reply) => {
    send(request, reply, 404, `no route ${request.method} ${(request.url.split('?')[0] ?? '').slice(0, 200)}`, 'CHURN_API_NOT_FOUND', false)
  })
}
