/**
 * A small RFC 4180 reader: comma-separated, `"` quoting with `""` for a quote, CRLF or LF line
 * ends, a header row. Enough for the customer-profile exports a data team hands over; it refuses
 * a ragged row rather than guessing which column a value belongs to.
 */
import { TrainingError } from './errors.ts'

export interface CsvTable {
  header: string[]
  rows: string[][]
}

export function parseCsv (text: string, source = 'CSV'): CsvTable {
  const records: string[][] = []
  let record: string[] = []
  let field = ''
  let quoted = false
  let i = text.charCodeAt(0) === 0xFEFF ? 1 : 0
  let line = 1
  const endRecord = (): void => {
    record.push(field)
    field = ''
    // A blank line is no record.
    if (!(record.length === 1 && record[0] === '')) records.push(record)
    record = []
  }
  while (i < text.length) {
    const c = text[i] as string
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') {
          field += '"'
          i += 2
          continue
        }
        quoted = false
      } else {
        if (c === '\n') line++
        field += c
      }
      i++
      continue
    }
    if (c === '"' && field === '') quoted = true
    else if (c === ',') {
      record.push(field)
      field = ''
    } else if (c === '\n' || c === '\r') {
      endRecord()
      if (c === '\r' && text[i + 1] === '\n') i++
      line++
    } else field += c
    i++
  }
  if (quoted) throw new TrainingError('CHURN_TRAIN_BAD_INPUT', `${source}: a quoted field opened before line ${line} is never closed`)
  if (field !== '' || record.length > 0) endRecord()
  const header = records.shift()
  if (header === undefined) throw new TrainingError('CHURN_TRAIN_EMPTY', `${source} is empty: no header row`)
  const names = header.map(h => h.trim())
  const seen = new Set<string>()
  for (const name of names) {
    if (name === '') throw new TrainingError('CHURN_TRAIN_BAD_INPUT', `${source}: the header has an empty column name`)
    if (seen.has(name)) throw new TrainingError('CHURN_TRAIN_BAD_INPUT', `${source}: the header names column ${JSON.stringify(name)} twice`)
    seen.add(name)
  }
  records.forEach((r, index) => {
    if (r.length !== names.length) throw new TrainingError('CHURN_TRAIN_BAD_INPUT', `${source}: data row ${index + 1} has ${r.length} fields; the header has ${names.length}`)
  })
  return { header: names, rows: records }
}
