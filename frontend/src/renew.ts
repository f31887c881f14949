// Keeps the page's access token fresh: a little before it expires, the server signs
// the same claims again (POST /api/token/renew) and the page carries on with the new
// one. The server bounds how long a chain of renewals may last; when it refuses, the
// token simply runs out and the connection monitor explains (4401).

import { ApiError, type Api } from './api'
import { parseToken, type AccessToken } from './token'

// Renew this long before expiry at most, and a third of the remaining time at least
// (a 20 s token is renewed about 7 s before it runs out).
const MAX_MARGIN_S = 60
// After a failure the server did not explain (offline, restarting), try again.
const RETRY_S = 5

export class TokenRenewal {
  private readonly api: Api
  private readonly onRenewed: (token: AccessToken) => void
  private readonly refreshUrl: string | null
  private timer: number | undefined

  constructor(
    api: Api,
    token: AccessToken,
    onRenewed: (token: AccessToken) => void,
    refreshUrl: string | null = null,
  ) {
    this.api = api
    this.onRenewed = onRenewed
    this.refreshUrl = refreshUrl
    this.schedule(token)
  }

  stop(): void {
    window.clearTimeout(this.timer)
  }

  private schedule(token: AccessToken): void {
    if (token.exp === null) return
    const left = token.exp - Date.now() / 1000
    const margin = Math.min(MAX_MARGIN_S, left / 3)
    this.after(Math.max(0, left - margin), token)
  }

  private after(seconds: number, token: AccessToken): void {
    window.clearTimeout(this.timer)
    this.timer = window.setTimeout(() => void this.renew(token), seconds * 1000)
  }

  private async renew(token: AccessToken): Promise<void> {
    try {
      const renewed = parseToken(await this.api.renewToken(this.refreshUrl))
      this.onRenewed(renewed)
      this.schedule(renewed)
    } catch (error) {
      // Refused (past the longest lifetime, or no secret to sign with): nothing to do
      // but let it expire. Unanswered: again soon, while the token still holds.
      const answered = error instanceof ApiError && error.status !== 0 && error.status < 500
      const left = (token.exp ?? 0) - Date.now() / 1000
      if (!answered && left > RETRY_S) this.after(RETRY_S, token)
    }
  }
}
