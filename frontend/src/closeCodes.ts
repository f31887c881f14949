// What each WebSocket close code from the server means to the person at the keyboard.
// 44xx codes are permanent: reconnecting cannot fix them, so the provider stops.
// The codes are the server's own (generated from collab/closecodes.py).

import { CloseCode } from './generated/contract'

// Not the server's: the browser's, for a socket that closed without a close frame
// (or whose upgrade was refused, which a page is not told more about).
export const WS_1006_ABNORMAL_CLOSURE = 1006

export interface CloseExplanation {
  /** Permanent: stop reconnecting and leave the message up. */
  terminal: boolean
  /** A word or two for the status pill. */
  short: string
  title: string
  detail: string
  /** The document no longer exists on the server. */
  deleted?: boolean
}

const DELETED: CloseExplanation = {
  terminal: true,
  deleted: true,
  short: 'Deleted',
  title: 'This document has been deleted',
  detail: 'It is no longer available on the server. Your copy here is read-only.',
}

const UNREADABLE: CloseExplanation = {
  terminal: false,
  short: 'Reconnecting…',
  title: 'The server could not read a message from this page',
  detail: 'Your changes are kept on this device. Reconnecting… If this keeps happening, reload the page.',
}

const EXPLANATIONS: Record<number, CloseExplanation> = {
  [CloseCode.UNAUTHORIZED]: {
    terminal: true,
    short: 'No access',
    title: 'Your access link is not valid',
    detail: 'The token is missing, invalid or has expired. Ask for a new link to this document.',
  },
  [CloseCode.FORBIDDEN]: {
    terminal: true,
    short: 'No access',
    title: 'No permission for this document',
    detail: 'Your access link does not cover this document. Ask its owner to share it with you.',
  },
  [CloseCode.DOCUMENT_DELETED]: DELETED,
  [CloseCode.GOING_AWAY]: {
    terminal: false,
    short: 'Reconnecting…',
    title: 'The server is shutting down',
    detail: 'Your changes are kept on this device and will be sent when it is back.',
  },
  [CloseCode.PROTOCOL_ERROR]: UNREADABLE,
  [CloseCode.UNSUPPORTED_DATA]: UNREADABLE,
  [CloseCode.INVALID_PAYLOAD]: UNREADABLE,
  [CloseCode.POLICY_VIOLATION]: {
    terminal: false,
    short: 'Reconnecting…',
    title: 'The server refused a message',
    detail: 'Too many changes too quickly, or a change it could not accept. Reconnecting…',
  },
  [CloseCode.MESSAGE_TOO_BIG]: {
    terminal: false,
    short: 'Reconnecting…',
    title: 'A change was too large to send',
    detail: 'The server limits the size of a single change. Try splitting large pastes. Reconnecting…',
  },
  [CloseCode.INTERNAL_ERROR]: {
    terminal: false,
    short: 'Reconnecting…',
    title: 'The server had a problem',
    detail: 'Your changes are kept on this device. Retrying…',
  },
  [CloseCode.SERVICE_RESTART]: {
    terminal: false,
    short: 'Reconnecting…',
    title: 'The server is restarting',
    detail: 'Your changes are kept on this device and will be sent when it is back.',
  },
  [CloseCode.TRY_AGAIN_LATER]: {
    terminal: false,
    short: 'Reconnecting…',
    title: 'The server is busy',
    detail: 'Your changes are kept on this device. Reconnecting shortly…',
  },
}

export const explainClose = (code: number): CloseExplanation | null => {
  const known = EXPLANATIONS[code]
  if (known) return known
  if (code >= 4400 && code < 4500) {
    return {
      terminal: true,
      short: 'Disconnected',
      title: 'The server closed this document',
      detail: `It refused the connection (code ${code}).`,
    }
  }
  return null
}

/** Answers of GET /api/documents/{id} when the socket cannot even open. The API
 * answers 404 for a deleted document as for an unknown one, and a socket opens on an
 * id never used (creating the document): so a socket that keeps failing on an id the
 * API does not know means a deleted document. */
export const explainHttpStatus = (status: number): CloseExplanation | null => {
  if (status === 401) return EXPLANATIONS[CloseCode.UNAUTHORIZED]
  if (status === 403) return EXPLANATIONS[CloseCode.FORBIDDEN]
  if (status === 404) {
    return {
      terminal: true,
      deleted: true,
      short: 'Not found',
      title: 'Document not found',
      detail: 'It does not exist or has been deleted. You can create it again from the document list.',
    }
  }
  return null
}
