"""uvicorn's websockets-sansio protocol, where one ASGI send may carry several binary
messages, written to the socket in one call.

A peer whose queue holds several frames (it fell behind, or the server is busy) then
costs one system call for all of them, not one each: under load, the writes are most
of a server's CPU. The extension is announced in the scope, ``extensions[FRAMES]``;
under any other server the app sends one message at a time.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request

FRAMES = "collab.frames"


class BatchingWebSocketProtocol(WebSocketsSansIOProtocol):
    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        if self.response.status_code == 101:
            self.scope["extensions"][FRAMES] = {}

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
