import './styles/base.css'
import './styles/list.css'

import { Api, ApiError, type DocumentInfo } from './api'
import { Banner } from './banner'
import { editorPath, isValidDocId } from './docId'
import { absoluteTime, formatBytes, relativeTime } from './format'
import { linkWithToken, tokenFromLocation } from './token'

const byId = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T

const token = tokenFromLocation()
const api = new Api(token)
const listRoot = byId('doc-list')
const count = byId('doc-count')
const listError = new Banner(byId('list-error'))
const createForm = byId<HTMLFormElement>('create-form')
const createInput = byId<HTMLInputElement>('create-id')
const createButton = byId<HTMLButtonElement>('create-button')
const createMessage = byId('create-message')
const openForm = byId<HTMLFormElement>('open-form')
const openInput = byId<HTMLInputElement>('open-id')
const searchInput = byId<HTMLInputElement>('doc-search')
const searchResult = byId('doc-search-result')

const INVALID_ID = 'Use 1–128 letters, digits, “.”, “_”, “~” or “-”, not starting with “.”.'

const openDocument = (id: string): void => location.assign(linkWithToken(editorPath(id), token))

const icon = (path: string): SVGSVGElement => {
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg')
  svg.setAttribute('viewBox', '0 0 20 20')
  svg.setAttribute('aria-hidden', 'true')
  const p = document.createElementNS('http://www.w3.org/2000/svg', 'path')
  p.setAttribute('d', path)
  svg.append(p)
  return svg
}

const TRASH = 'M4 6h12M8 6V4.5h4V6M6 6l.7 9.5a1 1 0 0 0 1 .9h4.6a1 1 0 0 0 1-.9L14 6M8.5 9v4.5M11.5 9v4.5'

const renderRow = (doc: DocumentInfo): HTMLLIElement => {
  const title = doc.title || doc.id
  const row = document.createElement('li')
  row.className = 'doc-row'
  row.dataset.id = doc.id

  const link = document.createElement('a')
  link.className = 'doc-row__link'
  link.href = linkWithToken(editorPath(doc.id), token)
  const glyph = document.createElement('span')
  glyph.className = 'doc-icon'
  glyph.setAttribute('aria-hidden', 'true')
  const text = document.createElement('span')
  text.className = 'doc-row__text'
  const name = document.createElement('span')
  name.className = 'doc-row__title'
  name.textContent = title
  text.append(name)
  if (title !== doc.id) {
    const id = document.createElement('span')
    id.className = 'doc-row__id'
    id.textContent = doc.id
    text.append(id)
  }
  link.append(glyph, text)

  const meta = document.createElement('span')
  meta.className = 'doc-row__meta'
  const edited = document.createElement('time')
  const neverEdited = doc.size_bytes === 0 && doc.updated_at === doc.created_at
  edited.dateTime = doc.updated_at
  edited.title = `${neverEdited ? 'Created' : 'Last edited'} ${absoluteTime(doc.updated_at)}`
  edited.textContent = `${neverEdited ? 'Created' : 'Edited'} ${relativeTime(doc.updated_at)}`
  const size = document.createElement('span')
  size.className = 'doc-row__size'
  size.textContent = formatBytes(doc.size_bytes)
  meta.append(edited, size)

  const remove = document.createElement('button')
  remove.type = 'button'
  remove.className = 'icon-button icon-button--danger'
  remove.setAttribute('aria-label', `Delete ${title}`)
  remove.title = 'Delete'
  remove.append(icon(TRASH))
  remove.addEventListener('click', () => void deleteDocument(doc, title, row))

  row.append(link, meta, remove)
  return row
}

const showEmpty = (message: string): void => {
  const empty = document.createElement('p')
  empty.className = 'empty'
  empty.textContent = message
  listRoot.replaceChildren(empty)
}

let loaded: DocumentInfo[] = []
let nextOffset: number | null = null

const newestFirst = (a: DocumentInfo, b: DocumentInfo): number => Date.parse(b.updated_at) - Date.parse(a.updated_at)

/** The loaded documents whose title or id contains every word of the filter. */
const matching = (query: string): DocumentInfo[] => {
  const words = query.toLocaleLowerCase().split(/\s+/).filter(Boolean)
  if (words.length === 0) return loaded
  return loaded.filter((doc) => {
    const haystack = `${doc.title}\n${doc.id}`.toLocaleLowerCase()
    return words.every((word) => haystack.includes(word))
  })
}

