"""The y-websocket wire protocol (y-protocols): message types and a strict codec.

Encoding reuses pycrdt's public helpers; decoding is our own because every byte read
from a peer must be bounds-checked, and pycrdt's decoder trusts its input.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from pycrdt import create_awareness_message, create_update_message, write_var_uint


class MessageType(IntEnum):
    SYNC = 0
    AWARENESS = 1
    AUTH = 2
    QUERY_AWARENESS = 3


class SyncType(IntEnum):
    STEP1 = 0
    STEP2 = 1
    UPDATE = 2


class AuthType(IntEnum):
    PERMISSION_DENIED = 0


EMPTY_UPDATE = b"\x00\x00"

# An awareness update listing no clients: Yjs clients apply it as a no-op, but it
# counts as a received message, which keeps an idle client's 30 s timeout at bay.
KEEPALIVE = create_awareness_message(b"\x00")


class ProtocolError(ValueError):
    """A peer sent bytes that are not a well-formed y-protocols message."""


class UnknownMessage(ProtocolError):
    """A well-formed frame whose message type this server does not speak."""


@dataclass(frozen=True, slots=True)
class SyncMessage:
    kind: SyncType
    payload: bytes  # a state vector for STEP1, a v1 update otherwise


@dataclass(frozen=True, slots=True)
class AwarenessMessage:
    update: bytes


@dataclass(frozen=True, slots=True)
class AuthMessage:
    kind: int
    reason: str


@dataclass(frozen=True, slots=True)
class QueryAwarenessMessage:
    pass


Message = SyncMessage | AwarenessMessage | AuthMessage | QueryAwarenessMessage


class Reader:
    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def var_uint(self) -> int:
        data = self._data
        result = 0
        shift = 0
        while True:
            if self._pos >= len(data):
                raise ProtocolError("truncated integer")
            byte = data[self._pos]
            self._pos += 1
            result |= (byte & 0x7F) << shift
            if byte < 0x80:
                return result
            shift += 7
            if shift > 63:
                raise ProtocolError("integer too long")

    def var_bytes(self) -> bytes:
        length = self.var_uint()
        end = self._pos + length
        if end > len(self._data):
            raise ProtocolError("truncated byte array")
        chunk = self._data[self._pos : end]
        self._pos = end
        return chunk

    def var_string(self) -> str:
        try:
            return self.var_bytes().decode()
        except UnicodeDecodeError:
            raise ProtocolError("string is not UTF-8") from None

    def done(self) -> bool:
        return self._pos == len(self._data)


def decode(frame: bytes) -> Message:
    """Decode the one message a frame carries; raise ProtocolError if it is not one."""
    reader = Reader(frame)
    kind = reader.var_uint()
    message: Message
    if kind == MessageType.SYNC:
        sub = reader.var_uint()
        if sub > SyncType.UPDATE:
            raise UnknownMessage(f"unknown sync message type {sub}")
        message = SyncMessage(SyncType(sub), reader.var_bytes())
    elif kind == MessageType.AWARENESS:
        message = AwarenessMessage(reader.var_bytes())
    elif kind == MessageType.AUTH:
        message = AuthMessage(reader.var_uint(), reader.var_string())
    elif kind == MessageType.QUERY_AWARENESS:
        message = QueryAwarenessMessage()
    else:
        raise UnknownMessage(f"unknown message type {kind}")
    if not reader.done():
        raise ProtocolError("trailing bytes after the message")
    return message


def sync_step1(state_vector: bytes) -> bytes:
    return (
        bytes([MessageType.SYNC, SyncType.STEP1]) + write_var_uint(len(state_vector)) + state_vector
    )


def sync_step2(update: bytes) -> bytes:
    return sync_step2_head(len(update)) + update


def sync_step2_head(size: int) -> bytes:
    """What comes before an update of ``size`` bytes in its sync step 2 message."""
    return bytes([MessageType.SYNC, SyncType.STEP2]) + write_var_uint(size)


def sync_update(update: bytes) -> bytes:
    return create_update_message(update)


def awareness(update: bytes) -> bytes:
    return create_awareness_message(update)


def permission_denied(reason: str) -> bytes:
    encoded = reason.encode()
    return (
        bytes([MessageType.AUTH, AuthType.PERMISSION_DENIED])
        + write_var_uint(len(encoded))
        + encoded
    )
