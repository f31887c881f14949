// What each WebSocket close code from the server means to the person at the keyboard.
// 44xx codes are permanent: reconnecting cannot fix them, so the provider stops.

export const WS_1006_ABNORMAL_CLOSURE = 1006
export const WS_1008_POLICY_VIOLATION = 1008
export const WS_1009_MESSAGE_TOO_BIG = 1009
export const WS_1011_INTERNAL_ERROR = 1011
export const WS_1012_SERVICE_RESTART = 1012
export const WS_1013_TRY_AGAIN_LATER = 1013
export const WS_4401_UNAUTHORIZED = 4401
export const WS_4403_FORBIDDEN = 4403
export const WS_4404_NOT_FOUND = 4404
export const WS_4410_GONE = 4410

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

const EXPLANATIONS: Record<number, CloseExplanation> = {
  [WS_4401_UNAUTHORIZED]: {
    terminal: true,
    short: 'No access',
    title: 'Your access link is not valid',
    detail: 'The token is missing, invalid or has expired. Ask for a new link to this document.',
  },
  [WS_4403_FORBIDDEN]: {
    terminal: true,
    short: 'No access',
    title: 'No permission for this document',
    detail: 'Your access link does not cover this document. Ask its owner to share it with you.',
  },
  [WS_4404_NOT_FOUND]: DELETED,
  [WS_4410_GONE]: DELETED,
  [WS_1008_POLICY_VIOLATION]: {
    terminal: false,
    short: 'Reconnecting…',
    title: 'The server refused a message',
    detail: 'Too many changes too quickly, or a change it could not accept. Reconnecting…',
  },
  [WS_1009_MESSAGE_TOO_BIG]: {
    terminal: false,
    short: 'Reconnecting…',
    title: 'A change was too large to send',
    detail: 'The server limits the size of a single change. Try splitting large pastes. Reconnecting…',
  },
  [WS_1011_INTERNAL_ERROR]: {
    terminal: false,
    short: 'Reconnecting…',
    title: 'The server had a problem',
    detail: 'Your changes are kept on this device. Retrying…',
  },
  [WS_1012_SERVICE_RESTART]: {
    terminal: false,
    short: 'Reconnecting…',
    title: 'The server is restarting',
    detail: 'Your changes are kept on this device and will be sent when it is back.',
  },
  [WS_1013_TRY_AGAIN_LATER]: {
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

/** Answers of GET /api/documents/{id} when the socket cannot even open. */
export const explainHttpStatus = (status: number): CloseExplanation | null => {
  if (status === 401) return EXPLANATIONS[WS_4401_UNAUTHORIZED]
  if (status === 403) return EXPLANATIONS[WS_4403_FORBIDDEN]
  if (status === 410) return DELETED
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
