import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { describe, it } from 'node:test'
import { parseCsv } from '../../../training/csv.ts'
import { columnMedians, impute } from '../../../training/imputation.ts'
import { csvTrainingSet } from '../../../training/sets.ts'
import { encodeProfile, encodeTable, featureNames, inferEncoding, rowKeys } from '../../../training/tabular.ts'
import { REFERENCE_PROFILE, TELCO } from '../../helpers/telco.ts'

const code = (pattern: string) => (error: unknown): boolean => {
  assert.equal((error as { code?: string }).code, pattern, (error as Error).message)
  return true
}

describe('CSV reader', () => {
  it('reads quotes, doubled quotes, commas and newlines in quotes, CRLF and a BOM', () => {
    const table = parseCsv('\uFEFFa,b,c\r\n1,"x, ""y""",3\r\n"multi\nline",,z\r\n\r\n')
    assert.deepEqual(table.header, ['a', 'b', 'c'])
    assert.deepEqual(table.rows, [['1', 'x, "y"', '3'], ['multi\nline', '', 'z']])
  })

  it('refuses a ragged row, a duplicate column, an unclosed quote and an empty file', () => {
    assert.throws(() => parseCsv('a,b\n1,2,3\n'), (e: Error) => code('CHURN_TRAIN_BAD_INPUT')(e) && /data row 1 has 3 fields/.test(e.message))
    assert.throws(() => parseCsv('a,a\n1,2\n'), code('CHURN_TRAIN_BAD_INPUT'))
    assert.throws(() => parseCsv('a,b\n"1,2\n'), code('CHURN_TRAIN_BAD_INPUT'))
    assert.throws(() => parseCsv(''), code('CHURN_TRAIN_EMPTY'))
  })
})

describe('tabular encoding of the Telco export', async () => {
  const table = parseCsv(await readFile(TELCO, 'utf8'))
  const encoding = inferEncoding(table, { target: 'Churn', positive: 'Yes' })

  it('drops the identifier, keeps numbers numeric and one-hot encodes the rest', () => {
    assert.deepEqual(encoding.dropped, [{ name: 'customerID', reason: 'identifier (a distinct value in every row)' }])
    const kinds = Object.fromEntries(encoding.columns.map(c => [c.name, c.kind === 'numeric' ? 'numeric' : c.levels]))
    assert.equal(kinds.tenure, 'numeric')
    assert.equal(kinds.SeniorCitizen, 'numeric')
    assert.equal(kinds.TotalCharges, 'numeric', 'blank cells do not make a number column text')
    assert.deepEqual(kinds.Contract, ['Month-to-month', 'One year', 'Two year'])
    assert.equal(featureNames(encoding).length, 45)
    assert.ok(!featureNames(encoding).includes('Churn'))
  })

  it('encodes 1,869 churned of 7,043 and leaves the 11 blank TotalCharges missing until imputed', () => {
    const encoded = encodeTable(table, encoding)
    assert.equal(encoded.rows, 7043)
    assert.equal(encoded.y.reduce((a, b) => a + b, 0), 1869)
    const total = featureNames(encoding).indexOf('TotalCharges')
    let missing = 0
    for (let r = 0; r < encoded.rows; r++) if (Number.isNaN(encoded.x[r * encoded.columns + total])) missing++
    assert.equal(missing, 11)
    const medians = columnMedians(encoded.x, encoded.rows, encoded.columns)
    assert.equal(impute(encoded.x, medians), 11)
    assert.ok(medians[total]! > 1000 && medians[total]! < 2000, `median TotalCharges ${medians[total]}`)
    // Each one-hot group has exactly one indicator set per row.
    const contract = featureNames(encoding).indexOf('Contract=Month-to-month')
    for (let r = 0; r < 50; r++) assert.equal(encoded.x[r * encoded.columns + contract]! + encoded.x[r * encoded.columns + contract + 1]! + encoded.x[r * encoded.columns + contract + 2]!, 1)
  })

  it('keys rows by customerID for the hold-out', () => {
    const keys = rowKeys(table, encoding)
    assert.equal(keys[0], '7590-VHVEG')
    assert.equal(new Set(keys).size, 7043)
  })

  it('encodes a raw profile as training did, and refuses what it cannot encode', () => {
    const names = featureNames(encoding)
    const out = new Float64Array(names.length)
    encodeProfile(encoding, REFERENCE_PROFILE, out)
    assert.equal(out[names.indexOf('tenure')], 1)
    assert.equal(out[names.indexOf('InternetService=Fiber optic')], 1)
    assert.equal(out[names.indexOf('InternetService=DSL')], 0)
    encodeProfile(encoding, { ...REFERENCE_PROFILE, TotalCharges: ' ' }, out)
    assert.ok(Number.isNaN(out[names.indexOf('TotalCharges')]), 'a blank number is missing, imputed later')
    assert.throws(() => encodeProfile(encoding, { ...REFERENCE_PROFILE, Contract: 'Forever' }, out),
      (e: Error) => code('CHURN_MODEL_BAD_INPUT')(e) && /Contract must be one of "Month-to-month", "One year", "Two year"/.test(e.message))
    assert.throws(() => encodeProfile(encoding, { ...REFERENCE_PROFILE, tenure: 'a year' }, out), (e: Error) => code('CHURN_MODEL_BAD_INPUT')(e) && /tenure must be a number/.test(e.message))
  })
})

