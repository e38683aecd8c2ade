/**
 * The web page at `/` (`index.html`): one self-contained document, its CSS and script inline, no
 * external resource (the page must work where there is no internet, and a CDN would be a third
 * party able to run script next to the API key). It fetches everything it shows from the keyed
 * API with the key the person types in.
 *
 * The Content-Security-Policy allows exactly the inline script and style of this document (by
 * their SHA-256, computed when the page is loaded) and requests to this origin only, so an
 * injected `<script>` or a stray `on*=` attribute would not run.
 */
import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import path from 'node:path'

export interface PageDocument {
  html: string
  /** The Content-Security-Policy header that lets this document's inline script and style run. */
  contentSecurityPolicy: string
}

/** The file the page is read from. */
export const PAGE_FILE = path.join(import.meta.dirname, 'index.html')

const hashOf = (text: string): string => `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`

/** The hashes of every inline `<tag>` body of `html`. */
export function inlineHashes (html: string, tag: 'script' | 'style'): string[] {
  return [...html.matchAll(new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`, 'g'))].map(m => hashOf(m[1] ?? ''))
}

/** Reads the page and derives its policy. */
export async function loadPage (file = PAGE_FILE): Promise<PageDocument> {
  const html = await readFile(file, 'utf8')
  const contentSecurityPolicy = [
    "default-src 'none'",
    `script-src ${inlineHashes(html, 'script').join(' ')}`,
    `style-src ${inlineHashes(html, 'style').join(' ')}`,
    "connect-src 'self'",
    "img-src 'self' data:",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'"
  ].join('; ')
  return { html, contentSecurityPolicy }
}
