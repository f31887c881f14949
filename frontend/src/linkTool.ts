import { Extension, type Editor } from '@tiptap/core'

import { LINK_SCHEMES, safeUrl } from './extensions'
import { askForm } from './formDialog'

const BAD_LINK = 'Use a full address starting with http://, https:// or mailto:.'

/** Sets, changes or removes the link at the selection, asking for its address. */
export const editLink = async (editor: Editor): Promise<boolean> => {
  if (!editor.isEditable) return false
  const current = (editor.getAttributes('link').href as string | undefined) ?? ''
  const answer = await askForm({
    id: 'link-dialog',
    title: current ? 'Edit link' : 'Add a link',
    submit: current ? 'Update link' : 'Add link',
    fields: [
      {
        name: 'href',
        label: 'Address',
        type: 'url',
        value: current,
        placeholder: 'https://example.com',
        required: true,
        check: (value) => (safeUrl(value, LINK_SCHEMES) ? null : BAD_LINK),
      },
    ],
    extra: current ? { action: 'remove', label: 'Remove link' } : undefined,
  })
  if (!answer || !editor.isEditable) return false
  // The change covers the whole link; the user's own selection comes back after it.
  const { from, to, empty } = editor.state.selection
  const chain = editor.chain().focus().extendMarkRange('link')
  if ('action' in answer) return chain.unsetLink().setTextSelection({ from, to }).run()
  const href = answer.values.href
  if (empty && !current) {
    // Nothing selected: the address becomes the link's text.
    return chain.insertContent({ type: 'text', text: href, marks: [{ type: 'link', attrs: { href } }] }).run()
  }
  return chain.setLink({ href }).setTextSelection({ from, to }).run()
}

/** Mod-K opens the link dialog, as in most editors. */
export const LinkShortcut = Extension.create({
  name: 'linkShortcut',
  addKeyboardShortcuts() {
    return {
      'Mod-k': () => {
        void editLink(this.editor)
        return true
      },
    }
  },
})
