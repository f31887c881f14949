import { Editor } from '@tiptap/core'
import Collaboration from '@tiptap/extension-collaboration'
import * as Y from 'yjs'

import { ApiError, type Api, type VersionInfo } from './api'
import { documentExtensions } from './extensions'
import { absoluteTime, formatBytes, relativeTime } from './format'

// The version history drawer: the list of saved versions, a form to save one, and a
// read-only preview of a version in place of the live editor, from which it can be
// restored. Restoring is the server's job: the new content reaches this page through
// the WebsocketProvider like anyone's edit.

export interface HistoryElements {
  /** The top bar's "History" button, which opens and closes the drawer. */
  toggle: HTMLButtonElement
  /** The `<aside>` drawer. */
  panel: HTMLElement
  /** The strip that says which version is shown, over the preview. */
  previewBar: HTMLElement
  /** Where the preview editor goes (next to the live editor, which it replaces). */
  preview: HTMLElement
}

const FIELD = 'default'
const KIND_NAMES: Record<string, string> = { auto: 'Autosave', restore: 'Before restore', manual: 'Saved version' }
const KIND_HINTS: Record<string, string> = {
  auto: 'Saved automatically',
  restore: 'The content just before a restore',
  manual: 'Saved by hand',
}

export const versionTitle = (version: VersionInfo, known: VersionInfo[] = []): string => {
  const label = version.label.trim()
  if (!label) return KIND_NAMES[version.kind] || 'Untitled version'
  // A backup's label may name the restored version by its id: show its title instead.
  if (version.kind === 'restore') {
    const source = known.find((v) => v !== version && v.id && label.includes(v.id))
    if (source) return `Before restoring “${versionTitle(source)}”`
  }
  return label
}

const element = <K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className: string,
  text?: string,
): HTMLElementTagNameMap[K] => {
  const node = document.createElement(tag)
  node.className = className
  if (text !== undefined) node.textContent = text
  return node
}

const describeError = (error: unknown): string =>
  error instanceof ApiError ? error.message : 'Something went wrong. Please try again.'

/** A server without history routes answers 405 (or 404, told apart in `explainListFailure`). */
const isMissingRoute = (error: unknown): boolean =>
  error instanceof ApiError && (error.status === 405 || error.status === 501)

export class HistoryPanel {
  private readonly api: Api
  private readonly docId: string
  private readonly els: HistoryElements
  private readonly list: HTMLOListElement
  private readonly form: HTMLFormElement
  private readonly labelInput: HTMLInputElement
  private readonly saveButton: HTMLButtonElement
  private readonly readOnlyNote: HTMLElement
  private readonly message: HTMLElement
  private readonly announcer: HTMLElement
  private readonly restoreButton: HTMLButtonElement
  private readonly previewTitle: HTMLElement
  private readonly previewMeta: HTMLElement

  private versions: VersionInfo[] = []
  private writable = true
  private listTicket = 0
  private previewTicket = 0
  private selected: VersionInfo | null = null
  private previewEditor: Editor | null = null
  private previewDoc: Y.Doc | null = null
  private clock: number | undefined