const render = (): void => {
  const more = nextOffset === null ? '' : '+'
  count.textContent = loaded.length === 1 ? '1 document' : `${loaded.length}${more} documents`
  if (loaded.length === 0) {
    searchResult.textContent = ''
    showEmpty('No documents yet. Create one to get started.')
    return
  }
  const query = searchInput.value.trim()
  const shown = matching(query)
  searchResult.textContent = query ? `${shown.length} of ${loaded.length} documents match` : ''
  const children: HTMLElement[] = []
  if (shown.length === 0) {
    const empty = document.createElement('p')
    empty.className = 'empty'
    empty.textContent = `No documents match “${query}”.`
    children.push(empty)
  } else {
    const list = document.createElement('ul')
    list.className = 'doc-rows'
    list.append(...[...shown].sort(newestFirst).map(renderRow))
    children.push(list)
  }
  if (nextOffset !== null) {
    const button = document.createElement('button')
    button.type = 'button'
    button.className = 'button load-more'
    button.textContent = 'Show more'
    button.addEventListener('click', () => void loadDocuments(true))
    children.push(button)
  }
  listRoot.replaceChildren(...children)
}

/** Loads the first page again, or (`more`) appends the next one. */
const loadDocuments = async (more = false): Promise<void> => {
  listRoot.setAttribute('aria-busy', 'true')
  try {
    const page = await api.listDocuments(more ? (nextOffset ?? 0) : 0)
    const seen = new Set(page.documents.map((d) => d.id))
    loaded = more ? [...loaded.filter((d) => !seen.has(d.id)), ...page.documents] : page.documents
    nextOffset = page.nextOffset
    listError.hide()
    render()
  } catch (error) {
    if (!more) {
      loaded = []
      count.textContent = ''
      showEmpty('The document list is not available right now. You can still open a document by its name below.')
    }
    listError.show('warning', 'Couldn’t load your documents', describe(error), [
      { label: 'Try again', run: () => void loadDocuments(more) },
    ])
  } finally {
    listRoot.setAttribute('aria-busy', 'false')
  }
}

const deleteDocument = async (doc: DocumentInfo, title: string, row: HTMLElement): Promise<void> => {
  const sure = confirm(`Delete “${title}”?\n\nEveryone editing it is disconnected, and it cannot be opened again unless it is re-created.`)
  if (!sure) return
  row.classList.add('is-busy')
  try {
    await api.deleteDocument(doc.id)
    await loadDocuments()
  } catch (error) {
    row.classList.remove('is-busy')
    listError.show('error', `Couldn’t delete “${title}”`, describe(error))
  }
}

const describe = (error: unknown): string =>
  error instanceof ApiError ? error.message : 'Something went wrong. Please try again.'

const setCreateMessage = (
  text: string,
  tone: 'neutral' | 'error' = 'neutral',
  action?: { label: string; run: () => void },
): void => {
  createMessage.dataset.tone = tone
  createMessage.replaceChildren(text)
  if (action) {
    const button = document.createElement('button')
    button.type = 'button'
    button.className = 'link-button'
    button.textContent = action.label
    button.addEventListener('click', action.run)
    createMessage.append(' ', button)
  }
}

createForm.addEventListener('submit', async (event) => {
  event.preventDefault()
  const id = createInput.value.trim()
  if (id !== '' && !isValidDocId(id)) {
    createInput.setAttribute('aria-invalid', 'true')
    setCreateMessage(INVALID_ID, 'error')
    createInput.focus()
    return
  }
  createInput.removeAttribute('aria-invalid')
  createButton.disabled = true
  setCreateMessage('Creating…')
  try {
    const created = await api.createDocument(id || undefined)
    openDocument(created.id)
  } catch (error) {
    createButton.disabled = false
    if (error instanceof ApiError && error.status === 409) {
      setCreateMessage(`A document named “${id}” already exists.`, 'neutral', {
        label: 'Open it',
        run: () => openDocument(id),
      })
    } else {
      setCreateMessage(`Couldn’t create the document. ${describe(error)}`, 'error')
    }
  }
})

createInput.addEventListener('input', () => {
  createInput.removeAttribute('aria-invalid')
  setCreateMessage('')
})

openForm.addEventListener('submit', (event) => {
  event.preventDefault()
  const id = openInput.value.trim()
  if (!isValidDocId(id)) {
    openInput.setAttribute('aria-invalid', 'true')
    openInput.setCustomValidity(INVALID_ID)
    openInput.reportValidity()
    return
  }
  openDocument(id)
})

openInput.addEventListener('input', () => {
  openInput.removeAttribute('aria-invalid')
  openInput.setCustomValidity('')
})

searchInput.addEventListener('input', render)
searchInput.addEventListener('keydown', (event) => {
  if (event.key === 'Escape' && searchInput.value) {
    event.preventDefault()
    searchInput.value = ''
    render()
  }
})

void loadDocuments()
// Keep "edited 5 minutes ago" honest when the tab is left open.
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible') void loadDocuments()
})
