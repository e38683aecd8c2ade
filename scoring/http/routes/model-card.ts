/**
 * `GET /api/v1/model`: the serving model's card, read from its artifact: what it is, how it was
 * trained and judged on its hold-out, which features matter, and (when the scorer in this process
 * reports it) how far live traffic has drifted from the training distributions.
 */
import path from 'node:path'
import type { FastifyInstance } from 'fastify'
import type { Confusion } from '../../../training/metrics.ts'
import { apiErrorSchema } from '../errors.ts'
import { round, servingModel } from './deps.ts'
import type { RoutesDeps } from './deps.ts'

const confusionSchema = {
  type: 'object',
  properties: {
    threshold: { type: 'number' },
    true_positives: { type: 'integer' },
    false_positives: { type: 'integer' },
    true_negatives: { type: 'integer' },
    false_negatives: { type: 'integer' },
    precision: { type: 'number' },
    recall: { type: 'number' }
  }
} as const

const response = {
  type: 'object',
  required: ['name', 'version', 'engine', 'created_at', 'labels', 'metrics', 'features', 'training'],
  properties: {
    name: { type: 'string' },
    version: { type: 'integer' },
    engine: { type: 'string' },
    created_at: { type: 'string', format: 'date-time' },
    labels: { type: 'string', description: 'Where the labels came from: crm-outcomes, rule-bootstrap or csv.' },
    params: { type: 'object', additionalProperties: { type: ['string', 'number', 'boolean'] } },
    metrics: {
      type: 'object',
      properties: {
        test_roc_auc: { type: 'number' },
        test_pr_auc: { type: 'number' },
        test_brier: { type: 'number' },
        cv: { type: ['object', 'null'], properties: { folds: { type: 'integer' }, mean: { type: 'number' }, std: { type: 'number' } } },
        confusion: { type: 'object', properties: { high: confusionSchema, medium: confusionSchema }, description: 'On the hold-out, at the high and medium thresholds.' },
        rows: { type: 'object', properties: { train: { type: 'integer' }, test: { type: 'integer' } } }
      }
    },
    features: {
      type: 'object',
      properties: {
        kind: { type: 'string', enum: ['lakehouse', 'tabular'] },
        hash: { type: 'string' },
        names: { type: 'array', items: { type: 'string' }, description: 'Model feature order (the order of a feature vector).' },
        importances: { type: 'array', items: { type: 'object', properties: { name: { type: 'string' }, importance: { type: 'number' } } }, description: 'Largest first.' }
      }
    },
    training: {
      type: 'object',
      properties: {
        source: { type: 'string' },
        window: { type: ['object', 'null'], properties: { from: { type: 'string' }, to: { type: 'string' } } },
        rows: { type: 'integer' },
        positives: { type: 'integer' }
      }
    },
    drift: {
      type: 'object',
      description: 'Population stability index of the scorer\'s last scored rows against training; present when this process scores with the same version.',
      properties: {
        rows: { type: 'integer' },
        window: { type: 'integer' },
        threshold: { type: 'number' },
        score_psi: { type: 'number' },
        features: { type: 'array', items: { type: 'object', properties: { name: { type: 'string' }, psi: { type: 'number' } } } },
        drifted: { type: 'array', items: { type: 'string' } }
      }
    },
    problem: { type: 'string', description: 'Why a newer promoted version is not serving, when one was refused.' }
  }
} as const

export function modelCardRoute (app: FastifyInstance, deps: RoutesDeps): void {
  app.get('/api/v1/model', {
    schema: { summary: 'The serving model\'s card', tags: ['model'], response: { 200: response, '4xx': apiErrorSchema, '5xx': apiErrorSchema } }
  }, () => {
    const model = servingModel(deps)
    const { artifact } = model
    const { metrics, training } = artifact
    const importances = model.names.map((name, i) => ({ name, importance: round(artifact.forest.importances[i] as number, 6) }))
      .sort((a, b) => b.importance - a.importance)
    const report = deps.drift?.()
    const problem = deps.models?.status.problem
    return {
      name: artifact.name,
      version: artifact.version,
      engine: artifact.engine,
      created_at: artifact.createdAt,
      labels: training.labels,
      params: artifact.params,
      metrics: {
        test_roc_auc: metrics.test.rocAuc,
        test_pr_auc: metrics.test.prAuc,
        test_brier: metrics.test.brier,
        cv: metrics.cv === null ? null : { folds: metrics.cv.folds, mean: metrics.cv.mean, std: metrics.cv.std },
        confusion: { high: confusion(metrics.test.high), medium: confusion(metrics.test.medium) },
        rows: metrics.rows
      },
      features: { kind: artifact.features.kind, hash: artifact.features.hash, names: [...model.names], importances },
      // The file's name only: its folder is the training machine's and tells a client nothing.
      training: {
        source: training.source.kind === 'csv' ? `csv:${path.basename(training.source.file)}` : `lakehouse:${path.basename(training.source.path)}`,
        window: training.window,
        rows: training.rows,
        positives: training.positives
      },
      ...(report === undefined || report.modelVersion !== model.version
        ? {}
        : { drift: { rows: report.rows, window: report.window, threshold: report.threshold, score_psi: report.score, features: report.features, drifted: report.drifted } }),
      ...(problem === undefined ? {} : { problem })
    }
  })
}

function confusion (c: Confusion): Record<string, number> {
  return {
    threshold: c.threshold,
    true_positives: c.truePositives,
    false_positives: c.falsePositives,
    true_negatives: c.trueNegatives,
    false_negatives: c.falseNegatives,
    precision: c.precision,
    recall: c.recall
  }
}
