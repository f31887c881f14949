import './styles/base.css'
import './styles/editor.css'
import './styles/history.css'
import './styles/share.css'
import './styles/print.css'

import { Editor } from '@tiptap/core'
import Collaboration from '@tiptap/extension-collaboration'
import CollaborationCaret from '@tiptap/extension-collaboration-caret'
import { Placeholder } from '@tiptap/extensions'
import * as authProtocol from 'y-protocols/auth'
import { IndexeddbPersistence } from 'y-indexeddb'
import { WebsocketProvider, messageAuth } from 'y-websocket'
import * as Y from 'yjs'

import { Api, type Session } from './api'
import { socketUrl, url } from './base'
import { Banner } from './banner'
import { ConnectionMonitor } from './connection'
import { docIdFromLocation, isValidDocId } from './docId'
import { bindExport } from './export'
import { documentExtensions } from './extensions'
import { HistoryPanel } from './history'
import { askIdentity, loadIdentity, randomColor, saveIdentity, type Identity } from './identity'
import { LinkShortcut } from './linkTool'
import { watchPresence } from './presence'
import { explainClose } from './closeCodes'
import { CloseCode } from './generated/contract'
import { TokenRenewal } from './renew'
import { bindShare } from './share'
import { linkWithToken, parseToken, tokenFromLocation, type AccessToken } from './token'
import { bindToolbar } from './toolbar'

// The name of the shared type is the contract with the server, which reads the
// document's text from this XmlFragment (it is also Tiptap's default).
const FIELD = 'default'

// A collaborator's caret. The name is drawn from an attribute by CSS, so that it is
// not part of the document's text (copying, find-in-page, screen readers).
const renderCaret = (user: Record<string, unknown>): HTMLElement => {
  const name = typeof user.name === 'string' ? user.name : 'Someone'
  const color = typeof user.color === 'string' ? user.color : '#5f6673'
  const caret = document.createElement('span')
  caret.className = 'collaboration-carets__caret'
  caret.style.borderColor = color
  caret.setAttribute('aria-hidden', 'true')
  const label = document.createElement('span')
  label.className = 'collaboration-carets__label'
  label.style.backgroundColor = color
  label.dataset.name = name
  caret.append(label)
  return caret
}

const byId = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T

const docId = docIdFromLocation()
let token = tokenFromLocation()
const api = new Api(token)
const banner = new Banner(byId('banner'))
const status = byId('status')
const readOnlyBadge = byId('readonly-badge')
const nameDialog = byId<HTMLDialogElement>('name-dialog')

byId('doc-name').textContent = docId
byId('doc-name').title = docId
// The document list keeps the page's token (a renewed one, once renewed).
const home = (): string => linkWithToken(url('/'), token)
byId<HTMLAnchorElement>('back-link').href = home()
document.title = `${docId} · collab`

// Who may make share links is known once the session is (see main).
let shareable = false
bindShare({
  api,
  docId,
  button: byId<HTMLButtonElement>('share'),
  dialog: byId<HTMLDialogElement>('share-dialog'),
  feedback: byId('share-feedback'),
  canShare: () => shareable,
})
bindExport({
  api,
  docId,
  banner,
  toggle: byId<HTMLButtonElement>('export-toggle'),
  menu: byId('export-menu'),
  title: () => document.title.replace(/ · collab$/, ''),
})

// Access ended for good (4401): another link is the way back in.
const askNewLink = (): void => {
  const given = prompt('Paste a new link to this document, or its access token:')?.trim()
  if (!given) return
  let raw = given
  try {
    raw = new URL(given, location.href).searchParams.get('token') ?? given
  } catch {
    // Not a link: the token itself.
  }
  location.assign(linkWithToken(location.pathname, parseToken(raw)))
}
const UNAUTHORIZED = explainClose(CloseCode.UNAUTHORIZED)

