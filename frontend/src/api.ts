import { url } from './base'
import type { AccessToken } from './token'

export interface DocumentInfo {
  id: string
  created_at: string
  updated_at: string
  size_bytes: number
  /** The content's first line that is not blank; empty when there is none. */
  title: string
}

/** How a version came to be: saved by someone, by the server on its own, or just
 * before a restore replaced the content. */
export type VersionKind = 'manual' | 'auto' | 'restore'

export interface VersionInfo {
  id: string
  created_at: string
  label: string
  created_by: string
  kind: VersionKind
  size_bytes: number
}

export interface RestoreResult {
  restored: string
  /** The version the server saved from the content the restore replaced. */
  backup: VersionInfo
}

export interface Session {
  user: string
  name: string
  mode: 'rw' | 'ro'
  /** No sign-in at all: an open server, where people name themselves. */
  anonymous: boolean
  expires_at: number | null
  /** The host application's URL for a fresh token; null: collab renews it. */
  refresh_url: string | null
}

export interface ShareLink {
  token: string
  url: string
  mode: 'rw' | 'ro'
  expires_at: number
}

/** The formats a document downloads in (the content API's). */
export type ExportFormat = 'markdown' | 'html'

export interface DocumentPage {
  documents: DocumentInfo[]
  nextOffset: number | null
}

const PAGE_SIZE = 100

/** An API failure; `status` is 0 when the server could not be reached at all. */
export class ApiError extends Error {
  readonly status: number
  readonly code: string

  constructor(status: number, code: string, detail: string) {
    super(detail)
    this.name = 'ApiError'
    this.status = status
    this.code = code
  }
}

export class Api {
  private token: AccessToken | null

  constructor(token: AccessToken | null) {
    this.token = token
  }

  /** From now on, calls carry this token (a renewed one). */
  setToken(token: AccessToken): void {
    this.token = token
  }

  /** One page of the list; `nextOffset` is null on the last page. */
  async listDocuments(offset = 0, limit = PAGE_SIZE): Promise<DocumentPage> {
    const query = new URLSearchParams({ limit: String(limit), offset: String(offset) })
    const body = (await this.json('GET', url(`/api/documents?${query}`))) as {
      documents?: DocumentInfo[]
      next_offset?: number | null
    }
    return { documents: body.documents ?? [], nextOffset: body.next_offset ?? null }
  }

  async createDocument(id?: string): Promise<DocumentInfo> {
    return (await this.json('POST', url('/api/documents'), id ? { id } : {})) as DocumentInfo
  }

  async getDocument(id: string): Promise<DocumentInfo> {
    return (await this.json('GET', documentPath(id))) as DocumentInfo
  }

  async deleteDocument(id: string): Promise<void> {
    await this.request('DELETE', documentPath(id))
  }

  /** The document's saved versions, newest first. */
  async listVersions(docId: string): Promise<VersionInfo[]> {
    const body = (await this.json('GET', versionsPath(docId))) as { versions?: VersionInfo[] }
    return body.versions ?? []
  }

  async createVersion(docId: string, label: string): Promise<VersionInfo> {
    return (await this.json('POST', versionsPath(docId), { label })) as VersionInfo
  }

  /** A version's whole document, as one Yjs (v1) update. */
  async versionUpdate(docId: string, versionId: string): Promise<Uint8Array> {
    const path = `${versionsPath(docId)}/${encodeURIComponent(versionId)}/update`
    const response = await this.request('GET', path, undefined, 'application/octet-stream')
    return new Uint8Array(await response.arrayBuffer())
  }

  /** Makes the live document's content the version's, for everyone, as a new change. */
  async restoreVersion(docId: string, versionId: string): Promise<RestoreResult> {
    const path = `${versionsPath(docId)}/${encodeURIComponent(versionId)}/restore`
    return (await this.json('POST', path)) as RestoreResult
  }

  /** Who this user is to the server: the grant of the token or of the host's sign-in. */
  async session(docId: string): Promise<Session> {
    return (await this.json('GET', url(`/api/session?${new URLSearchParams({ doc: docId })}`))) as Session
  }

  /** A link to the document for someone else, read-only or read-write, for `ttl`
   * seconds (the server's maximum when absent); 409 when the server signs no tokens. */
  async share(docId: string, mode: 'rw' | 'ro', ttl?: number): Promise<ShareLink> {
    const body = ttl === undefined ? { mode } : { mode, ttl }
    return (await this.json('POST', `${documentPath(docId)}/share`, body)) as ShareLink
  }

  /** This page's token again, with a fresh expiry: from collab, or from the host
   * application's `refreshUrl` (COLLAB_TOKEN_REFRESH_URL), asked with the browser's
   * credentials (its own sign-in) and the current token. */
  async renewToken(refreshUrl: string | null = null): Promise<string> {
    const body = (
      refreshUrl === null
        ? await this.json('POST', url('/api/token/renew'))
        : await (await this.request('POST', refreshUrl, undefined, 'application/json', 'include')).json()
    ) as { token?: unknown }
    if (typeof body.token !== 'string') throw new ApiError(502, 'bad_refresh', 'No token came back.')
    return body.token
  }

  /** The document's content in `format`, as the server renders it. */
  async content(docId: string, format: ExportFormat): Promise<string> {
    const path = `${documentPath(docId)}/content?${new URLSearchParams({ format })}`
    const accept = format === 'html' ? 'text/html' : 'text/markdown'
    return (await this.request('GET', path, undefined, accept)).text()
  }

  private async json(method: string, path: string, body?: unknown): Promise<unknown> {
    const response = await this.request(method, path, body)
    return response.status === 204 ? {} : response.json()
  }

  private async request(
    method: string,
    path: string,
    body?: unknown,
    accept = 'application/json',
    credentials: RequestCredentials = 'same-origin',
  ): Promise<Response> {
    const headers: Record<string, string> = { Accept: accept }
    if (body !== undefined) headers['Content-Type'] = 'application/json'
    if (this.token) headers.Authorization = `Bearer ${this.token.raw}`
    let response: Response
    try {
      response = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials,
      })
    } catch {
      throw new ApiError(0, 'unreachable', 'The server could not be reached.')
    }
    if (!response.ok) throw await errorFrom(response)
    return response
  }
}

const documentPath = (id: string): string => url(`/api/documents/${encodeURIComponent(id)}`)
const versionsPath = (id: string): string => `${documentPath(id)}/versions`

// Errors are JSON `{"error", "detail"}`; anything else (a proxy's HTML page) gets a
// generic sentence so the user never sees markup.
const errorFrom = async (response: Response): Promise<ApiError> => {
  try {
    const body = (await response.json()) as { error?: unknown; detail?: unknown }
    const code = typeof body.error === 'string' ? body.error : 'error'
    const detail = typeof body.detail === 'string' ? body.detail : defaultDetail(response.status)
    return new ApiError(response.status, code, detail)
  } catch {
    return new ApiError(response.status, 'error', defaultDetail(response.status))
  }
}

const defaultDetail = (status: number): string => {
  if (status === 401) return 'Your access link is missing, invalid or has expired.'
  if (status === 403) return 'You do not have permission to do that.'
  if (status === 404) return 'Not found.'
  if (status === 429) return 'Too many requests; please wait a moment and try again.'
  if (status >= 500) return `The server had a problem (HTTP ${status}). Please try again.`
  return `The request failed (HTTP ${status}).`
}
