import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { describe, it } from 'node:test'
import { inlineHashes, loadPage } from '../../../../../scoring/http/page/page.ts'

describe('inlineHashes', () => {
  it('hashes each inline body as a CSP source', () => {
    const body = "\nconsole.log('hi')\n"
    const expected = `'sha256-${createHash('sha256').update(body).digest('base64')}'`
    assert.deepEqual(inlineHashes(`<p>x</p><script>${body}</script>`, 'script'), [expected])
  })
})

describe('loadPage', () => {
  it('allows exactly the page\'s one script and one style, and nothing from elsewhere', async () => {
    const page = await loadPage()
    assert.deepEqual(inlineHashes(page.html, 'script').length, 1)
    assert.deepEqual(inlineHashes(page.html, 'style').length, 1)
    assert.match(page.contentSecurityPolicy, /default-src 'none'/)
    assert.doesNotMatch(page.contentSecurityPolicy, /unsafe-inline|https?:/)
    assert.doesNotMatch(page.html, / on[a-z]+="/, 'no inline event handlers (the policy would block them)')
  })
})
