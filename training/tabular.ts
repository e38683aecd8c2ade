/**
 * The tabular path: a customer-profile table (the IBM Telco export and its like) turned into a
 * numeric matrix, and the encoding that did it, kept in the model artifact so a raw profile posted
 * later is encoded the same way.
 *
 * Column types are inferred from the values: a column whose non-blank cells all parse as numbers
 * is numeric (blanks become NaN, imputed later with the training medians: the Telco
 * `TotalCharges` has 11 blank cells); any other column is categorical and one-hot encoded, one
 * indicator per level seen in training. Identifiers (a column named like one, or text unique to
 * every row) and constant columns are dropped, and the artifact says which and why. Text with too
 * many distinct values to one-hot encode is refused rather than silently dropped: it names the
 * column and how to drop it.
 */
import { TrainingError } from './errors.ts'
import type { CsvTable } from './csv.ts'

export type ColumnEncoding =
  | { name: string, kind: 'numeric' }
  | { name: string, kind: 'categorical', levels: string[] }

export interface TabularEncoding {
  target: string
  positive: string
  /** The feature columns, in matrix order (a categorical column spans one indicator per level). */
  columns: ColumnEncoding[]
  dropped: Array<{ name: string, reason: string }>
}

export interface TabularOptions {
  target: string
  /** The target value that means "churned". */
  positive: string
  /** Columns to leave out, besides the identifiers found. */
  drop?: readonly string[]
  /** A text column with more distinct values than this cannot be one-hot encoded. @defaultValue 50 */
  maxCategories?: number
}

const IDENTIFIER_NAME = /^id$|[_\- .]id$|[a-z0-9](ID|Id)$/i

export function featureNames (encoding: TabularEncoding): string[] {
  return encoding.columns.flatMap(c => c.kind === 'numeric' ? [c.name] : c.levels.map(level => `${c.name}=${level}`))
}

function parseNumber (cell: string): number {
  const text = cell.trim()
  if (text === '') return Number.NaN
  const value = Number(text)
  return Number.isFinite(value) ? value : Number.NaN
}

const isNumeric = (cell: string): boolean => cell.trim() === '' || Number.isFinite(Number(cell.trim()))

/** Infers the encoding of a table's columns and checks its target. */
export function inferEncoding (table: CsvTable, options: TabularOptions): TabularEncoding {
  const { header, rows } = table
  const maxCategories = options.maxCategories ?? 50
  const targetIndex = header.indexOf(options.target)
  if (targetIndex < 0) throw new TrainingError('CHURN_TRAIN_NO_TARGET', `there is no target column ${JSON.stringify(options.target)}; the columns are ${header.join(', ')}`)
  if (rows.length === 0) throw new TrainingError('CHURN_TRAIN_EMPTY', 'the table has a header but no rows')
  for (const name of options.drop ?? []) {
    if (!header.includes(name)) throw new TrainingError('CHURN_TRAIN_BAD_INPUT', `cannot drop column ${JSON.stringify(name)}: there is no such column`)
  }
  const targetValues = new Map<string, number>()
  rows.forEach((row, r) => {
    const value = (row[targetIndex] as string).trim()
    if (value === '') throw new TrainingError('CHURN_TRAIN_BAD_INPUT', `the target ${options.target} is blank in data row ${r + 1}; every row needs a label`)
    targetValues.set(value, (targetValues.get(value) ?? 0) + 1)
  })
  if (!targetValues.has(options.positive)) {
    throw new TrainingError('CHURN_TRAIN_ONE_CLASS', `no row has ${options.target} = ${JSON.stringify(options.positive)}; its values are ${[...targetValues.keys()].slice(0, 10).map(v => JSON.stringify(v)).join(', ')}`)
  }
  if (targetValues.size === 1) throw new TrainingError('CHURN_TRAIN_ONE_CLASS', `every row has ${options.target} = ${JSON.stringify(options.positive)}; a classifier needs both classes`)

  const columns: ColumnEncoding[] = []
  const dropped: TabularEncoding['dropped'] = []
  header.forEach((name, c) => {
    if (c === targetIndex) return
    if (options.drop?.includes(name) === true) {
      dropped.push({ name, reason: 'dropped on request' })
      return
    }
    const distinct = new Set<string>()
    let blanks = 0
    let numeric = true
    for (const row of rows) {
      const cell = row[c] as string
      if (cell.trim() === '') blanks++
      else distinct.add(cell.trim())
      if (numeric && !isNumeric(cell)) numeric = false
    }
    const unique = distinct.size === rows.length
    if (distinct.size === 0) dropped.push({ name, reason: 'every cell is blank' })
    else if (distinct.size === 1 && blanks === 0) dropped.push({ name, reason: 'constant' })
    else if (unique && (IDENTIFIER_NAME.test(name) || !numeric)) dropped.push({ name, reason: 'identifier (a distinct value in every row)' })
    else if (numeric) columns.push({ name, kind: 'numeric' })
    else if (distinct.size > maxCategories) {
      const examples = [...distinct].slice(0, 3).map(v => JSON.stringify(v)).join(', ')
      throw new TrainingError('CHURN_TRAIN_BAD_COLUMN', `column ${JSON.stringify(name)} is text with ${distinct.size} distinct values (${examples}, ...), more than the ${maxCategories} that can be one-hot encoded; leave it out with --drop ${name}`)
    } else columns.push({ name, kind: 'categorical', levels: [...distinct].sort() })
  })
  if (columns.length === 0) throw new TrainingError('CHURN_TRAIN_EMPTY', `no usable feature column is left (dropped: ${dropped.map(d => `${d.name}: ${d.reason}`).join('; ')})`)
  return { target: options.target, positive: options.positive, columns, dropped }
}

