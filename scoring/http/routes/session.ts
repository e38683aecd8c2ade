/**
 * The dashboard session: `POST /api/v1/session` (keyed by header like every API route) sets the
 * presented key as a cookie the browser sends to `/queues` only, so a person can open the
 * bull-board dashboard, whose own requests cannot carry a header; `DELETE` clears it. See auth.ts.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { DASHBOARD_COOKIE, presentedKey } from '../auth.ts'

/** Eight hours: a working day; the page sets it again when the key is entered. */
const MAX_AGE_SECONDS = 8 * 60 * 60

function cookie (request: FastifyRequest, value: string, maxAge: number): string {
  const secure = request.protocol === 'https' ? '; Secure' : ''
  return `${DASHBOARD_COOKIE}=${encodeURIComponent(value)}; Path=/queues; HttpOnly; SameSite=Strict; Max-Age=${maxAge}${secure}`
}

export function sessionRoutes (app: FastifyInstance): void {
  const schema = { tags: ['dashboard'], response: { 204: { type: 'null', description: 'Cookie set (or cleared) for /queues.' } } }
  app.post('/api/v1/session', { schema: { ...schema, summary: 'Open the queue dashboard in this browser: the key (from the header) as a cookie for /queues only' } }, async (request, reply) => {
    // The auth hook has accepted the header's key before this runs.
    return await reply.code(204).header('set-cookie', cookie(request, presentedKey(request) ?? '', MAX_AGE_SECONDS)).send()
  })
  app.delete('/api/v1/session', { schema: { ...schema, summary: 'Forget the dashboard cookie' } }, async (request, reply) => {
    return await reply.code(204).header('set-cookie', cookie(request, '', 0)).send()
  })
}
