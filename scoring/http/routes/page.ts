/**
 * The web page for people (`GET /`, the document in `../page/`) and the one route made for it,
 * `GET /api/v1/model/form`: the serving model's inputs as form fields, so the page builds its
 * form from the model it talks to (a Telco model's customer columns and their categories, or a
 * lakehouse model's features) instead of hard-coding one.
 *
 * The page itself is public (`auth.ts` lists `/`): it carries no data, and a browser must load
 * it before anyone can type a key into it. Everything it shows comes from keyed routes.
 */
import type { FastifyInstance } from 'fastify'
import type { Config } from '../../../config/index.ts'
import { ScoringError } from '../../errors.ts'
import type { ModelHolder } from '../../model-holder.ts'
import { apiErrorSchema } from '../errors.ts'
import { loadPage } from '../page/page.ts'

export interface PageRouteOptions {
  /** The serving model; without it the form route is absent (the page says so). */
  models?: ModelHolder | undefined
  config?: Pick<Config, 'serving'> | undefined
}

/** Where the page is served. */
export const PAGE_PATH = '/'

/** A form field: a number, or one of the categories the model was trained on. */
export interface FormField {
  name: string
  type: 'number' | 'category'
  levels?: string[]
  /** The training median (numbers), or the level most training rows had (categories). */
  default: number | string | null
}

export interface ModelForm {
  model_name: string
  model_version: number
  /** tabular: post `{ profile }` with these fields; lakehouse: post `{ features }`. */
  kind: 'tabular' | 'lakehouse'
  fields: FormField[]
}

const formResponse = {
  type: 'object',
  required: ['model_name', 'model_version', 'kind', 'fields'],
  properties: {
    model_name: { type: 'string' },
    model_version: { type: 'integer' },
    kind: { type: 'string', enum: ['tabular', 'lakehouse'], description: 'tabular: POST /api/v1/predict with { profile }; lakehouse: with { features }.' },
    fields: {
      type: 'array',
      items: {
        type: 'object',
        required: ['name', 'type', 'default'],
        properties: {
          name: { type: 'string' },
          type: { type: 'string', enum: ['number', 'category'] },
          levels: { type: 'array', items: { type: 'string' }, description: 'The categories seen in training (category fields).' },
          default: { type: ['number', 'string', 'null'], description: 'Training median, or the most common category.' }
        }
      }
    }
  }
} as const

export async function pageRoutes (app: FastifyInstance, options: PageRouteOptions): Promise<void> {
  const page = await loadPage()
  app.get(PAGE_PATH, { logLevel: 'warn', schema: { hide: true } }, async (_request, reply) => {
    return await reply
      .header('content-type', 'text/html; charset=utf-8')
      .header('content-security-policy', page.contentSecurityPolicy)
      .header('x-content-type-options', 'nosniff')
      .header('referrer-policy', 'no-referrer')
      .header('cache-control', 'no-cache')
      .send(page.html)
  })

  const { models } = options
  if (models === undefined) return
  app.get('/api/v1/model/form', {
    schema: { summary: 'The serving model\'s inputs as form fields (for the web page)', tags: ['model'], response: { 200: formResponse, '4xx': apiErrorSchema, '5xx': apiErrorSchema } }
  }, () => {
    const model = models.current
    if (model === undefined) {
      throw new ScoringError('CHURN_SCORE_NO_MODEL', `no model ${options.config?.serving.modelName ?? models.status.name} is loaded yet; /api/v1/ready says why`, { retriable: true })
    }
    const { features, imputation } = model.artifact
    const median = (name: string): number | null => {
      const value = imputation[features.names.indexOf(name)]
      return value === undefined || !Number.isFinite(value) ? null : value
    }
    const fields: FormField[] = features.kind === 'lakehouse'
      ? features.names.map(name => ({ name, type: 'number', default: median(name) }))
      : features.encoding.columns.map(column => column.kind === 'numeric'
        ? { name: column.name, type: 'number', default: median(column.name) }
        // An indicator's median is 1 when most training rows had that level.
        : { name: column.name, type: 'category', levels: [...column.levels], default: column.levels.find(level => median(`${column.name}=${level}`) === 1) ?? column.levels[0] ?? null })
    const form: ModelForm = { model_name: model.name, model_version: model.version, kind: features.kind, fields }
    return form
  })
}