/**
 * A stable key per row for choosing the hold-out: the identifier column when one was found
 * (`customerID`), else the row's cells.
 */
export function rowKeys (table: CsvTable, encoding: TabularEncoding): string[] {
  const identifier = encoding.dropped.find(d => d.reason.startsWith('identifier'))
  const at = identifier === undefined ? -1 : table.header.indexOf(identifier.name)
  return table.rows.map(cells => at >= 0 ? (cells[at] as string).trim() : cells.join('\u001f'))
}

export interface EncodedTable {
  /** Row-major, one row per table row; NaN where a number was blank or unparseable. */
  x: Float64Array
  y: Uint8Array
  rows: number
  columns: number
}

/** Encodes a table with a known encoding (the one inferred from it, or a model's). */
export function encodeTable (table: CsvTable, encoding: TabularEncoding): EncodedTable {
  const names = featureNames(encoding)
  const width = names.length
  const index = new Map(table.header.map((name, i) => [name, i]))
  const targetIndex = index.get(encoding.target)
  if (targetIndex === undefined) throw new TrainingError('CHURN_TRAIN_NO_TARGET', `there is no target column ${JSON.stringify(encoding.target)}`)
  const sources = encoding.columns.map(c => {
    const at = index.get(c.name)
    if (at === undefined) throw new TrainingError('CHURN_TRAIN_BAD_INPUT', `the table has no column ${JSON.stringify(c.name)}, which the encoding needs`)
    return at
  })
  const x = new Float64Array(table.rows.length * width)
  const y = new Uint8Array(table.rows.length)
  const row: Record<string, string> = {}
  table.rows.forEach((cells, r) => {
    encoding.columns.forEach((c, i) => { row[c.name] = cells[sources[i] as number] as string })
    encodeProfile(encoding, row, x, r * width, r + 1)
    y[r] = (cells[targetIndex] as string).trim() === encoding.positive ? 1 : 0
  })
  return { x, y, rows: table.rows.length, columns: width }
}

/**
 * Encodes one raw profile (e.g. `{"tenure": 1, "Contract": "Month-to-month", ...}`) into `out`
 * at `offset`. A missing or blank value is NaN for a number (imputed later) and no indicator for a
 * category; a category the model never saw is refused with the levels it knows.
 */
export function encodeProfile (encoding: TabularEncoding, profile: Record<string, unknown>, out: Float64Array, offset = 0, row?: number): void {
  const where = row === undefined ? '' : ` in data row ${row}`
  let at = offset
  for (const c of encoding.columns) {
    const raw = profile[c.name]
    const missing = raw === undefined || raw === null || (typeof raw === 'string' && raw.trim() === '')
    if (c.kind === 'numeric') {
      let value = Number.NaN
      if (!missing) {
        value = typeof raw === 'number' ? raw : typeof raw === 'string' ? parseNumber(raw) : Number.NaN
        if (!Number.isFinite(value)) throw new TrainingError('CHURN_MODEL_BAD_INPUT', `${c.name} must be a number${where}; got ${JSON.stringify(raw)}`)
      }
      out[at++] = value
      continue
    }
    out.fill(0, at, at + c.levels.length)
    if (!missing) {
      const text = typeof raw === 'string' ? raw.trim() : typeof raw === 'number' || typeof raw === 'boolean' ? String(raw) : undefined
      const level = text === undefined ? -1 : c.levels.indexOf(text)
      if (level < 0) throw new TrainingError('CHURN_MODEL_BAD_INPUT', `${c.name} must be one of ${c.levels.map(l => JSON.stringify(l)).join(', ')}${where}; got ${JSON.stringify(raw)}`)
      out[at + level] = 1
    }
    at += c.levels.length
  }
}
