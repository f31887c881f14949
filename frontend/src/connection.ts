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
  private transientWarning = false
  private terminal: CloseExplanation | null = null

  constructor(options: ConnectionMonitorOptions) {
    this.options = options
    const { provider } = options
    provider.shouldReconnect = (event) => !explainClose(event.code)?.terminal

    provider.on('status', ({ status }) => {
      if (status === 'connected') {
        this.opened = true
        this.failedOpens = 0
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
      this.transientWarning = true
      this.options.banner.show('warning', explanation.title, explanation.detail)
    }
    if (!this.opened || code === WS_1006_ABNORMAL_CLOSURE) {
      this.failedOpens += 1
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
      this.warnUnreachable('The document exists, but the live connection keeps failing. Retrying…')
    } catch (error) {
      const status = error instanceof ApiError ? error.status : 0
      const explanation = explainHttpStatus(status)
      if (explanation) this.stop(explanation)
      else if (status === 0) this.warnUnreachable('Check your network connection. Your edits are kept on this device.')
      else this.warnUnreachable(`The server answered with an error (HTTP ${status}). Retrying…`)
    } finally {
      this.probing = false
    }
  }

  private warnUnreachable(detail: string): void {
    if (this.provider.wsconnected) return
    this.transientWarning = true
    this.options.banner.show('warning', 'Can’t reach the server', detail, [
      { label: 'Retry now', run: () => this.retryNow() },
    ])
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
