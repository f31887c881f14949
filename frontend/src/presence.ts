import type { Awareness } from 'y-protocols/awareness'
import { initials } from './identity'

interface Person {
  clientId: number
  name: string
  color: string
  self: boolean
}

const MAX_SHOWN = 5

const luminance = (hex: string): number => {
  const [r, g, b] = [1, 3, 5].map((at) => {
    const c = parseInt(hex.slice(at, at + 2), 16) / 255
    return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4
  })
  return 0.2126 * r + 0.7152 * g + 0.0722 * b
}

/** White or near-black, whichever reads better on a collaborator's colour (any
 * colour can come from another client). */
const textOn = (color: string): string => {
  if (!/^#[0-9a-f]{6}$/i.test(color)) return '#fff'
  const background = luminance(color)
  return 1.05 / (background + 0.05) >= (background + 0.05) / 0.066 ? '#fff' : '#1c2230'
}

/**
 * Keeps the "who is here" avatar list in step with the awareness states; the
 * local user comes first and is a button that reopens the name dialog.
 */
export const watchPresence = (awareness: Awareness, list: HTMLElement, onEditSelf: () => void): void => {
  let rendered = ''
  const render = () => {
    // One face per person: the same name and colour in several tabs is one person.
    const byPerson = new Map<string, Person>()
    for (const [clientId, state] of awareness.getStates()) {
      const user = (state as { user?: { name?: unknown; color?: unknown } }).user
      if (typeof user?.name !== 'string') continue
      const person: Person = {
        clientId,
        name: user.name,
        color: typeof user.color === 'string' ? user.color : '#6b7280',
        self: clientId === awareness.clientID,
      }
      const key = `${person.name}\u0000${person.color}`
      if (!byPerson.get(key)?.self) byPerson.set(key, person)
    }
    const people = [...byPerson.values()]
    people.sort((a, b) => Number(b.self) - Number(a.self) || a.name.localeCompare(b.name))

    // Awareness changes on every caret move; rebuild only when the people change,
    // so that a click on an avatar is not lost to a re-render.
    const signature = JSON.stringify(people.map((p) => [p.name, p.color, p.self]))
    if (signature === rendered) return
    rendered = signature

    const shown = people.slice(0, MAX_SHOWN)
    const hidden = people.slice(MAX_SHOWN)
    const items = shown.map((person) => {
      const item = document.createElement('li')
      const avatar = document.createElement(person.self ? 'button' : 'span')
      avatar.className = 'avatar'
      avatar.style.setProperty('--avatar', person.color)
      avatar.style.setProperty('--avatar-text', textOn(person.color))
      avatar.dataset.name = person.name
      const description = person.self ? `${person.name} (you) — edit name and colour` : person.name
      avatar.title = description
      if (avatar instanceof HTMLButtonElement) {
        // The button is named by its words, its visible initials are left out.
        const face = document.createElement('span')
        face.setAttribute('aria-hidden', 'true')
        face.textContent = initials(person.name)
        const name = document.createElement('span')
        name.className = 'visually-hidden'
        name.textContent = description
        avatar.append(face, name)
        avatar.type = 'button'
        avatar.classList.add('avatar--self')
        avatar.addEventListener('click', onEditSelf)
      } else {
        avatar.textContent = initials(person.name)
        avatar.setAttribute('role', 'img')
        avatar.setAttribute('aria-label', description)
      }
      item.append(avatar)
      return item
    })
    if (hidden.length > 0) {
      const item = document.createElement('li')
      const more = document.createElement('span')
      more.className = 'avatar avatar--more'
      more.textContent = `+${hidden.length}`
      more.title = hidden.map((p) => p.name).join(', ')
      item.append(more)
      items.push(item)
    }
    list.replaceChildren(...items)
    const others = people.filter((p) => !p.self).length
    list.setAttribute('aria-label', others === 0 ? 'Only you are here' : `${others + 1} people here`)
  }
  awareness.on('change', render)
  render()
}
