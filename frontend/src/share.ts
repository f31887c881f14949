// Sharing. With access tokens, the Share button opens a dialog that makes a link for
// someone else: view or edit, for a chosen time (POST /api/documents/{id}/share; the
// server never grants more than this user has, nor for longer). Without tokens (an
// open server, or one that signs none), it copies the page's address: whoever opens
// it brings their own access.

import { ApiError, type Api } from './api'

export interface ShareOptions {
  api: Api
  docId: string
  button: HTMLButtonElement
  dialog: HTMLDialogElement
  /** Live feedback for screen readers. */
  feedback: HTMLElement
  /** Whether this user may make links: signed in with a token that can write. */
  canShare: () => boolean
}

const plainAddress = (): string => `${location.origin}${location.pathname}`

const copy = async (text: string): Promise<boolean> => {
  try {
    await navigator.clipboard.writeText(text)
    return true
  } catch {
    return false // No clipboard access (an insecure origin, or permission refused).
  }
}

const expiry = (at: number): string =>
  new Date(at * 1000).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' })

export const bindShare = ({ api, docId, button, dialog, feedback, canShare }: ShareOptions): void => {
  const form = dialog.querySelector('form')!
  const result = dialog.querySelector<HTMLElement>('.share__result')!
  const linkField = dialog.querySelector<HTMLInputElement>('input[name="link"]')!
  const meta = dialog.querySelector<HTMLElement>('.share__meta')!
  const error = dialog.querySelector<HTMLElement>('.share__error')!
  const create = dialog.querySelector<HTMLButtonElement>('[data-action="create"]')!
  const copyButton = dialog.querySelector<HTMLButtonElement>('[data-action="copy"]')!
  const label = button.querySelector('.share__text')!

  const announce = (text: string): void => {
    feedback.textContent = text
    setTimeout(() => (feedback.textContent = ''), 2000)
  }
  const reset = (): void => {
    result.hidden = true
    error.hidden = true
    copyButton.hidden = true
    create.hidden = false
  }
  const show = (link: string, detail: string): void => {
    linkField.value = link
    meta.textContent = detail
    result.hidden = false
    copyButton.hidden = false
    linkField.select()
    void copy(link).then((copied) => copied && announce('Link copied to the clipboard'))
  }

  // Copying the plain address, as before tokens: the button's own feedback.
  const copyAddress = async (): Promise<void> => {
    const address = plainAddress()
    if (await copy(address)) {
      label.textContent = 'Copied!'
      announce('Link copied to the clipboard')
      setTimeout(() => (label.textContent = 'Copy link'), 2000)
    } else {
      prompt('Copy this link to share the document:', address)
    }
  }

  button.addEventListener('click', () => {
    if (!canShare()) {
      void copyAddress()
      return
    }
    reset()
    dialog.showModal()
  })
  form.addEventListener('change', reset)
  dialog.querySelector('[data-action="close"]')!.addEventListener('click', () => dialog.close())
  copyButton.addEventListener('click', () => {
    void copy(linkField.value).then((copied) => {
      if (copied) announce('Link copied to the clipboard')
      else linkField.select()
    })
  })
  form.addEventListener('submit', (event) => {
    event.preventDefault()
    const data = new FormData(form)
    const mode = data.get('mode') === 'rw' ? 'rw' : 'ro'
    const ttl = Number(data.get('ttl')) || undefined
    create.disabled = true
    error.hidden = true
    api
      .share(docId, mode, ttl)
      .then((link) => {
        create.hidden = true
        const access = link.mode === 'rw' ? 'Can edit' : 'Can view'
        show(link.url, `${access} · expires ${expiry(link.expires_at)}`)
      })
      .catch((failure: unknown) => {
        if (failure instanceof ApiError && failure.status === 409) {
          // The server signs no tokens: the address is all there is to share.
          create.hidden = true
          show(plainAddress(), 'This server makes no access links: whoever opens this address needs their own access.')
          return
        }
        error.textContent = failure instanceof Error ? failure.message : String(failure)
        error.hidden = false
      })
      .finally(() => (create.disabled = false))
  })
}
