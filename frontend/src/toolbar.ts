import type { Editor } from '@tiptap/core'

import { insertImage } from './imageTool'
import { editLink } from './linkTool'
import { TABLE_COMMANDS, inTable, insertTable } from './tables'

interface Tool {
  run: (editor: Editor) => boolean | Promise<boolean>
  active?: (editor: Editor) => boolean
  enabled?: (editor: Editor) => boolean
}

const heading = (level: 1 | 2 | 3): Tool => ({
  run: (e) => e.chain().focus().toggleHeading({ level }).run(),
  active: (e) => e.isActive('heading', { level }),
})

const tableTools = Object.fromEntries(
  Object.entries(TABLE_COMMANDS).map(([name, run]): [string, Tool] => [name, { run, enabled: inTable }]),
)

const TOOLS: Record<string, Tool> = {
  bold: { run: (e) => e.chain().focus().toggleBold().run(), active: (e) => e.isActive('bold') },
  italic: { run: (e) => e.chain().focus().toggleItalic().run(), active: (e) => e.isActive('italic') },
  strike: { run: (e) => e.chain().focus().toggleStrike().run(), active: (e) => e.isActive('strike') },
  code: { run: (e) => e.chain().focus().toggleCode().run(), active: (e) => e.isActive('code') },
  link: { run: editLink, active: (e) => e.isActive('link') },
  h1: heading(1),
  h2: heading(2),
  h3: heading(3),
  bulletList: { run: (e) => e.chain().focus().toggleBulletList().run(), active: (e) => e.isActive('bulletList') },
  orderedList: { run: (e) => e.chain().focus().toggleOrderedList().run(), active: (e) => e.isActive('orderedList') },
  taskList: { run: (e) => e.chain().focus().toggleTaskList().run(), active: (e) => e.isActive('taskList') },
  blockquote: { run: (e) => e.chain().focus().toggleBlockquote().run(), active: (e) => e.isActive('blockquote') },
  codeBlock: { run: (e) => e.chain().focus().toggleCodeBlock().run(), active: (e) => e.isActive('codeBlock') },
  image: { run: insertImage },
  table: { run: insertTable, enabled: (e) => !inTable(e) },
  ...tableTools,
  // Undo/redo come from the Collaboration extension (Yjs undo manager): they only
  // undo *your* changes, never a collaborator's.
  undo: { run: (e) => e.chain().focus().undo().run(), enabled: (e) => e.can().undo() },
  redo: { run: (e) => e.chain().focus().redo().run(), enabled: (e) => e.can().redo() },
}

const isDisabled = (button: HTMLButtonElement): boolean => button.getAttribute('aria-disabled') === 'true'

/**
 * Wires the buttons as one WAI-ARIA toolbar: a single Tab stop (roving tabindex),
 * Left/Right/Home/End between its buttons. Unavailable buttons stay focusable
 * (aria-disabled) so that the arrows always walk the same row; the table group is
 * shown only inside a table. Returns a function that refreshes their state.
 */
export const bindToolbar = (toolbar: HTMLElement, editor: Editor): (() => void) => {
  const buttons = [...toolbar.querySelectorAll<HTMLButtonElement>('button[data-command]')]
  const tableGroup = toolbar.querySelector<HTMLElement>('[data-group="table"]')
  let current = buttons[0]
  const visible = (): HTMLButtonElement[] => buttons.filter((b) => !b.closest('[hidden]'))
  const rove = (target: HTMLButtonElement): void => {
    current = target
    for (const button of buttons) button.tabIndex = button === target ? 0 : -1
  }
  const update = () => {
    if (tableGroup) tableGroup.hidden = !(editor.isEditable && inTable(editor))
    for (const button of buttons) {
      const tool = TOOLS[button.dataset.command!]
      if (!tool) continue
      const enabled = editor.isEditable && (tool.enabled ? tool.enabled(editor) : true)
      button.setAttribute('aria-disabled', String(!enabled))
      if (tool.active) button.setAttribute('aria-pressed', String(tool.active(editor)))
    }
    const shown = visible()
    if (!shown.includes(current)) rove(shown[0])
  }
  toolbar.addEventListener('click', (event) => {
    const button = (event.target as Element).closest<HTMLButtonElement>('button[data-command]')
    const tool = button && TOOLS[button.dataset.command!]
    if (!button || !tool) return
    rove(button)
    if (editor.isEditable && !isDisabled(button)) void tool.run(editor)
  })
  toolbar.addEventListener('keydown', (event) => {
    const shown = visible()
    const at = shown.indexOf(event.target as HTMLButtonElement)
    if (at < 0) return
    const next: Record<string, number> = {
      ArrowRight: (at + 1) % shown.length,
      ArrowLeft: (at - 1 + shown.length) % shown.length,
      Home: 0,
      End: shown.length - 1,
    }
    if (!(event.key in next)) return
    event.preventDefault()
    rove(shown[next[event.key]])
    current.focus()
  })
  toolbar.addEventListener('focusin', (event) => {
    const button = (event.target as Element).closest<HTMLButtonElement>('button[data-command]')
    if (button) rove(button)
  })
  // Keep keyboard focus inside the editor when a button is clicked with the mouse.
  toolbar.addEventListener('mousedown', (event) => {
    if ((event.target as Element).closest('button')) event.preventDefault()
  })
  editor.on('transaction', update)
  editor.on('focus', update)
  editor.on('update', update)
  rove(current)
  update()
  return update
}
