import { url } from './base'
import { DOC_ID } from './generated/contract'

/** The server's rule (collab/docid.py): 1–128 characters from `A–Z a–z 0–9 . _ ~ -`,
 * not starting with `.`. */
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

export const editorPath = (id: string): string => url(`/d/${encodeURIComponent(id)}`)
