"""Slow and oversized requests: connections that never finish their request headers
are closed, and their number is bounded; headers past their bound, and WebSocket
upgrades the websockets library refuses, are answered and closed; complete requests
are served as usual."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
import weakref
from typing import Any

import httpx
import pytest
from uvicorn.config import Config
from uvicorn.server import ServerState

from collab.web.httpprotocol import header_deadline_protocol
from collab.web.wsprotocol import BatchingWebSocketProtocol

from .conftest import WS_PROTOCOLS, ServerFactory
from .support import CollabServer
from .yclient import YClient

HALF = b"GET /healthz HT"  # half a request line, and then nothing


class _Sockets:
    """Raw connections that each sent half a request line; closed on exit."""

    def __init__(self) -> None:
        self.writers: list[asyncio.StreamWriter] = []

    async def open(self, server: CollabServer, count: int) -> list[asyncio.StreamReader]:
        readers = []
        for _ in range(count):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            self.writers.append(writer)
            writer.write(HALF)
            await writer.drain()
            readers.append(reader)
        return readers

    async def __aenter__(self) -> _Sockets:
        return self

    async def __aexit__(self, *exc: object) -> None:
        for writer in self.writers:
            writer.close()
        for writer in self.writers:
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def _closed_by_server(reader: asyncio.StreamReader, within: float) -> bool:
    """True when the server closes the connection within ``within`` seconds."""
    try:
        async with asyncio.timeout(within):
            await reader.read()  # to the end of the stream
            return True
    except ConnectionError:  # reset, or a broken pipe of the client's own writes
        return True
    except TimeoutError:
        return False


async def test_connections_without_complete_headers_are_closed(
    start_server: ServerFactory, doc_id: str
) -> None:
    server = start_server(header_timeout="1")
    opened = time.monotonic()
    async with (
        _Sockets() as sockets,
        YClient(server.ws_url(doc_id)) as peer,
        httpx.AsyncClient() as http,
    ):
        slow = await sockets.open(server, 50)
        assert (await http.get(server.url + "/healthz")).status_code == 200
        closed = await asyncio.gather(*(_closed_by_server(r, 15) for r in slow))
        assert all(closed), f"{closed.count(False)} of 50 still open"
        assert time.monotonic() - opened >= 1  # not before the deadline
        # A kept-alive connection that starts another request and stalls is closed too.
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        sockets.writers.append(writer)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
        writer.write(HALF)
        assert await _closed_by_server(reader, 15)
        # Long-lived sockets are not requests waiting for their headers.
        peer.append("still open")
        async with YClient(server.ws_url(doc_id)) as late:
            assert late.content() == "still open"
        assert not peer.closed.is_set()
    assert "no complete headers in 1 s" in server.log()


async def test_connections_sending_headers_are_bounded(start_server: ServerFactory) -> None:
    server = start_server(header_timeout="60", max_incomplete_connections="10")
    async with _Sockets() as sockets, httpx.AsyncClient() as http:
        first = await sockets.open(server, 10)
        later = await sockets.open(server, 10)
        # The ten that waited longest made room for the ten after them, long before 60 s.
        assert all(await asyncio.gather(*(_closed_by_server(r, 15) for r in first)))
        assert (await http.get(server.url + "/healthz")).status_code == 200
        # That request's connection took the place of the oldest of the others.
        assert not any(await asyncio.gather(*(_closed_by_server(r, 0.2) for r in later[1:])))
    assert "over 10 connections sending their headers" in server.log()


UPGRADE = (
    b"GET /ws/%s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
)


async def _exchange(server: CollabServer, request: bytes) -> bytes:
    """What the server answers ``request`` with, up to its closing the connection (and
    failing if it does not within 10 s)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(request)
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            await writer.drain()
        async with asyncio.timeout(10):
            try:
                return await reader.read()
            except ConnectionResetError:
                return b""
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


