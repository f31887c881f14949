import type { Extensions } from '@tiptap/core'
import Image from '@tiptap/extension-image'
import { TaskItem, TaskList } from '@tiptap/extension-list'
import { Table, TableCell, TableHeader, TableRow } from '@tiptap/extension-table'
import StarterKit from '@tiptap/starter-kit'

// The document's schema: what the live editor and the history's preview both use, so
// that a preview never drops a node the live document has. The server maps the same
// nodes and attributes (collab/content/schema.py).

/** Schemes a link may point to; anything else (javascript:, data:…) is refused. */
export const LINK_SCHEMES = ['http', 'https', 'mailto']
/** Schemes an image may be loaded from. */
export const IMAGE_SCHEMES = ['http', 'https']

/** The URL as written if it is absolute with one of `schemes`, else null. */
export const safeUrl = (value: string, schemes: readonly string[]): string | null => {
  const text = value.trim()
  let parsed: URL
  try {
    parsed = new URL(text)
  } catch {
    return null
  }
  const scheme = parsed.protocol.replace(/:$/, '')
  if (!schemes.includes(scheme)) return null
  if ((scheme === 'http' || scheme === 'https') && !parsed.hostname) return null
  return text
}

// Attributes the server's schema does not keep are left out of the editor's too, so
// that nothing the editor shows is lost when the document goes through the server's
// formats (Tiptap's image has a size and its cells an alignment, which no tool here
// sets and the content API does not map).
const without = <T extends Record<string, unknown>>(attrs: T | undefined, ...names: string[]): Partial<T> =>
  Object.fromEntries(Object.entries(attrs ?? {}).filter(([name]) => !names.includes(name))) as Partial<T>

const Cell = TableCell.extend({ addAttributes() { return without(this.parent?.(), 'align') } })
const Header = TableHeader.extend({ addAttributes() { return without(this.parent?.(), 'align') } })
const SimpleImage = Image.extend({ addAttributes() { return without(this.parent?.(), 'width', 'height') } })

export const documentExtensions = (): Extensions => [
  // Undo is the Yjs one (Collaboration). The trailing-node plugin is off because every
  // peer would append its own empty paragraph at the same moment.
  StarterKit.configure({
    undoRedo: false,
    trailingNode: false,
    link: {
      openOnClick: false,
      isAllowedUri: (url) => safeUrl(url, LINK_SCHEMES) !== null,
    },
  }),
  TaskList,
  TaskItem.configure({
    nested: true,
    // The task's own first line, not the text of the tasks nested in it.
    a11y: { checkboxLabel: (node) => `Done: ${node.firstChild?.textContent || 'empty task'}` },
  }),
  // Column resizing writes colwidth on every drag step; a fixed layout keeps the
  // document's changes to what people type.
  Table.configure({ resizable: false }),
  TableRow,
  Header,
  Cell,
  SimpleImage.configure({ inline: false, allowBase64: false }),
]
