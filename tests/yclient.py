"""A Python Yjs client for the tests: a pycrdt Doc synced over the y-websocket protocol,
with awareness, speaking to the server through a real WebSocket."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import websockets
from pycrdt import Doc, Text, XmlFragment, create_sync_message, write_var_uint
from websockets.asyncio.client import ClientConnection

from collab import protocol
from collab.protocol import AuthMessage, AwarenessMessage, SyncMessage, SyncType


class YClient:
    def __init__(self, url: str, *, client_id: int | None = None) -> None:
        self.url = url
        self.doc: Doc[Any] = Doc(client_id=client_id) if client_id else Doc()
        self.synced = asyncio.Event()
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self.awareness: dict[int, Any] = {}
        self.denied: list[str] = []
        self.received = 0
        self._clock = 0
        self._ws: ClientConnection | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._subscription: Any = None

    @property
    def client_id(self) -> int:
        return int(self.doc.client_id)

    def text(self, name: str = "text") -> Text:
        return self.doc.get(name, type=Text)

    def append(self, chunk: str, name: str = "text") -> None:
        text = self.text(name)
        text.insert(len(text), chunk)

    def content(self, name: str = "text") -> str:
        return str(self.text(name))

    def xml(self, name: str = "default") -> XmlFragment:
        return self.doc.get(name, type=XmlFragment)

    async def connect(self, **kwargs: Any) -> YClient:
        self._ws = await websockets.connect(self.url, max_size=None, **kwargs)
        self._subscription = self.doc.observe(self._on_doc_update)
        self._tasks.append(asyncio.create_task(self._reader()))
        with contextlib.suppress(websockets.ConnectionClosed):
            await self._ws.send(create_sync_message(self.doc))
        return self

    async def __aenter__(self) -> YClient:
        await self.connect()
        await asyncio.wait_for(self.synced.wait(), 10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def send_raw(self, frame: bytes | str) -> None:
        assert self._ws is not None
        await self._ws.send(frame)

    def set_presence(self, state: dict[str, Any] | None) -> None:
        self._clock += 1
        encoded = json.dumps(state).encode()
        update = (
            write_var_uint(1)
            + write_var_uint(self.client_id)
            + write_var_uint(self._clock)
            + write_var_uint(len(encoded))
            + encoded
        )
        self._spawn_send(protocol.awareness(update))

    async def flush(self) -> None:
        """Wait until every frame this client queued has been handed to the socket."""
        await asyncio.gather(*self._tasks[1:], return_exceptions=True)

    async def close(self) -> None:
        if self._ws is not None:
            await self.flush()
            await self._ws.close()
        await self.wait_closed()

    async def wait_closed(self, timeout: float = 10) -> None:
        await asyncio.wait_for(self.closed.wait(), timeout)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def abort(self) -> None:
        """Drop the TCP connection without a closing handshake."""
        assert self._ws is not None
        self._ws.transport.abort()

    def _spawn_send(self, frame: bytes) -> None:
        assert self._ws is not None
        self._tasks.append(asyncio.create_task(self._ws.send(frame)))

    def _on_doc_update(self, event: Any) -> None:
        if self._ws is not None and event.update != protocol.EMPTY_UPDATE and not self._applying:
            self._spawn_send(protocol.sync_update(event.update))

    _applying = False

    async def _reader(self) -> None:
        assert self._ws is not None
        try:
            async for frame in self._ws:
                assert isinstance(frame, bytes)
                self.received += 1
                self._handle(frame)
        except websockets.ConnectionClosed:
            pass
        finally:
            self.close_code = self._ws.close_code
            self.closed.set()

    def _handle(self, frame: bytes) -> None:
        message = protocol.decode(frame)
        if isinstance(message, SyncMessage):
            if message.kind is SyncType.STEP1:
                self._spawn_send(protocol.sync_step2(self.doc.get_update(message.payload)))
                return
            self._applying = True
            try:
                self.doc.apply_update(message.payload)
            finally:
                self._applying = False
            if message.kind is SyncType.STEP2:
                self.synced.set()
        elif isinstance(message, AwarenessMessage):
            from collab.presence import decode_update

            for client, _clock, state in decode_update(message.update):
                if state == "null":
                    self.awareness.pop(client, None)
                else:
                    self.awareness[client] = json.loads(state)
        elif isinstance(message, AuthMessage):
            self.denied.append(message.reason)


@contextlib.asynccontextmanager
async def clients(url: str, count: int) -> Any:
    opened = [YClient(url) for _ in range(count)]
    for client in opened:
        await client.connect()
    await asyncio.gather(*(asyncio.wait_for(c.synced.wait(), 10) for c in opened))
    try:
        yield opened
    finally:
        await asyncio.gather(*(c.close() for c in opened), return_exceptions=True)