  constructor(api: Api, docId: string, els: HistoryElements) {
    this.api = api
    this.docId = docId
    this.els = els
    const panel = els.panel
    this.list = panel.querySelector('.history__list')!
    this.form = panel.querySelector('.history__save')!
    this.labelInput = this.form.querySelector('input')!
    this.saveButton = this.form.querySelector('button[type="submit"]')!
    this.readOnlyNote = panel.querySelector('.history__readonly')!
    this.message = panel.querySelector('.history__message')!
    this.announcer = panel.querySelector('.history__announce')!
    this.restoreButton = els.previewBar.querySelector('[data-action="restore"]')!
    this.previewTitle = els.previewBar.querySelector('.preview-bar__title')!
    this.previewMeta = els.previewBar.querySelector('.preview-bar__meta')!

    els.toggle.addEventListener('click', () => {
      if (!this.isOpen) return this.open()
      // On a narrow screen the preview covers the drawer: the button brings the list back.
      if (!this.panelShown) {
        this.leavePreview()
        return this.focusSelected()
      }
      this.close()
    })
    panel.querySelector('[data-action="close"]')!.addEventListener('click', () => this.close())
    els.previewBar.querySelector('[data-action="live"]')!.addEventListener('click', () => {
      this.leavePreview()
      this.focusSelected()
    })
    this.restoreButton.addEventListener('click', () => void this.restore())
    this.form.addEventListener('submit', (event) => {
      event.preventDefault()
      void this.save()
    })
    this.list.addEventListener('click', (event) => {
      const button = (event.target as Element).closest<HTMLButtonElement>('button[data-version]')
      if (!button) return
      const version = this.versions.find((v) => v.id === button.dataset.version)
      if (version) void this.showPreview(version)
      else this.leavePreview()
    })
    document.addEventListener('keydown', (event) => {
      if (event.key !== 'Escape' || event.defaultPrevented || !this.isOpen) return
      // A modal dialog (the name prompt) handles its own Escape.
      if (document.querySelector('dialog[open]')) return
      event.preventDefault()
      this.close()
    })
  }

  get isOpen(): boolean {
    return !this.els.panel.hidden
  }

  /** Open and laid out (a narrow screen hides the drawer while previewing). */
  private get panelShown(): boolean {
    return this.isOpen && this.els.panel.getClientRects().length > 0
  }

  /** Saving and restoring need write access; previews do not. */
  setWritable(writable: boolean): void {
    this.writable = writable
    this.form.hidden = !writable
    this.readOnlyNote.hidden = writable
    this.restoreButton.hidden = !writable
  }

  open(): void {
    if (this.isOpen) return
    this.els.panel.hidden = false
    this.els.toggle.setAttribute('aria-expanded', 'true')
    document.body.classList.add('is-history-open')
    ;(this.writable ? this.labelInput : this.els.panel.querySelector<HTMLElement>('.history__title')!).focus()
    // Keep "5 minutes ago" true while the drawer is open.
    this.clock = window.setInterval(() => this.render(), 30_000)
    void this.refresh()
  }

  close(): void {
    if (!this.isOpen) return
    const hadFocus = this.els.panel.contains(document.activeElement) || this.els.previewBar.contains(document.activeElement)
    this.leavePreview()
    this.els.panel.hidden = true
    this.els.toggle.setAttribute('aria-expanded', 'false')
    document.body.classList.remove('is-history-open')
    window.clearInterval(this.clock)
    if (hadFocus || document.activeElement === document.body) this.els.toggle.focus()
  }

  async refresh(): Promise<void> {
    const ticket = ++this.listTicket
    this.list.setAttribute('aria-busy', 'true')
    if (this.versions.length === 0) this.showMessage('Loading versions…')
    try {
      const versions = await this.api.listVersions(this.docId)
      if (ticket !== this.listTicket) return
      this.versions = versions
      this.setWritable(this.writable)
      this.showMessage(null)
      this.render()
    } catch (error) {
      if (ticket !== this.listTicket) return
      await this.explainListFailure(error)
    } finally {
      if (ticket === this.listTicket) this.list.removeAttribute('aria-busy')
    }
  }

  private async explainListFailure(error: unknown): Promise<void> {
    this.versions = []
    this.render()
    if (isMissingRoute(error)) return this.unavailable()
    if (error instanceof ApiError && error.status === 404) {
      // Either the document has never been stored (nothing to list yet), or this
      // server has no history routes at all.
      try {
        await this.api.getDocument(this.docId)
      } catch {
        this.render()
        return
      }
      return this.unavailable()
    }
    this.showMessage(describeError(error), 'error', { label: 'Try again', run: () => void this.refresh() })
  }

  private unavailable(): void {
    this.list.replaceChildren()
    this.form.hidden = true
    this.readOnlyNote.hidden = true
    this.showMessage('History is not available on this server.', 'info')
  }

