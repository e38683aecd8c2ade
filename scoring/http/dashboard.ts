/**
 * The campaign queues' dashboard (bull-board) at `/queues`: keyed like every API route (the
 * header, or the cookie `POST /api/v1/session` sets: see auth.ts) and read-only: it shows jobs
 * but cannot retry, remove or add them.
 *
 * Guarded at the door, because bull-board (9.x) fails on hostile input in three ways
 * (test/integration/scoring/http/hostile.test.ts finds them):
 * - It joins a message's translation key and its options with U+0000 and splits them again to
 *   parse the options as JSON, while valibot's default messages quote the value received. A NUL
 *   in a query value (`GET /queues/api/queues?status=%00`) or a body made that parse throw, and
 *   bull-board answered 500 with the parser's message.
 * - It percent-decodes `activeQueue` and `queueName` a second time, after Fastify did, so a
 *   value holding `%` that is not an escape (`?activeQueue=100%`) threw `URIError`: a 500.
 * So a query value with a NUL, or one that does not survive a second percent-decoding, is a 400;
 * and only GET and HEAD get in (405 for the rest): with read-only queues no other method does
 * anything but validate a body, where the first fault lies.
 * - Its error handler answers whatever was thrown with `error.message` (a dependency's message
 *   may name hosts or files). Errors thrown inside it are answered here instead: a 4xx in the
 *   API's shape with its message, a 5xx as `internal error` (logged with the error).
 */
import { createBullBoard } from '@bull-board/api'
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter'
import type { HTTPStatus } from '@bull-board/api/dist/types.js'
import { FastifyAdapter } from '@bull-board/fastify'
import type { Queue } from 'bullmq'
import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { STATUS_CODES } from 'node:http'
import { errorCode } from '../../core/errors.ts'
import type { ApiErrorBody } from './errors.ts'

/** Where the dashboard is mounted. */
export const DASHBOARD_PATH = '/queues'

/** Methods that reach the read-only dashboard. */
const READ_METHODS = new Set(['GET', 'HEAD'])

export interface DashboardOptions {
  /** The queues it shows (the campaign queues), each read-only. */
  queues: readonly Queue[]
  logger: FastifyBaseLogger
}

function refusal (status: number, code: string, message: string): ApiErrorBody {
  return { statusCode: status, code, error: STATUS_CODES[status] ?? 'Error', message }
}

/** Why bull-board cannot read this text safely (see the module comment), or undefined. */
function unreadable (text: string): string | undefined {
  if (text.includes('\u0000')) return 'holds a NUL character'
  try {
    decodeURIComponent(text)
  } catch {
    return 'holds a "%" that is not a percent-escape'
  }
  return undefined
}

/** Why the query cannot be handed to bull-board, or undefined. */
function queryProblem (query: unknown): string | undefined {
  if (typeof query !== 'object' || query === null) return undefined
  for (const [name, value] of Object.entries(query)) {
    const problem = [name, value].flat().map(v => typeof v === 'string' ? unreadable(v) : undefined).find(p => p !== undefined)
    if (problem !== undefined) return `query parameter ${JSON.stringify(name.slice(0, 40))} ${problem}`
  }
  return undefined
}

export async function registerDashboard (app: FastifyInstance, options: DashboardOptions): Promise<void> {
  const { logger } = options
  const board = new FastifyAdapter()
  board.setBasePath(DASHBOARD_PATH)
  createBullBoard({ queues: options.queues.map(queue => new BullMQAdapter(queue, { readOnlyMode: true })), serverAdapter: board })
  // After createBullBoard, which installs bull-board's own.
  board.setErrorHandler((error: Error) => {
    const declared = (error as { statusCode?: unknown }).statusCode
    if (typeof declared === 'number' && Number.isInteger(declared) && declared >= 400 && declared < 500) {
      // The adapter sends any status; bull-board's type lists only the ones it uses itself (not 413, 415).
      return { status: declared as HTTPStatus, body: refusal(declared, errorCode(error) ?? 'CHURN_API_BAD_REQUEST', error.message) }
    }
    logger.error({ err: error, component: 'dashboard' }, 'dashboard request failed')
    return { status: 500, body: { statusCode: 500, error: 'Internal Server Error', message: 'internal error' } }
  })
  await app.register(async scope => {
    scope.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
      if (!READ_METHODS.has(request.method)) {
        return await reply.code(405).header('allow', 'GET, HEAD').send(refusal(405, 'CHURN_API_READ_ONLY', `the queue dashboard is read-only; ${request.method} is not allowed`))
      }
      const problem = queryProblem(request.query)
      if (problem !== undefined) return await reply.code(400).send(refusal(400, 'CHURN_API_BAD_REQUEST', problem))
    })
    await scope.register(board.registerPlugin())
  }, { prefix: DASHBOARD_PATH, logLevel: 'warn' })
}