describe('tabular bad input', () => {
  const csv = (rows: string[]): ReturnType<typeof parseCsv> => parseCsv(rows.join('\n'))

  it('names a missing target column and lists the columns', () => {
    assert.throws(() => inferEncoding(csv(['id,a,Churn', '1,2,Yes']), { target: 'Exited', positive: 'Yes' }),
      (e: Error) => code('CHURN_TRAIN_NO_TARGET')(e) && /no target column "Exited"; the columns are id, a, Churn/.test(e.message))
  })

  it('refuses a target with one class, or without the positive value', () => {
    assert.throws(() => inferEncoding(csv(['a,Churn', '1,No', '2,No']), { target: 'Churn', positive: 'Yes' }), code('CHURN_TRAIN_ONE_CLASS'))
    assert.throws(() => inferEncoding(csv(['a,Churn', '1,Yes', '2,Yes']), { target: 'Churn', positive: 'Yes' }), code('CHURN_TRAIN_ONE_CLASS'))
  })

  it('refuses text with too many distinct values to one-hot encode, naming the column and the way out', () => {
    const rows = ['note,x,Churn', ...Array.from({ length: 120 }, (_, i) => `remark ${i % 60},${i},${i % 3 === 0 ? 'Yes' : 'No'}`)]
    assert.throws(() => inferEncoding(csv(rows), { target: 'Churn', positive: 'Yes' }),
      (e: Error) => code('CHURN_TRAIN_BAD_COLUMN')(e) && /column "note" is text with 60 distinct values/.test(e.message) && /--drop note/.test(e.message))
    const encoding = inferEncoding(csv(rows), { target: 'Churn', positive: 'Yes', drop: ['note'] })
    assert.deepEqual(encoding.columns, [{ name: 'x', kind: 'numeric' }])
  })

  it('refuses an empty table and a table with nothing left to learn from', () => {
    assert.throws(() => inferEncoding(csv(['a,Churn']), { target: 'Churn', positive: 'Yes' }), code('CHURN_TRAIN_EMPTY'))
    assert.throws(() => inferEncoding(csv(['id,Churn', 'a,Yes', 'b,No']), { target: 'Churn', positive: 'Yes' }), code('CHURN_TRAIN_EMPTY'))
  })

  it('reads a CSV file into a training set with its source and hash', async () => {
    const set = await csvTrainingSet(TELCO, { target: 'Churn', positive: 'Yes' })
    assert.equal(set.rows, 7043)
    assert.equal(set.labels, 'csv')
    assert.deepEqual(set.source, { kind: 'csv', file: TELCO, sha256: '16320c9c1ec72448db59aa0a26a0b95401046bef5d02fd3aeb906448e3055e91' })
    await assert.rejects(csvTrainingSet('/nonexistent/file.csv', { target: 'Churn', positive: 'Yes' }), code('CHURN_TRAIN_BAD_INPUT'))
  })
})
