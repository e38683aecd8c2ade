/**
 * The Open Inference Protocol (KServe V2) over the served model: server liveness and readiness,
 * model metadata and readiness, and `POST /v2/models/<name>/infer` with typed tensors.
 *
 * Input tensors, either:
 * - one tensor of shape `[n, f]` (any name), `f` the model's feature count, rows in model feature
 *   order; or
 * - one tensor per feature, named after it, each of shape `[n]` or `[n, 1]` (the columnar form
 *   pandas-style clients send); features not sent are imputed.
 * `data` is flat (row-major) or nested one level per dimension. Numeric datatypes only: FP64, FP32
 * (values taken as float32, `Math.fround`), FP16, and the INT/UINT types (whole numbers required).
 * The answer is one tensor `probability`, FP64, shape `[n, 1]`.
 *
 * Readiness answers 503 when no model is loaded, as KServe's own server does (the protocol text
 * asks for "a 4xx"; a probe and a load balancer both read 503 as "not yet").
 */
import type { FastifyInstance } from 'fastify'
import type { ChurnModel } from '../../../training/model.ts'
import { RequestError } from '../../errors.ts'
import { protocolErrorSchema } from '../errors.ts'
import { checkServedName, servingModel } from './deps.ts'
import type { RoutesDeps } from './deps.ts'
import { countPredictions, scoreRows } from './rows.ts'

/** Datatypes whose values are numbers; the others (BOOL, BYTES) are refused. */
const NUMERIC = ['FP64', 'FP32', 'FP16', 'INT8', 'INT16', 'INT32', 'INT64', 'UINT8', 'UINT16', 'UINT32', 'UINT64'] as const
const DATATYPES = [...NUMERIC, 'BOOL', 'BYTES'] as const
type Datatype = typeof DATATYPES[number]

export interface InferTensor {
  name: string
  shape: number[]
  datatype: Datatype
  data: Array<number | number[]>
}

export interface InferBody {
  id?: string
  inputs: InferTensor[]
  outputs?: Array<{ name: string }>
}

const nameParams = { type: 'object', required: ['name'], properties: { name: { type: 'string' } } } as const
const errors = { '4xx': protocolErrorSchema, '5xx': protocolErrorSchema } as const
const modelStatus = { type: 'object', required: ['name', 'ready'], properties: { name: { type: 'string' }, ready: { type: 'boolean' } } } as const
const tensorMetadata = {
  type: 'object',
  required: ['name', 'datatype', 'shape'],
  properties: { name: { type: 'string' }, datatype: { type: 'string' }, shape: { type: 'array', items: { type: 'integer' } } }
} as const

export function inferenceV2Routes (app: FastifyInstance, deps: RoutesDeps): void {
  const { maxBatch, bodyLimitBytes } = deps.config.api
  const loaded = (): boolean => deps.models?.current !== undefined

  app.get('/v2/health/live', {
    logLevel: 'warn',
    schema: { summary: 'Open Inference V2: server liveness', tags: ['inference-v2'], response: { 200: { type: 'object', required: ['live'], properties: { live: { type: 'boolean' } } } } }
  }, () => ({ live: true }))

  const readyBody = { type: 'object', required: ['ready'], properties: { ready: { type: 'boolean' } } } as const
  app.get('/v2/health/ready', {
    logLevel: 'warn',
    schema: { summary: 'Open Inference V2: server readiness (the model is loaded)', tags: ['inference-v2'], response: { 200: readyBody, 503: readyBody } }
  }, async (_request, reply) => await reply.code(loaded() ? 200 : 503).send({ ready: loaded() }))

  app.get<{ Params: { name: string } }>('/v2/models/:name', {
    schema: {
      summary: 'Open Inference V2: model metadata',
      tags: ['inference-v2'],
      params: nameParams,
      response: {
        200: {
          type: 'object',
          required: ['name', 'versions', 'platform', 'inputs', 'outputs'],
          properties: {
            name: { type: 'string' },
            versions: { type: 'array', items: { type: 'string' } },
            platform: { type: 'string' },
            inputs: { type: 'array', items: tensorMetadata },
            outputs: { type: 'array', items: tensorMetadata }
          }
        },
        ...errors
      }
    }
  }, request => {
    const name = checkServedName(deps, request.params.name)
    const model = servingModel(deps)
    return {
      name,
      versions: [String(model.version)],
      platform: `churn-${model.artifact.engine}`,
      inputs: [{ name: 'features', datatype: 'FP64', shape: [-1, model.names.length] }],
      outputs: [{ name: 'probability', datatype: 'FP64', shape: [-1, 1] }]
    }
  })

  app.get<{ Params: { name: string } }>('/v2/models/:name/ready', {
    schema: { summary: 'Open Inference V2: model readiness', tags: ['inference-v2'], params: nameParams, response: { 200: modelStatus, 503: modelStatus, ...errors } }
  }, async (request, reply) => {
    const name = checkServedName(deps, request.params.name)
    return await reply.code(loaded() ? 200 : 503).send({ name, ready: loaded() })
  })

  const tensor = {
    type: 'object',
    required: ['name', 'shape', 'datatype', 'data'],
    properties: {
      name: { type: 'string', minLength: 1 },
      shape: { type: 'array', minItems: 1, maxItems: 2, items: { type: 'integer', minimum: 0 } },
      datatype: { type: 'string', enum: DATATYPES },
      data: { type: 'array', items: { anyOf: [{ type: 'number' }, { type: 'array', items: { type: 'number' } }] }, description: 'Row-major, flat or nested.' },
      parameters: { type: 'object' }
    }
  } as const

  app.post<{ Params: { name: string }, Body: InferBody }>('/v2/models/:name/infer', {
    bodyLimit: bodyLimitBytes,
    schema: {
      summary: 'Open Inference V2: infer churn probabilities',
      tags: ['inference-v2'],
      params: nameParams,
      body: {
        type: 'object',
        required: ['inputs'],
        properties: {
          id: { type: 'string' },
          inputs: { type: 'array', minItems: 1, items: tensor },
          outputs: { type: 'array', items: { type: 'object', required: ['name'], properties: { name: { type: 'string' } } } },
          parameters: { type: 'object' }
        }
      },
      response: {
        200: {
          type: 'object',
          required: ['model_name', 'model_version', 'outputs'],
          properties: {
            model_name: { type: 'string' },
            model_version: { type: 'string' },
            id: { type: 'string' },
            outputs: { type: 'array', items: { type: 'object', required: ['name', 'shape', 'datatype', 'data'], properties: { ...tensorMetadata.properties, data: { type: 'array', items: { type: 'number' } } } } }
          }
        },
        ...errors
      }
    }
  }, request => {
    const name = checkServedName(deps, request.params.name)
    const model = servingModel(deps)
    const { inputs, outputs, id } = request.body
    for (const output of outputs ?? []) {
      if (output.name !== 'probability') throw badRequest(`output ${JSON.stringify(output.name)} does not exist; the model has one output, "probability"`)
    }
    const { rows, values } = toMatrix(model, inputs, maxBatch)
    const scored = scoreRows(model, Array.from({ length: rows }, (_, r) => ({ kind: 'vector', values: values.subarray(r * model.names.length, (r + 1) * model.names.length) })), r => `row ${r}`)
    countPredictions(request.server, scored.probabilities, deps.config.risk)
    return {
      model_name: name,
      model_version: String(model.version),
      ...(id === undefined ? {} : { id }),
      outputs: [{ name: 'probability', shape: [rows, 1], datatype: 'FP64', data: Array.from(scored.probabilities) }]
    }
  })
}

