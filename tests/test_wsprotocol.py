"""``write_now``: the frames it puts on the wire, and when it writes them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
from uvicorn.config import Config
from uvicorn.server import ServerState
from websockets.frames import Frame, Opcode

from collab.web import wsprotocol
from collab.web.wsextension import FRAMES
from collab.web.wsprotocol import (
    FLUSH_GAP,
    FLUSH_TURN,
    HOT_ROUNDS,
    HOT_SOCKETS,
    SPREAD_FROM,
    BatchingWebSocketProtocol,
    binary_frame,
)

from .support import eventually


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 1_000_000])
def test_binary_frame_matches_websockets(size: int) -> None:
    payload = bytes(i % 251 for i in range(size))
    expected = Frame(Opcode.BINARY, payload).serialize(mask=False, extensions=[])
    assert binary_frame(payload) == expected


class _Socket(asyncio.Transport):
    """What the protocol writes, call by call."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.vectors: list[list[bytes]] = []  # writelines' parts, as given
        self.closing = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 5000)}.get(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def writelines(self, list_of_data: Any) -> None:
        self.vectors.append(list(list_of_data))

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


HANDSHAKE = (
    b"GET /ws/doc HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n\r\n"
)


def _connected(app: Any, socket: _Socket) -> BatchingWebSocketProtocol:
    """The protocol of a connection on ``socket`` whose handshake has arrived."""
    config = Config(app, ws=BatchingWebSocketProtocol, ws_per_message_deflate=False)
    config.load()
    protocol = BatchingWebSocketProtocol(config, ServerState(), {})
    protocol.connection_made(socket)
    protocol.data_received(HANDSHAKE)
    return protocol


async def _accepted() -> tuple[_Socket, Callable[[bytes], bool], asyncio.Event]:
    """A protocol that accepted a connection; its app waits until the event is set."""
    ready: asyncio.Future[Callable[[bytes], bool]] = asyncio.get_running_loop().create_future()
    done = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        ready.set_result(scope["extensions"][FRAMES]["write_now"])
        await done.wait()

    socket = _Socket()
    _connected(app, socket)
    write_now = await asyncio.wait_for(ready, 5)
    await eventually(lambda: bool(socket.writes), 5, "the handshake's answer")
    assert socket.writes[-1].startswith(b"HTTP/1.1 101")
    await asyncio.sleep(FLUSH_GAP)  # that round is not the start of a busy spell
    return socket, write_now, done


async def test_the_handshake_answer_goes_out_with_the_first_frames_in_one_write() -> None:
    done = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        write_now = scope["extensions"][FRAMES]["write_now"]
        assert write_now(b"step 1")  # as a joining peer's first messages
        assert write_now(b"awareness")
        await done.wait()

    socket = _Socket()
    _connected(app, socket)
    await eventually(lambda: bool(socket.writes), 5, "the handshake's answer")
    [written] = socket.writes
    assert written.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert b"\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in written
    assert written.endswith(b"\r\n\r\n" + binary_frame(b"step 1") + binary_frame(b"awareness"))
    done.set()


async def test_a_pass_writes_what_it_was_given_in_one_write_at_its_end() -> None:
    socket, write_now, done = await _accepted()
    before = len(socket.writes)
    assert [write_now(b"one"), write_now(b"two"), write_now(b"three")] == [True] * 3
    assert socket.writes[before:] == []  # held for the end of the pass
    await asyncio.sleep(0)
    assert socket.writes[before:] == [
        binary_frame(b"one") + binary_frame(b"two") + binary_frame(b"three")
    ]
    assert write_now(b"four")  # a new pass
    await asyncio.sleep(0)
    assert socket.writes[-1] == binary_frame(b"four")
    protocol = write_now.__self__  # type: ignore[attr-defined]
    protocol.pause_writing()  # the socket's buffer is full
    assert not write_now(b"held")
    protocol.resume_writing()
    assert write_now(b"again")
    socket.closing = True
    assert not write_now(b"five")  # a closing socket takes nothing
    await asyncio.sleep(0)
    assert socket.writes[-1] == binary_frame(b"four")  # nor writes what it held
    done.set()


async def test_a_large_message_goes_out_beside_its_header_not_copied_into_a_frame() -> None:
    socket, write_now, done = await _accepted()
    large = bytes(range(256)) * 400  # 100 KiB
    assert len(large) >= SPREAD_FROM
    before = len(socket.writes)
    assert [write_now(b"one"), write_now(large), write_now(b"two")] == [True] * 3
    await asyncio.sleep(0)
    assert socket.writes[before:] == []
    [parts] = socket.vectors
    assert b"".join(parts) == binary_frame(b"one") + binary_frame(large) + binary_frame(b"two")
    assert any(part is large for part in parts)
    assert wsprotocol._cache.payload is not large  # nor kept for the next peer
    assert write_now(large)
    await asyncio.sleep(0)
    assert socket.vectors[-1] == [binary_frame(large)[:10], large]
    protocol = write_now.__self__  # type: ignore[attr-defined]
    assert protocol.write_parts(b"head:", large)  # a message in two parts, as it is
    await asyncio.sleep(0)
    assert socket.vectors[-1] == [binary_frame(b"head:" + large)[:15], large]
    assert write_now(b"three")  # small ones are written as before
    assert protocol.write_parts(b"head:", b"small")
    await asyncio.sleep(0)
    assert socket.writes[-1] == binary_frame(b"three") + binary_frame(b"head:small")
    assert len(socket.vectors) == 3
    protocol.pause_writing()
    assert not protocol.write_parts(b"head:", large)  # a full socket takes nothing
    done.set()


async def _busy_room() -> tuple[list[_Socket], Callable[[bytes], None], Callable[[], None]]:
    """HOT_SOCKETS accepted sockets, a function that writes a frame to each, and one
    that lets their apps end."""
    accepted = [await _accepted() for _ in range(HOT_SOCKETS)]

    def write_all(payload: bytes) -> None:
        assert all(write_now(payload) for _, write_now, _ in accepted)

    def end() -> None:
        for _, _, done in accepted:
            done.set()

    return [socket for socket, _, _ in accepted], write_all, end


async def test_a_busy_server_starts_its_rounds_of_writes_a_gap_apart() -> None:
    """Rounds of HOT_SOCKETS sockets asked for soon after the last one, HOT_ROUNDS times
    in a row, are held until FLUSH_GAP after it, gathering what comes meanwhile; a
    quiet spell ends it."""
    sockets, write_all, end = await _busy_room()
    for _ in range(2):  # the second time after a quiet spell: the same again
        await asyncio.sleep(FLUSH_GAP * 3)
        before = [len(socket.writes) for socket in sockets]
        for n in range(HOT_ROUNDS + 1):  # one round, then HOT_ROUNDS soon after it
            write_all(b"%d" % n)
            await asyncio.sleep(0)
        for socket, start in zip(sockets, before, strict=True):
            assert socket.writes[start:] == [binary_frame(b"%d" % n) for n in range(HOT_ROUNDS + 1)]
        for payload in (b"held", b"too"):
            write_all(payload)
            await asyncio.sleep(0)
        written = [
            len(socket.writes) - start for socket, start in zip(sockets, before, strict=True)
        ]
        assert written == [HOT_ROUNDS + 1] * HOT_SOCKETS  # within the gap: held
        await asyncio.sleep(FLUSH_GAP * 3)
        for socket, start in zip(sockets, before, strict=True):
            assert socket.writes[start + HOT_ROUNDS + 1 :] == [
                binary_frame(b"held") + binary_frame(b"too")
            ]
    end()


async def test_small_rounds_are_never_held_however_close_together() -> None:
    """Connections opened one after the other, or keystrokes in a small room: each
    round is written at the end of its pass, with no gap to wait out."""
    socket, write_now, done = await _accepted()
    before = len(socket.writes)
    for n in range(HOT_ROUNDS * 3):
        assert write_now(b"%d" % n)
        await asyncio.sleep(0)
        assert socket.writes[-1] == binary_frame(b"%d" % n)
    assert len(socket.writes) == before + HOT_ROUNDS * 3
    done.set()


async def test_a_round_longer_than_the_gap_is_followed_at_once() -> None:
    """The gap bounds how often rounds start: after one that took longer than it (a
    large room's), even a busy server writes at the end of the pass."""
    sockets, write_all, end = await _busy_room()
    await asyncio.sleep(FLUSH_GAP * 3)
    for n in range(HOT_ROUNDS + 1):
        write_all(b"%d" % n)
        await asyncio.sleep(0)
    socket = sockets[-1]
    write = socket.write

    def slow(data: bytes | bytearray | memoryview) -> None:
        time.sleep(FLUSH_GAP * 1.5)
        write(data)

    socket.write = slow  # type: ignore[method-assign]
    write_all(b"slow")  # held for the gap, then written slowly
    count = len(socket.writes)
    await asyncio.sleep(0)
    assert len(socket.writes) == count  # held
    await asyncio.sleep(FLUSH_GAP * 3)
    assert socket.writes[-1] == binary_frame(b"slow")
    socket.write = write  # type: ignore[method-assign]
    write_all(b"next")
    await asyncio.sleep(0)
    assert [s.writes[-1] for s in sockets] == [binary_frame(b"next")] * HOT_SOCKETS
    end()


async def test_a_pass_writes_a_bounded_turn_of_sockets_and_the_rest_take_the_next() -> None:
    """A frame for a socket still waiting its turn joins what it holds: one write."""
    accepted = [await _accepted() for _ in range(FLUSH_TURN + 2)]
    await asyncio.sleep(FLUSH_GAP * 2)
    counts = [len(socket.writes) for socket, _, _ in accepted]
    for _, write_now, _ in accepted:
        assert write_now(b"one")
    await asyncio.sleep(0)  # one pass: the first turn of sockets is written
    written = [len(s.writes) - n for (s, _, _), n in zip(accepted, counts, strict=True)]
    assert written == [1] * FLUSH_TURN + [0, 0]
    for _, write_now, _ in accepted:
        assert write_now(b"two")
    for _ in range(3):
        await asyncio.sleep(0)
    late = [s.writes[n:] for (s, _, _), n in zip(accepted, counts, strict=True)]
    assert late[0] == [binary_frame(b"one"), binary_frame(b"two")]
    assert late[-1] == [binary_frame(b"one") + binary_frame(b"two")]
    for _, _, done in accepted:
        done.set()


def _client_frame(payload: bytes) -> bytes:
    """A masked binary frame, as a client sends one."""
    mask = b"\x01\x02\x03\x04"
    masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
    return bytes((0x82, 0x80 | len(payload))) + mask + masked


class _PausingSocket(_Socket):
    def __init__(self) -> None:
        super().__init__()
        self.reading = True

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True


async def test_reading_resumes_when_the_app_asks_for_its_next_message() -> None:
    # An app that holds its reads (a rate limit, writes behind) holds the socket's:
    # reading resumes when it asks for a message and none is left, not when it took
    # one; and a pong the held socket cannot read does not time it out.
    got: list[bytes] = []
    permits: asyncio.Queue[None] = asyncio.Queue()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        while True:
            await permits.get()
            message = await receive()
            if message["type"] != "websocket.receive":
                return
            got.append(message["bytes"])

    socket = _PausingSocket()
    protocol = _connected(app, socket)
    await eventually(lambda: protocol.handshake_complete, 5, "the accept")
    protocol.data_received(_client_frame(b"one") + _client_frame(b"two"))
    assert not socket.reading
    for expected in ([b"one"], [b"one", b"two"]):
        permits.put_nowait(None)
        await eventually(lambda e=expected: got == e, 5, f"{expected}")
        assert not socket.reading  # the app holds what it took
    protocol.keepalive_timeout()  # no pong could be read meanwhile
    assert not socket.closing
    permits.put_nowait(None)
    await eventually(lambda: socket.reading, 5, "reading again")
    protocol.data_received(_client_frame(b"three"))
    await eventually(lambda: got == [b"one", b"two", b"three"], 5, "the third message")
    protocol.connection_lost(None)
    permits.put_nowait(None)
