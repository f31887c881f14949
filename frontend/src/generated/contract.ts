// Generated from collab/closecodes.py and collab/docid.py by
// frontend/scripts/contract.py (run by `npm run build`): do not edit.

/** The WebSocket close codes the server sends, by name. */
export const CloseCode = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  PROTOCOL_ERROR: 1002,
  UNSUPPORTED_DATA: 1003,
  INVALID_PAYLOAD: 1007,
  POLICY_VIOLATION: 1008,
  MESSAGE_TOO_BIG: 1009,
  INTERNAL_ERROR: 1011,
  SERVICE_RESTART: 1012,
  TRY_AGAIN_LATER: 1013,
  UNAUTHORIZED: 4401,
  FORBIDDEN: 4403,
  DOCUMENT_DELETED: 4410,
} as const

/** A valid document id, whole. */
export const DOC_ID = new RegExp("^(?:[A-Za-z0-9_~\\-][A-Za-z0-9._~\\-]{0,127})$")

export const DOC_ID_RULE = "document ids are 1-128 characters from A-Z a-z 0-9 . _ ~ -, not starting with '.'"
