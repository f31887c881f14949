// Mirrors the server's rule (CONTRACT.md): 1–128 characters from
// `A–Z a–z 0–9 . _ ~ -`, not starting with `.`.
const DOC_ID = /^(?!\.)[A-Za-z0-9._~-]{1,128}$/

export const isValidDocId = (id: string): boolean => DOC_ID.test(id)

/** `/d/{doc_id}` → `doc_id`; the last path segment, percent-decoded. */
export const docIdFromLocation = (): string => {
  const segments = location.pathname.split('/').filter((s) => s !== '')
  const last = segments.at(-1) ?? ''
  try {
    return decodeURIComponent(last)
  } catch {
    return last
  }
}

export const editorPath = (id: string): string => `/d/${encodeURIComponent(id)}`
