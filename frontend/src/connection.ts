import { url } from './base'
import type { WebsocketProvider } from 'y-websocket'
import { ApiError, type Api } from './api'
import type { Banner, BannerAction } from './banner'
import { WS_1006_ABNORMAL_CLOSURE, explainClose, explainHttpStatus, type CloseExplanation } from './closeCodes'

export type ConnectionState = 'connecting' | 'syncing' | 'connected' | 'reconnecting' | 'offline' | 'closed'

const LABELS: Record<ConnectionState, string> = {
  connecting: 'Connecting…',
  syncing: 'Syncing…',
  connected: 'Connected',
  reconnecting: 'Reconnecting…',
  offline: 'Offline',
  closed: 'Disconnected',
}

const HINTS: Record<ConnectionState, string> = {
  connecting: 'Opening a live connection to the server.',
  syncing: 'Exchanging the latest changes with the server.',
  connected: 'Changes are shared live with everyone in this document.',
  reconnecting: 'The connection was lost. Your edits are kept on this device and sent when it is back.',
  offline: 'You are offline. Keep writing: your edits are saved on this device and merged when you reconnect.',
  closed: 'The server closed this document.',
}

// After this many sockets in a row that never opened, ask the HTTP API why: the
// browser hides the status of a refused WebSocket upgrade (it reports code 1006).
const PROBE_AFTER_FAILURES = 3
const PROBE_EVERY_FAILURES = 10
// A server that does not answer is said to be unreachable (check your network) only
// after this long: a restart (1012) or a dropped connection usually heals sooner, and
// an offline browser is told so at once by its `offline` event.
export const UNREACHABLE_AFTER_MS = 15_000

export interface ConnectionMonitorOptions {
  provider: WebsocketProvider
  docId: string
  api: Api
  status: HTMLElement
  banner: Banner
  /** Called once when the server refused the document for good. */
  onTerminal: (explanation: CloseExplanation) => void
  /** The document list's address (with the page's token, so it stays authorised). */
  home?: () => string
  /** Ways forward besides the document list, offered with a refusal for good. */
  recover?: (explanation: CloseExplanation) => BannerAction[]
}

/**
 * Turns the provider's events, the browser's online/offline events and the server's
 * close codes into the status pill and the banner. Reconnection with backoff is the
 * provider's own; this only stops it when the server says retrying cannot help.
 */
export class ConnectionMonitor {
  private readonly options: ConnectionMonitorOptions
  private state: ConnectionState = 'connecting'
  private opened = false
  private everSynced = false
  private failedOpens = 0
  private probing = false
  /** The last probe got no HTTP answer at all. */
  private serverSilent = false
  private transientWarning = false
  private terminal: CloseExplanation | null = null
  /** When the sockets started failing (null while connected). */
  private failingSince: number | null = null
  /** Why the last good connection ended, if the server said (1012 restart…). */
  private lastClose: CloseExplanation | null = null

  constructor(options: ConnectionMonitorOptions) {
    this.options = options
    const { provider } = options
    provider.shouldReconnect = (event) => !explainClose(event.code)?.terminal

    provider.on('status', ({ status }) => {
      if (status === 'connected') {
        this.opened = true
        this.failedOpens = 0
        this.failingSince = null
        this.lastClose = null
        this.render(provider.synced ? 'connected' : 'syncing')
      } else if (status === 'connecting') {
        this.opened = false
        if (this.state !== 'syncing') this.render(this.everSynced ? 'reconnecting' : 'connecting')
      } else {
        this.render(this.idleState())
      }
    })
    provider.on('sync', (synced) => {
      if (!synced || !provider.wsconnected) return
      this.everSynced = true
      if (this.transientWarning) {
        this.transientWarning = false
        options.banner.hide()
      }
      this.render('connected')
    })
    provider.on('connection-close', (event) => {
      if (event !== null) this.onServerClose(event.code)
    })

    window.addEventListener('offline', () => this.goOffline())
    window.addEventListener('online', () => {
      if (this.terminal) return
      if (this.transientWarning) {
        this.transientWarning = false
        options.banner.hide()
      }
      this.render(this.everSynced ? 'reconnecting' : 'connecting')
      provider.connect()
    })
    if (!navigator.onLine) this.goOffline()
    else this.render('connecting')
  }

