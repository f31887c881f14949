// Export: the document as Markdown or HTML, rendered by the server's content API and
// downloaded under the document's title, and print (or "Save as PDF") through the
// browser, with a print stylesheet that keeps only the document (styles/print.css).

import type { Api, ExportFormat } from './api'
import type { Banner } from './banner'

const EXTENSIONS: Record<ExportFormat, string> = { markdown: 'md', html: 'html' }
const TYPES: Record<ExportFormat, string> = { markdown: 'text/markdown', html: 'text/html' }

/** A file name from a title: no path separators or characters systems refuse. */
export const fileName = (title: string, format: ExportFormat): string => {
  const base = title.replace(/[\\/:*?"<>|\u0000-\u001f]+/g, ' ').replace(/\s+/g, ' ').trim().slice(0, 80)
  return `${base || 'document'}.${EXTENSIONS[format]}`
}

const escapeHtml = (text: string): string =>
  text.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!)

// The content API gives the document's body; a file to open on its own needs a page.
const htmlPage = (title: string, body: string): string =>
  `<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>${escapeHtml(title)}</title>\n</head>\n<body>\n${body}\n</body>\n</html>\n`

export interface ExportOptions {
  api: Api
  docId: string
  banner: Banner
  /** The menu's button (aria-expanded) and the menu it shows. */
  toggle: HTMLButtonElement
  menu: HTMLElement
  /** The document's title, as the tab shows it. */
  title: () => string
}

export const bindExport = ({ api, docId, banner, toggle, menu, title }: ExportOptions): void => {
  const open = (shown: boolean): void => {
    menu.hidden = !shown
    toggle.setAttribute('aria-expanded', String(shown))
    if (shown) menu.querySelector<HTMLButtonElement>('button')?.focus()
  }
  toggle.addEventListener('click', () => open(menu.hidden === true))
  menu.addEventListener('keydown', (event) => {
    if (event.key !== 'Escape') return
    open(false)
    toggle.focus()
  })
  document.addEventListener('click', (event) => {
    const target = event.target as Node
    if (!menu.hidden && !menu.contains(target) && !toggle.contains(target)) open(false)
  })

  const download = async (format: ExportFormat): Promise<void> => {
    const name = title()
    try {
      const body = await api.content(docId, format)
      const text = format === 'html' ? htmlPage(name || docId, body) : body
      const link = document.createElement('a')
      link.href = URL.createObjectURL(new Blob([text], { type: `${TYPES[format]};charset=utf-8` }))
      link.download = fileName(name || docId, format)
      link.click()
      setTimeout(() => URL.revokeObjectURL(link.href), 10_000)
    } catch (error) {
      banner.show('error', 'The export failed', error instanceof Error ? error.message : String(error))
    }
  }
  menu.addEventListener('click', (event) => {
    const item = (event.target as Element).closest<HTMLButtonElement>('button[data-export]')
    if (!item) return
    open(false)
    toggle.focus()
    const kind = item.dataset.export
    if (kind === 'print') window.print()
    else if (kind === 'markdown' || kind === 'html') void download(kind)
  })
}
