// A small modal form (the link and image tools): a native <dialog>, so focus stays
// inside it, Escape cancels, and focus goes back where it was when it closes.

export interface DialogField {
  name: string
  label: string
  value?: string
  type?: 'url' | 'text'
  placeholder?: string
  required?: boolean
  /** A message when the value is not acceptable, or null when it is. */
  check?: (value: string) => string | null
}

export interface DialogOptions {
  id: string
  title: string
  submit: string
  fields: DialogField[]
  /** An extra action (e.g. "Remove link"), answered as `{ action }`. */
  extra?: { action: string; label: string }
}

export type DialogAnswer = { values: Record<string, string> } | { action: string } | null

export const askForm = (options: DialogOptions): Promise<DialogAnswer> => {
  const dialog = document.createElement('dialog')
  dialog.className = 'dialog'
  dialog.id = options.id
  dialog.setAttribute('aria-labelledby', `${options.id}-title`)
  const form = document.createElement('form')
  form.className = 'dialog__form'
  form.noValidate = true
  const heading = document.createElement('h2')
  heading.className = 'dialog__title'
  heading.id = `${options.id}-title`
  heading.textContent = options.title
  form.append(heading)

  const inputs = options.fields.map((field) => {
    const label = document.createElement('label')
    label.className = 'field'
    const text = document.createElement('span')
    text.className = 'field__label'
    text.textContent = field.label
    const input = document.createElement('input')
    input.className = 'input'
    input.name = field.name
    input.type = field.type ?? 'text'
    input.value = field.value ?? ''
    input.autocomplete = 'off'
    input.spellcheck = false
    input.maxLength = 2048
    if (field.placeholder) input.placeholder = field.placeholder
    const error = document.createElement('span')
    error.className = 'field__error'
    error.id = `${options.id}-${field.name}-error`
    input.setAttribute('aria-describedby', error.id)
    input.addEventListener('input', () => {
      input.removeAttribute('aria-invalid')
      error.textContent = ''
    })
    label.append(text, input, error)
    form.append(label)
    return { field, input, error }
  })

  const actions = document.createElement('div')
  actions.className = 'dialog__actions'
  const button = (label: string, kind: 'button' | 'submit', className = 'button'): HTMLButtonElement => {
    const b = document.createElement('button')
    b.type = kind
    b.className = className
    b.textContent = label
    return b
  }
  const cancel = button('Cancel', 'button')
  const extra = options.extra ? button(options.extra.label, 'button', 'button button--danger') : null
  actions.append(...(extra ? [extra] : []), cancel, button(options.submit, 'submit', 'button button--primary'))
  form.append(actions)
  dialog.append(form)

  const returnFocus = document.activeElement instanceof HTMLElement ? document.activeElement : null
  document.body.append(dialog)
  return new Promise((resolve) => {
    let answer: DialogAnswer = null
    const finish = (value: DialogAnswer): void => {
      answer = value
      dialog.close()
    }
    dialog.addEventListener('close', () => {
      dialog.remove()
      returnFocus?.focus()
      resolve(answer)
    })
    cancel.addEventListener('click', () => finish(null))
    extra?.addEventListener('click', () => finish({ action: options.extra!.action }))
    form.addEventListener('submit', (event) => {
      event.preventDefault()
      const values: Record<string, string> = {}
      let firstBad: HTMLInputElement | null = null
      for (const { field, input, error } of inputs) {
        const value = input.value.trim()
        const problem = value === '' ? (field.required ? `${field.label} is required.` : null) : (field.check?.(value) ?? null)
        if (problem) {
          input.setAttribute('aria-invalid', 'true')
          error.textContent = problem
          firstBad ??= input
        }
        values[field.name] = value
      }
      if (firstBad) {
        firstBad.focus()
        return
      }
      finish({ values })
    })
    dialog.showModal()
    inputs[0]?.input.select()
  })
}