  private goOffline(): void {
    if (this.terminal) return
    // Stop knocking on a door we cannot reach; `online` resumes straight away.
    this.provider.disconnect()
    this.transientWarning = true
    this.options.banner.show(
      'info',
      'You’re offline',
      'Keep writing: your changes are saved on this device and merged when you’re back online.',
    )
    this.render('offline')
  }

  private idleState(): ConnectionState {
    if (this.terminal) return 'closed'
    if (!navigator.onLine) return 'offline'
    return this.everSynced ? 'reconnecting' : 'connecting'
  }

  private onServerClose(code: number): void {
    const explanation = explainClose(code)
    if (explanation?.terminal) {
      this.stop(explanation)
      return
    }
    if (explanation) {
      this.lastClose = explanation
      this.transientWarning = true
      this.options.banner.show('warning', explanation.title, explanation.detail)
    }
    this.failingSince ??= Date.now()
    if (!this.opened || code === WS_1006_ABNORMAL_CLOSURE) {
      this.failedOpens += 1
      if (this.serverSilent) this.warnUnreachable()
      const due =
        this.failedOpens === PROBE_AFTER_FAILURES ||
        (this.failedOpens > PROBE_AFTER_FAILURES && this.failedOpens % PROBE_EVERY_FAILURES === 0)
      if (due) void this.probe()
    }
  }

  private async probe(): Promise<void> {
    if (this.probing || this.terminal) return
    this.probing = true
    try {
      await this.options.api.getDocument(this.options.docId)
      this.serverSilent = false
      this.warnFailing('The document exists, but the live connection keeps failing. Retrying…')
    } catch (error) {
      const status = error instanceof ApiError ? error.status : 0
      const explanation = explainHttpStatus(status)
      this.serverSilent = status === 0
      if (explanation) this.stop(explanation)
      else if (status === 0) this.warnUnreachable()
      else this.warnFailing(`The server answered with an error (HTTP ${status}). Retrying…`)
    } finally {
      this.probing = false
    }
  }

  /** The server does not answer HTTP either: it is restarting, or (if that lasts,
   * or the browser is offline) out of reach. */
  private warnUnreachable(): void {
    if (this.provider.wsconnected || this.terminal) return
    if (!navigator.onLine) return this.goOffline()
    const waited = Date.now() - (this.failingSince ?? Date.now())
    if (waited < UNREACHABLE_AFTER_MS) {
      // Keep the server's own reason (restarting, shutting down) while it comes back.
      const title = this.lastClose?.title ?? 'Reconnecting to the server'
      this.warnFailing(this.lastClose?.detail ?? 'The connection dropped. Your changes are kept on this device. Retrying…', title)
      return
    }
    this.warnFailing(
      'It has not answered for a while. Check your network connection; your changes are kept on this device. Retrying…',
      'Can’t reach the server',
    )
  }

  private warnFailing(detail: string, title = 'Can’t connect to the document'): void {
    if (this.provider.wsconnected) return
    this.transientWarning = true
    this.options.banner.show('warning', title, detail, [{ label: 'Retry now', run: () => this.retryNow() }])
  }

  private get provider(): WebsocketProvider {
    return this.options.provider
  }

  private retryNow(): void {
    this.terminal = null
    this.failedOpens = 0
    this.provider.wsUnsuccessfulReconnects = 0
    this.provider.disconnect()
    this.provider.connect()
  }

  private stop(explanation: CloseExplanation): void {
    if (this.terminal) return
    this.terminal = explanation
    this.provider.shouldConnect = false
    this.provider.disconnect()
    this.transientWarning = false
    this.options.banner.show('error', explanation.title, explanation.detail, [
      { label: 'Back to documents', run: () => location.assign(this.options.home?.() ?? url('/')), primary: true },
      ...(this.options.recover?.(explanation) ?? []),
    ])
    this.render('closed')
    this.options.onTerminal(explanation)
  }

  private render(state: ConnectionState): void {
    const { status } = this.options
    const label = state === 'closed' && this.terminal ? this.terminal.short : LABELS[state]
    status.dataset.state = state
    status.title = state === 'closed' && this.terminal ? this.terminal.detail : HINTS[state]
    if (this.state === state && status.dataset.label === label) return
    this.state = state
    status.dataset.label = label
    status.querySelector('.status__label')!.textContent = label
  }
}
