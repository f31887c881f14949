"""WebSocket close codes collab uses, by name (RFC 6455 and collab's own 44xx)."""

from enum import IntEnum


class CloseCode(IntEnum):
    NORMAL = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    INVALID_PAYLOAD = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    # collab's application codes: the client should not reconnect on its own.
    UNAUTHORIZED = 4401
    FORBIDDEN = 4403
    DOCUMENT_DELETED = 4410


REASONS: dict[CloseCode, str] = {
    CloseCode.NORMAL: "closed",
    CloseCode.GOING_AWAY: "going away",
    CloseCode.PROTOCOL_ERROR: "protocol error",
    CloseCode.UNSUPPORTED_DATA: "unsupported message",
    CloseCode.INVALID_PAYLOAD: "malformed message",
    CloseCode.POLICY_VIOLATION: "policy violation",
    CloseCode.MESSAGE_TOO_BIG: "message too big",
    CloseCode.INTERNAL_ERROR: "server error",
    CloseCode.SERVICE_RESTART: "server restarting",
    CloseCode.TRY_AGAIN_LATER: "too slow: send queue full",
    CloseCode.UNAUTHORIZED: "token missing, invalid or expired",
    CloseCode.FORBIDDEN: "no permission for this document",
    CloseCode.DOCUMENT_DELETED: "document deleted",
}


_CLOSE_REASONS: dict[int, str] = {
    CloseCode.GOING_AWAY: "connection_lost",
    CloseCode.PROTOCOL_ERROR: "malformed",
    CloseCode.TRY_AGAIN_LATER: "slow_consumer",
    CloseCode.MESSAGE_TOO_BIG: "too_big",
    CloseCode.INVALID_PAYLOAD: "malformed",
    CloseCode.UNSUPPORTED_DATA: "malformed",
    CloseCode.POLICY_VIOLATION: "rate_limit",
    CloseCode.UNAUTHORIZED: "auth",
    CloseCode.FORBIDDEN: "auth",
    CloseCode.INTERNAL_ERROR: "server_error",
    CloseCode.SERVICE_RESTART: "restart",
    CloseCode.DOCUMENT_DELETED: "deleted",
}


def close_reason(code: int | None) -> str:
    """The metrics label for why the server closed a peer with ``code``."""
    return _CLOSE_REASONS.get(code or 0, "server")
