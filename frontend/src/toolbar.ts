import type { Editor } from '@tiptap/core'

interface Tool {
  run: (editor: Editor) => boolean
  active?: (editor: Editor) => boolean
  enabled?: (editor: Editor) => boolean
}

const heading = (level: 1 | 2 | 3): Tool => ({
  run: (e) => e.chain().focus().toggleHeading({ level }).run(),
  active: (e) => e.isActive('heading', { level }),
})

const TOOLS: Record<string, Tool> = {
  bold: { run: (e) => e.chain().focus().toggleBold().run(), active: (e) => e.isActive('bold') },
  italic: { run: (e) => e.chain().focus().toggleItalic().run(), active: (e) => e.isActive('italic') },
  strike: { run: (e) => e.chain().focus().toggleStrike().run(), active: (e) => e.isActive('strike') },
  code: { run: (e) => e.chain().focus().toggleCode().run(), active: (e) => e.isActive('code') },
  h1: heading(1),
  h2: heading(2),
  h3: heading(3),
  bulletList: { run: (e) => e.chain().focus().toggleBulletList().run(), active: (e) => e.isActive('bulletList') },
  orderedList: { run: (e) => e.chain().focus().toggleOrderedList().run(), active: (e) => e.isActive('orderedList') },
  blockquote: { run: (e) => e.chain().focus().toggleBlockquote().run(), active: (e) => e.isActive('blockquote') },
  codeBlock: { run: (e) => e.chain().focus().toggleCodeBlock().run(), active: (e) => e.isActive('codeBlock') },
  // Undo/redo come from the Collaboration extension (Yjs undo manager): they only
  // undo *your* changes, never a collaborator's.
  undo: { run: (e) => e.chain().focus().undo().run(), enabled: (e) => e.can().undo() },
  redo: { run: (e) => e.chain().focus().redo().run(), enabled: (e) => e.can().redo() },
}

/** Wires the buttons; returns a function that refreshes their state. */
export const bindToolbar = (toolbar: HTMLElement, editor: Editor): (() => void) => {
  const buttons = [...toolbar.querySelectorAll<HTMLButtonElement>('button[data-command]')]
  const update = () => {
    for (const button of buttons) {
      const tool = TOOLS[button.dataset.command!]
      if (!tool) continue
      button.disabled = !editor.isEditable || (tool.enabled ? !tool.enabled(editor) : false)
      if (tool.active) button.setAttribute('aria-pressed', String(tool.active(editor)))
    }
  }
  toolbar.addEventListener('click', (event) => {
    const button = (event.target as Element).closest<HTMLButtonElement>('button[data-command]')
    const tool = button && TOOLS[button.dataset.command!]
    if (tool && editor.isEditable) tool.run(editor)
  })
  // Keep keyboard focus inside the editor when a button is clicked with the mouse.
  toolbar.addEventListener('mousedown', (event) => {
    if ((event.target as Element).closest('button')) event.preventDefault()
  })
  editor.on('transaction', update)
  editor.on('focus', update)
  editor.on('update', update)
  update()
  return update
}