  private render(): void {
    // Replacing the buttons would drop keyboard focus to <body>: give it back to the
    // same version's new button.
    const focused = document.activeElement
    const focusedVersion =
      focused instanceof HTMLButtonElement && this.list.contains(focused) ? focused.dataset.version : undefined
    const items: HTMLLIElement[] = [this.liveItem()]
    for (const version of this.versions) items.push(this.versionItem(version))
    this.list.replaceChildren(...items)
    if (focusedVersion !== undefined) {
      const again = [...this.list.querySelectorAll<HTMLButtonElement>('button[data-version]')].find(
        (button) => button.dataset.version === focusedVersion,
      )
      again?.focus()
    }
    if (this.versions.length === 0 && this.message.hidden) {
      const empty = element('li', 'history__empty')
      empty.append(
        element('strong', '', 'No saved versions yet'),
        element(
          'span',
          '',
          this.writable
            ? 'Save a version to mark a point you can come back to.'
            : 'Versions saved by others will appear here.',
        ),
      )
      this.list.append(empty)
    }
  }

  private liveItem(): HTMLLIElement {
    const item = element('li', 'history__item history__item--live')
    const button = element('button', 'version')
    button.type = 'button'
    button.dataset.version = ''
    button.setAttribute('aria-current', String(this.selected === null))
    const head = element('span', 'version__head')
    head.append(element('span', 'version__title', 'Current document'), element('span', 'version__pill', 'Live'))
    button.append(element('span', 'version__dot', ''), head, element('span', 'version__meta', 'What everyone is editing now'))
    item.append(button)
    return item
  }

  private versionItem(version: VersionInfo): HTMLLIElement {
    const item = element('li', `history__item history__item--${version.kind}`)
    const button = element('button', 'version')
    button.type = 'button'
    button.dataset.version = version.id
    button.setAttribute('aria-current', String(this.selected?.id === version.id))
    button.title = KIND_HINTS[version.kind] ?? ''

    const title = element('span', 'version__title', versionTitle(version, this.versions))
    if (!version.label.trim()) title.classList.add('version__title--generic')
    const time = element('time', 'version__time', relativeTime(version.created_at))
    time.dateTime = version.created_at
    time.title = absoluteTime(version.created_at)
    const head = element('span', 'version__head')
    head.append(title, time)

    const meta = element('span', 'version__meta')
    const who = version.created_by ? `by ${version.created_by}` : KIND_HINTS[version.kind] ?? ''
    meta.append(element('span', 'version__who', who), element('span', 'version__size', formatBytes(version.size_bytes)))
    const dot = element('span', 'version__dot', '')
    button.append(dot, head, meta)
    item.append(button)
    return item
  }

  private async save(): Promise<void> {
    if (!this.writable) return
    const label = this.labelInput.value.trim()
    this.saveButton.disabled = true
    this.saveButton.textContent = 'Saving…'
    try {
      const version = await this.api.createVersion(this.docId, label)
      this.labelInput.value = ''
      this.announce(`Saved “${versionTitle(version)}”.`)
      await this.refresh()
    } catch (error) {
      this.failedWrite(error)
    } finally {
      this.saveButton.disabled = false
      this.saveButton.textContent = 'Save version'
    }
  }

