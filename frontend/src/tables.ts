import type { Editor } from '@tiptap/core'

// The table tools. Those that change a table act on the one around the selection;
// the toolbar shows them only while the selection is inside a table.

export const inTable = (editor: Editor): boolean => editor.isActive('table')

export const insertTable = (editor: Editor): boolean =>
  editor.chain().focus().insertTable({ rows: 3, cols: 3, withHeaderRow: true }).run()

export const TABLE_COMMANDS: Record<string, (editor: Editor) => boolean> = {
  addRowAfter: (e) => e.chain().focus().addRowAfter().run(),
  deleteRow: (e) => e.chain().focus().deleteRow().run(),
  addColumnAfter: (e) => e.chain().focus().addColumnAfter().run(),
  deleteColumn: (e) => e.chain().focus().deleteColumn().run(),
  toggleHeaderRow: (e) => e.chain().focus().toggleHeaderRow().run(),
  deleteTable: (e) => e.chain().focus().deleteTable().run(),
}
