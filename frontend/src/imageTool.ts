import type { Editor } from '@tiptap/core'

import { IMAGE_SCHEMES, safeUrl } from './extensions'
import { askForm } from './formDialog'

/** Inserts an image by its address, with the text that describes it. */
export const insertImage = async (editor: Editor): Promise<boolean> => {
  if (!editor.isEditable) return false
  const answer = await askForm({
    id: 'image-dialog',
    title: 'Insert an image',
    submit: 'Insert image',
    fields: [
      {
        name: 'src',
        label: 'Image address',
        type: 'url',
        placeholder: 'https://example.com/picture.png',
        required: true,
        check: (value) => (safeUrl(value, IMAGE_SCHEMES) ? null : 'Use a full address starting with http:// or https://.'),
      },
      { name: 'alt', label: 'Description (for people who cannot see it)', placeholder: 'e.g. The team at the offsite' },
    ],
  })
  if (!answer || 'action' in answer || !editor.isEditable) return false
  const { src, alt } = answer.values
  return editor.chain().focus().setImage({ src, alt: alt || undefined }).run()
}