function badRequest (message: string): RequestError {
  return new RequestError('CHURN_API_BAD_REQUEST', 400, message)
}

/** The input tensors as one row-major matrix in model feature order (NaN where a feature was not sent). */
function toMatrix (model: ChurnModel, inputs: readonly InferTensor[], maxBatch: number): { rows: number, values: Float64Array } {
  const columns = model.names.length
  const first = inputs[0] as InferTensor
  if (inputs.length === 1 && !model.names.includes(first.name)) {
    const input = first
    const [rows = 0, width] = input.shape
    if (width !== columns) throw badRequest(`input ${JSON.stringify(input.name)} has shape [${input.shape.join(', ')}]; model ${model.name} takes [n, ${columns}] (${columns} features)`)
    checkRows(rows, maxBatch)
    return { rows, values: tensorValues(input, rows * columns) }
  }
  // One tensor per feature.
  const rows = first.shape[0] as number
  checkRows(rows, maxBatch)
  const values = new Float64Array(rows * columns).fill(Number.NaN)
  const seen = new Set<string>()
  for (const input of inputs) {
    const column = model.names.indexOf(input.name)
    if (column < 0) throw badRequest(`input ${JSON.stringify(input.name)} is not a feature of model ${model.name}; send one tensor of shape [n, ${columns}], or one tensor per feature named after it (GET /api/v1/model lists them)`)
    if (seen.has(input.name)) throw badRequest(`input ${JSON.stringify(input.name)} is sent twice`)
    seen.add(input.name)
    if (input.shape[0] !== rows || (input.shape.length === 2 && input.shape[1] !== 1)) throw badRequest(`input ${JSON.stringify(input.name)} has shape [${input.shape.join(', ')}]; a per-feature tensor has shape [${rows}] or [${rows}, 1], as the first input`)
    const column_ = tensorValues(input, rows)
    for (let r = 0; r < rows; r++) values[r * columns + column] = column_[r] as number
  }
  return { rows, values }
}

function checkRows (rows: number, maxBatch: number): void {
  if (rows < 1) throw badRequest('a tensor needs at least one row')
  if (rows > maxBatch) throw badRequest(`${rows} rows is more than API_MAX_BATCH (${maxBatch}) in one request`)
}

/** A tensor's data, flattened and checked against its shape and datatype. */
function tensorValues (input: InferTensor, expected: number): Float64Array {
  const label = `input ${JSON.stringify(input.name)}`
  if (!(NUMERIC as readonly string[]).includes(input.datatype)) throw badRequest(`${label} is ${input.datatype}; send a numeric datatype (${NUMERIC.join(', ')})`)
  const flat = input.data.flat()
  if (flat.length !== expected) throw badRequest(`${label} has ${flat.length} values; its shape [${input.shape.join(', ')}] needs ${expected}`)
  const whole = input.datatype.includes('INT')
  const out = new Float64Array(expected)
  for (let i = 0; i < expected; i++) {
    const v = flat[i] as number
    if (whole && !Number.isInteger(v)) throw badRequest(`${label} is ${input.datatype} but value ${i} is ${v}`)
    if (input.datatype.startsWith('UINT') && v < 0) throw badRequest(`${label} is ${input.datatype} but value ${i} is ${v}`)
    out[i] = input.datatype === 'FP32' ? Math.fround(v) : v
  }
  return out
}