const main = async (): Promise<void> => {
  if (!isValidDocId(docId)) {
    status.dataset.state = 'closed'
    status.querySelector('.status__label')!.textContent = 'Not opened'
    document.body.classList.add('is-unavailable')
    banner.show(
      'error',
      'This is not a valid document name',
      'Names are 1–128 letters, digits, “.”, “_”, “~” or “-”, and cannot start with “.”.',
      [{ label: 'Back to documents', run: () => location.assign(home()), primary: true }],
    )
    return
  }

  const stored = loadIdentity()
  let identity: Identity = stored ?? { name: 'Anonymous', color: randomColor() }

  const ydoc = new Y.Doc()
  // Offline edits survive a reload and merge when the socket comes back.
  const local = new IndexeddbPersistence(`collab:${docId}`, ydoc)

  const provider = new WebsocketProvider(socketUrl(), docId, ydoc, {
    params: token ? { token: token.raw } : {},
    connect: navigator.onLine,
  })

  let readOnly = false
  // An object, not a function: Tiptap spreads these into its own at creation (a
  // function would be lost), and they are given again when editability changes.
  const attributes = (): Record<string, string> => ({
    'aria-label': `Document ${docId}`,
    'aria-multiline': 'true',
    'aria-readonly': String(readOnly),
    role: 'textbox',
    spellcheck: 'true',
  })
  const editor = new Editor({
    element: byId('editor'),
    extensions: [
      ...documentExtensions(),
      LinkShortcut,
      Placeholder.configure({ placeholder: 'Start writing…' }),
      Collaboration.configure({ document: ydoc, field: FIELD }),
      CollaborationCaret.configure({ provider, user: identity, render: renderCaret }),
    ],
    editorProps: { attributes: attributes() },
  })
  const refreshToolbar = bindToolbar(byId('toolbar'), editor)
  const versions = new HistoryPanel(api, docId, {
    toggle: byId('history-toggle'),
    panel: byId('history'),
    previewBar: byId('preview-bar'),
    preview: byId('preview'),
  })

  const lock = (): void => {
    readOnly = true
    // A role=textbox announces read-only through aria-readonly, not contenteditable.
    editor.setOptions({ editable: false, editorProps: { ...editor.options.editorProps, attributes: attributes() } })
    document.body.classList.add('is-read-only')
    refreshToolbar()
    versions.setWritable(false)
  }
  const setReadOnly = (why: string): void => {
    lock()
    readOnlyBadge.hidden = false
    readOnlyBadge.title = why
  }
  if (token?.mode === 'ro') setReadOnly('Your access link lets you view this document, not change it.')

  // A read-only peer that tried to write gets the y-protocols auth message
  // "permission-denied"; y-websocket only logs it, so take the handler over.
  provider.messageHandlers[messageAuth] = (_encoder, decoder, _provider) => {
    authProtocol.readAuthMessage(decoder, ydoc, (_doc, reason) => {
      setReadOnly(`The server refused your changes: ${reason}`)
      banner.show('info', 'This document is read-only for you', 'You can follow along live, but your changes are not saved.')
    })
  }

  new ConnectionMonitor({
    provider,
    docId,
    api,
    status,
    banner,
    home,
    recover: (explanation) =>
      explanation === UNAUTHORIZED ? [{ label: 'Use a new link…', run: askNewLink }] : [],
    onTerminal: (explanation) => {
      lock()
      // Nothing to show (refused before any content arrived): just the message.
      if (ydoc.getXmlFragment(FIELD).length === 0) document.body.classList.add('is-unavailable')
      // A deleted document stays deleted: drop this browser's copy so that it
      // cannot resurrect the old content if the name is used again.
      if (explanation.deleted) void local.clearData()
    },
  })

  // Signed in (a token or the host's sign-in names the user): that name, not one
  // typed into the dialog; the colour stays this browser's choice.
  let signedIn: Session | null = null
  const editIdentity = async (required: boolean): Promise<void> => {
    const chosen = await askIdentity(nameDialog, identity, required)
    if (!chosen) return
    identity = signedIn ? { ...chosen, name: signedIn.name } : chosen
    saveIdentity(identity)
    editor.commands.updateUser(identity)
  }
  watchPresence(provider.awareness, byId('presence'), () => void editIdentity(false))

  // Title the tab after the document's title, as the server keeps it for the list
  // (collab/plaintext.py): its first line that is not blank, looked for in the first
  // blocks only.
  const fragment = ydoc.getXmlFragment(FIELD)
  const retitle = () => {
    const doc = editor.state.doc
    let firstLine = ''
    for (let i = 0; i < Math.min(doc.childCount, 64) && !firstLine; i++) {
      const block = doc.child(i)
      const lines = block.textBetween(0, block.content.size, '\n', '\n').split('\n')
      firstLine = lines.map((line) => line.trim()).find((line) => line !== '') ?? ''
    }
    document.title = `${firstLine ? firstLine.slice(0, 60) : docId} · collab`
  }
  fragment.observeDeep(retitle)
  void local.whenSynced.then(retitle)

  // A token that expires is renewed before it does: the API and the socket carry the
  // new one from then on, and so does the address (a reload keeps working).
  const renewed = (fresh: AccessToken): void => {
    token = fresh
    api.setToken(fresh)
    provider.params.token = fresh.raw
    const address = new URL(location.href)
    address.searchParams.set('token', fresh.raw)
    history.replaceState(history.state, '', address)
    byId<HTMLAnchorElement>('back-link').href = home()
    // The open socket was authorised with the old token, and is closed when it
    // expires: reconnect now. Yjs resyncs, so no edit is lost.
    if (provider.wsconnected || provider.wsconnecting) {
      provider.disconnect()
      provider.connect()
    }
  }
  const session = await api.session(docId).catch(() => null)
  if (token) new TokenRenewal(api, token, renewed, session?.refresh_url ?? null)
  shareable = session !== null && session.mode === 'rw' && !(session.anonymous && token === null)
  if (shareable) {
    const share = byId('share')
    share.querySelector('.share__text')!.textContent = 'Share'
    share.setAttribute('aria-label', 'Share this document')
    share.title = 'Share a link to this document'
  }
  if (session && !session.anonymous) {
    signedIn = session
    identity = { ...identity, name: session.name }
    editor.commands.updateUser(identity)
    if (session.mode === 'ro') setReadOnly('Your access lets you view this document, not change it.')
  } else if (!stored) {
    await editIdentity(true)
  }
  editor.commands.focus('end')
}

void main()
