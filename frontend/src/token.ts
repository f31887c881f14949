// The access token arrives as `?token=` on the page URL (see README: Auth). We only
// *read* its claims to adapt the UI; the server is what enforces them.

export type TokenMode = 'rw' | 'ro'

export interface AccessToken {
  raw: string
  mode: TokenMode | null
  sub: string | null
  /** Expiry as a Unix timestamp in seconds, if the token has one. */
  exp: number | null
}

const decodeBase64Url = (part: string): string => {
  const base64 = part.replace(/-/g, '+').replace(/_/g, '/')
  const padded = base64 + '='.repeat((4 - (base64.length % 4)) % 4)
  const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0))
  return new TextDecoder().decode(bytes)
}

export const parseToken = (raw: string): AccessToken => {
  const token: AccessToken = { raw, mode: null, sub: null, exp: null }
  const payload = raw.split('.')[1]
  if (payload === undefined) return token
  try {
    const claims: unknown = JSON.parse(decodeBase64Url(payload))
    if (typeof claims !== 'object' || claims === null) return token
    const { mode, sub, exp } = claims as Record<string, unknown>
    if (mode === 'rw' || mode === 'ro') token.mode = mode
    if (typeof sub === 'string') token.sub = sub
    if (typeof exp === 'number') token.exp = exp
  } catch {
    // Not a JWT we can read: still pass it on; the server decides.
  }
  return token
}

export const tokenFromLocation = (): AccessToken | null => {
  const raw = new URLSearchParams(location.search).get('token')
  return raw ? parseToken(raw) : null
}

/** A same-origin link that keeps the page's token, so navigation stays authorised. */
export const linkWithToken = (path: string, token: AccessToken | null): string =>
  token ? `${path}?${new URLSearchParams({ token: token.raw })}` : path
