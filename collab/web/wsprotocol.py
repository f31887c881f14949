"""uvicorn's websockets-sansio protocol with two additions for the sync endpoint,
announced in the scope as ``extensions[FRAMES]``:

- ``write_now(payload) -> bool``: write one binary message to the socket at once, if it
  takes data without waiting (its buffer is under the high-water mark) and no
  extension such as compression was negotiated; False otherwise, and the app falls
  back to an awaited send. A broadcast to N peers then costs N buffered writes, with
  no task switch and no ASGI message per peer, and the frame header is built once for
  all N (they get the same bytes).
- one ASGI send may carry several binary messages (``message[FRAMES]``), written in
  one call: a peer that fell behind costs one write for its whole queue.

Under any other ASGI server the app sends one message at a time.
"""

from __future__ import annotations

import struct
from typing import Any

from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request

FRAMES = "collab.frames"


class _FrameCache:
    """The last payload framed, by identity: a broadcast frames each message once."""

    __slots__ = ("frame", "payload")

    def __init__(self) -> None:
        self.payload = b""
        self.frame = b"\x82\x00"

    def frame_of(self, payload: bytes) -> bytes:
        if payload is not self.payload:
            self.frame = binary_frame(payload)
            self.payload = payload
        return self.frame


_cache = _FrameCache()


def binary_frame(payload: bytes) -> bytes:
    """A final, unmasked binary frame (RFC 6455 §5.2), as a server sends it."""
    size = len(payload)
    if size < 126:
        header = bytes((0x82, size))
    elif size < 0x10000:
        header = struct.pack("!BBH", 0x82, 126, size)
    else:
        header = struct.pack("!BBQ", 0x82, 127, size)
    return header + payload


class BatchingWebSocketProtocol(WebSocketsSansIOProtocol):
    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        if self.response.status_code == 101:
            extension: dict[object, object] = {}
            if not self.conn.extensions:
                extension["write_now"] = self.write_now
            self.scope["extensions"][FRAMES] = extension

    def write_now(self, payload: bytes) -> bool:
        if (
            not self.handshake_complete
            or self.close_sent
            or not self.writable.is_set()
            or self.transport.is_closing()
        ):
            return False
        self.transport.write(_cache.frame_of(payload))
        return True

    async def send(self, message: Any) -> None:
        frames: list[bytes] | None = message.get(FRAMES)
        if frames is None or message["type"] != "websocket.send":
            await super().send(message)
            return
        await self.writable.wait()
        if self.disconnected:
            raise ClientDisconnected()
        if self.handshake_complete and not self.close_sent:
            for frame in frames:
                self.conn.send_binary(frame)
            self.transport.write(b"".join(self.conn.data_to_send()))
