export interface BannerAction {
  label: string
  run: () => void
  primary?: boolean
}

export type BannerTone = 'error' | 'warning' | 'info'

/** The one message strip under the header; a newer message replaces the older. */
export class Banner {
  private readonly root: HTMLElement

  constructor(root: HTMLElement) {
    this.root = root
  }

  show(tone: BannerTone, title: string, detail: string, actions: BannerAction[] = []): void {
    // The same message again (a retry that failed like the last one) is left alone:
    // rebuilt, a role=alert would be announced again.
    const key = JSON.stringify([tone, title, detail, actions.map((action) => action.label)])
    if (!this.root.hidden && this.root.dataset.message === key) return
    this.root.dataset.message = key
    const heading = document.createElement('strong')
    heading.className = 'banner__title'
    heading.textContent = title
    const text = document.createElement('span')
    text.className = 'banner__detail'
    text.textContent = detail
    const body = document.createElement('div')
    body.className = 'banner__body'
    body.append(heading, text)
    const buttons = actions.map((action) => {
      const button = document.createElement('button')
      button.type = 'button'
      button.className = action.primary ? 'button button--primary' : 'button'
      button.textContent = action.label
      button.addEventListener('click', action.run)
      return button
    })
    const actionBox = document.createElement('div')
    actionBox.className = 'banner__actions'
    actionBox.append(...buttons)
    this.root.dataset.tone = tone
    this.root.replaceChildren(body, actionBox)
    this.root.hidden = false
  }

  hide(): void {
    this.root.hidden = true
    this.root.replaceChildren()
  }
}
