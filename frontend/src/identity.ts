// Who "I" am to other people in a document: a name and a colour, kept in
// localStorage so they are asked for once per browser.

export interface Identity {
  name: string
  color: string
}

// Readable on white as a caret, and dark enough behind white initials (≥ 4:1).
export const COLORS = [
  '#d23f3f', '#b4520f', '#7f6500', '#277a3c', '#12806f',
  '#2a74c0', '#5360d8', '#8447c9', '#c03d8f', '#5f6673',
] as const

const STORAGE_KEY = 'collab.identity'

export const loadIdentity = (): Identity | null => {
  try {
    const stored: unknown = JSON.parse(localStorage.getItem(STORAGE_KEY) ?? 'null')
    if (typeof stored !== 'object' || stored === null) return null
    const { name, color } = stored as Record<string, unknown>
    if (typeof name !== 'string' || name.trim() === '') return null
    return { name, color: isColor(color) ? color : randomColor() }
  } catch {
    return null
  }
}

export const saveIdentity = (identity: Identity): void => {
  try {
    localStorage.setItem(STORAGE_KEY, JSON.stringify(identity))
  } catch {
    // Private mode or a full quota: the name still works for this visit.
  }
}

export const randomColor = (): string => COLORS[Math.floor(Math.random() * COLORS.length)]

const isColor = (value: unknown): value is string =>
  typeof value === 'string' && /^#[0-9a-fA-F]{6}$/.test(value)

export const initials = (name: string): string => {
  const words = name.trim().split(/\s+/).filter(Boolean)
  if (words.length === 0) return '?'
  const letters = words.length === 1 ? [...words[0]].slice(0, 2) : [[...words[0]][0], [...words.at(-1)!][0]]
  return letters.join('').toUpperCase()
}

/**
 * Shows the "your name" dialog (a native <dialog>) and resolves with the chosen
 * identity, or null if it was dismissed. `required` hides the cancel button for
 * the first visit.
 */
export const askIdentity = (dialog: HTMLDialogElement, current: Identity, required: boolean): Promise<Identity | null> => {
  const form = dialog.querySelector('form')!
  const nameInput = form.elements.namedItem('name') as HTMLInputElement
  const swatches = dialog.querySelector<HTMLElement>('.swatches')!
  const cancel = dialog.querySelector<HTMLButtonElement>('[data-action="cancel"]')!
  cancel.hidden = required

  swatches.replaceChildren(
    ...COLORS.map((color, index) => {
      const label = document.createElement('label')
      label.className = 'swatch'
      label.style.setProperty('--swatch', color)
      const input = document.createElement('input')
      input.type = 'radio'
      input.name = 'color'
      input.value = color
      input.checked = color === current.color || (index === 0 && !COLORS.includes(current.color as never))
      input.setAttribute('aria-label', `Colour ${index + 1}`)
      label.append(input)
      return label
    }),
  )
  nameInput.value = required ? '' : current.name

  return new Promise((resolve) => {
    let chosen: Identity | null = null
    const finish = (identity: Identity | null) => {
      chosen = identity
      dialog.close()
    }
    const onClose = () => {
      form.removeEventListener('submit', onSubmit)
      cancel.removeEventListener('click', onCancel)
      dialog.removeEventListener('cancel', onEscape)
      dialog.removeEventListener('close', onClose)
      resolve(chosen)
    }
    const onSubmit = (event: SubmitEvent) => {
      event.preventDefault()
      const name = nameInput.value.trim().slice(0, 40)
      if (name === '') {
        nameInput.focus()
        return
      }
      const checked = form.querySelector<HTMLInputElement>('input[name="color"]:checked')
      finish({ name, color: checked?.value ?? current.color })
    }
    const onCancel = () => finish(null)
    // A first-time visitor is asked to pick a name; if they insist on leaving
    // (browsers let a second Escape through) they stay "Anonymous" for this visit.
    const onEscape = (event: Event) => {
      if (required) event.preventDefault()
    }
    dialog.addEventListener('close', onClose)
    form.addEventListener('submit', onSubmit)
    cancel.addEventListener('click', onCancel)
    dialog.addEventListener('cancel', onEscape)
    dialog.showModal()
    nameInput.focus()
  })
}