  private async showPreview(version: VersionInfo): Promise<void> {
    this.selected = version
    this.render()
    const ticket = ++this.previewTicket
    this.els.previewBar.hidden = false
    document.body.classList.add('is-previewing')
    this.previewTitle.textContent = `Previewing “${versionTitle(version)}”`
    this.previewMeta.textContent = 'Loading…'
    this.restoreButton.disabled = true
    let update: Uint8Array
    try {
      update = await this.api.versionUpdate(this.docId, version.id)
    } catch (error) {
      if (ticket !== this.previewTicket) return
      this.leavePreview()
      this.showMessage(`Could not open this version: ${describeError(error)}`, 'error')
      return
    }
    if (ticket !== this.previewTicket) return

    this.destroyPreview()
    const ydoc = new Y.Doc()
    try {
      Y.applyUpdate(ydoc, update)
    } catch {
      ydoc.destroy()
      this.leavePreview()
      this.showMessage('This version could not be read.', 'error')
      return
    }
    this.previewDoc = ydoc
    this.previewEditor = new Editor({
      element: this.els.preview,
      editable: false,
      extensions: [
        ...documentExtensions(),
        Collaboration.configure({ document: ydoc, field: FIELD }),
      ],
      editorProps: {
        attributes: {
          'aria-label': `Version “${versionTitle(version)}” of ${this.docId} (read-only preview)`,
          'aria-multiline': 'true',
          'aria-readonly': 'true',
          role: 'textbox',
        },
      },
    })
    this.els.preview.hidden = false
    window.scrollTo({ top: 0 })
    this.previewMeta.textContent = `${absoluteTime(version.created_at)} · ${version.created_by ? `by ${version.created_by} · ` : ''}read-only`
    this.restoreButton.disabled = false
    if (!this.panelShown) this.previewTitle.focus()
    this.announce(`Showing “${versionTitle(version)}”. The live document is hidden until you go back.`)
  }

  /** Back to the live editor. */
  leavePreview(): void {
    this.previewTicket++
    this.destroyPreview()
    this.els.preview.hidden = true
    this.els.previewBar.hidden = true
    document.body.classList.remove('is-previewing')
    if (this.selected) {
      this.selected = null
      this.render()
    }
  }

  private destroyPreview(): void {
    this.previewEditor?.destroy()
    this.previewEditor = null
    this.previewDoc?.destroy()
    this.previewDoc = null
    this.els.preview.replaceChildren()
  }

  private async restore(): Promise<void> {
    const version = this.selected
    if (!version || !this.writable) return
    const ok = confirm(
      `Restore “${versionTitle(version)}”?\n\nThe document changes back to this version for everyone. ` +
        'The current content is saved as a version first, so this can be undone.',
    )
    if (!ok) return
    this.restoreButton.disabled = true
    this.restoreButton.textContent = 'Restoring…'
    try {
      const { backup } = await this.api.restoreVersion(this.docId, version.id)
      this.leavePreview()
      await this.refresh()
      const done = `Restored “${versionTitle(version)}”. ${
        backup ? 'The content it replaced is kept as a version, so this can be undone.' : ''
      }`.trim()
      this.showMessage(done, 'ok')
      this.announce(done)
      this.focusSelected()
    } catch (error) {
      this.failedWrite(error)
    } finally {
      this.restoreButton.disabled = false
      this.restoreButton.textContent = 'Restore this version'
    }
  }

  private failedWrite(error: unknown): void {
    if (error instanceof ApiError && error.code === 'read_only') {
      this.setWritable(false)
      this.showMessage('Your access is read-only: you can look at versions but not save or restore them.', 'info')
    } else if (isMissingRoute(error) || (error instanceof ApiError && error.status === 404 && this.versions.length === 0)) {
      this.unavailable()
    } else {
      this.showMessage(describeError(error), 'error')
    }
  }

  private focusSelected(): void {
    if (!this.isOpen) return
    const current = this.list.querySelector<HTMLButtonElement>('button[aria-current="true"]')
    current?.focus()
  }

  private announce(text: string): void {
    this.announcer.textContent = text
  }

  private showMessage(
    text: string | null,
    tone: 'info' | 'error' | 'ok' = 'info',
    action?: { label: string; run: () => void },
  ): void {
    if (text === null) {
      this.message.hidden = true
      this.message.replaceChildren()
      return
    }
    this.message.dataset.tone = tone
    this.message.replaceChildren(element('span', '', text))
    if (action) {
      const button = element('button', 'link-button', action.label)
      button.type = 'button'
      button.addEventListener('click', action.run)
      this.message.append(' ', button)
    }
    this.message.hidden = false
  }
}