@pytest.mark.parametrize("ws_protocol", WS_PROTOCOLS)
async def test_oversized_headers_are_answered_431_and_closed(
    start_server: ServerFactory, doc_id: str
) -> None:
    server = start_server(max_header_bytes="4096")
    async with YClient(server.ws_url(doc_id)) as peer, httpx.AsyncClient() as http:
        # At the bound, a request is served; past it, by a header, many, or the URL...
        under = {"x-pad": "a" * 3900}
        assert (await http.get(server.url + "/healthz", headers=under)).status_code == 200
        many = b"".join(b"x-h%d: %s\r\n" % (i, b"a" * 100) for i in range(50))
        for request in (
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n",
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nx-big: " + b"a" * 8000 + b"\r\n\r\n",
            b"GET /healthz?" + b"a" * 8000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
            UPGRADE % doc_id.encode() + many + b"\r\n",
        ):
            answer = await _exchange(server, request)
            assert answer.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"), answer
            assert answer.endswith(b"headers over 4096 bytes\n")
        # ...or by a header that never ends (httptools keeps it whole until it does):
        # closed at the bound, long before the 10 s deadline. The answer may be lost to
        # the reset of a socket closed with the client's bytes unread.
        for head in (b"x-endless: ", b"x-ended: a\r\n" * 100 + b"x-endless: "):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + head)
            started = time.monotonic()
            with contextlib.suppress(ConnectionResetError, BrokenPipeError):
                for _ in range(10_000):  # 10 MB, unless stopped
                    writer.write(b"a" * 1000)
                    await writer.drain()
            assert await _closed_by_server(reader, 5)
            assert time.monotonic() - started < 5
            writer.close()
        peer.append("undisturbed")
        async with YClient(server.ws_url(doc_id)) as late:
            assert late.content() == "undisturbed"
        assert not peer.closed.is_set()
    assert "request headers over 4096 bytes" in server.log()


@pytest.mark.parametrize("ws_protocol", WS_PROTOCOLS)
async def test_upgrades_the_websocket_library_refuses_are_answered_and_closed(
    start_server: ServerFactory, doc_id: str
) -> None:
    """uvicorn hands the request to the websockets library, which refuses more than 128
    header lines or a line over 8 KiB: uvicorn used to leave such a socket open and
    unanswered (one file descriptor each, for good)."""
    server = start_server()
    upgrade = UPGRADE % doc_id.encode()
    async with YClient(server.ws_url(doc_id)) as peer:
        lines = b"".join(b"x-h%d: a\r\n" % i for i in range(130))
        long_line = b"x-long: " + b"a" * 9000 + b"\r\n"
        for extra in (lines, long_line):
            answer = await _exchange(server, upgrade + extra + b"\r\n")
            assert answer.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"), answer
        answer = await _exchange(server, upgrade + b"Transfer-Encoding: gzip\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n"), answer
        assert answer.endswith(b"malformed WebSocket request\n")
        # Just under the bounds, the same upgrade is served.
        under = b"".join(b"x-h%d: a\r\n" % i for i in range(100)) + b"x-long: " + b"a" * 8000
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(upgrade + under + b"\r\n\r\n")
        answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert answer.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
        writer.close()
        peer.append("still served")
        async with YClient(server.ws_url(doc_id)) as late:
            assert late.content() == "still served"
    assert "WebSocket upgrade refused: too many header lines" in server.log()
    assert "WebSocket upgrade refused: a line too long" in server.log()


class _Transport(asyncio.Transport):
    """A socket that takes what it is given and hands itself over on upgrade."""

    def __init__(self) -> None:
        super().__init__()
        self.protocol: asyncio.BaseProtocol | None = None
        self.written: list[bytes] = []

    def get_extra_info(self, name: str, default: object = None) -> object:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 5000)}.get(name, default)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        assert self.protocol is not None
        return self.protocol

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written.append(bytes(data))

    def is_closing(self) -> bool:
        return False

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def test_the_http_protocol_of_an_upgraded_connection_is_freed_at_once() -> None:
    """Once the socket is the WebSocket protocol's, nothing keeps the HTTP one: not even
    a cycle through its parser, which only a full collection (rare in collab) frees."""
    accepted = asyncio.Event()

    async def app(scope: dict[str, object], receive: object, send: Any) -> None:
        await send({"type": "websocket.accept"})
        accepted.set()

    config = Config(app, ws=BatchingWebSocketProtocol, ws_per_message_deflate=False)
    config.load()
    protocol = header_deadline_protocol(10, 100, 65536)(config, ServerState(), {})
    transport = _Transport()
    protocol.connection_made(transport)
    upgraded = weakref.ref(protocol)
    gc.disable()
    try:
        protocol.data_received(
            b"GET /ws/doc HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n"
        )
        assert isinstance(transport.protocol, BatchingWebSocketProtocol)
        del protocol
        assert upgraded() is None
    finally:
        gc.enable()
    await asyncio.wait_for(accepted.wait(), 5)
    await asyncio.sleep(0)
    assert transport.written[0].startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
