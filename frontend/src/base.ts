// Where collab is served: '' at the site's root, '/collab' when a host application
// mounts it there. The server names it in every page it serves; the Vite dev server
// serves collab at the root.
const meta = document.querySelector<HTMLMetaElement>('meta[name="collab-base"]')

export const base: string = (meta?.content ?? '').replace(/\/+$/, '')

/** A path of collab's (`/api/…`, `/d/…`, `/`) as the browser must ask for it. */
export const url = (path: string): string => `${base}${path}`

/** The sync socket's address for the stock y-websocket provider. */
export const socketUrl = (): string =>
  `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}${url('/ws')}`
