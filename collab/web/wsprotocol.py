"""uvicorn's websockets-sansio protocol with three additions for the sync endpoint,
announced in the scope as ``extensions[FRAMES]``:

- ``write_now(payload) -> bool``: take one binary message for the socket at once, if
  it takes data without waiting (its buffer is under the high-water mark) and no
  extension such as compression was negotiated; False otherwise, and the app falls
  back to an awaited send. A broadcast to N peers then costs no task switch and no
  ASGI message per peer, and the frame header is built once for all N (they get the
  same bytes). A socket's messages of one pass of the event loop are held and
  written together at the end of the pass, at most FLUSH_TURN sockets a pass and,
  when busy, rounds FLUSH_GAP apart (see ``_Corked``): under load, when many updates
  arrive in one pass, within milliseconds, or while a large room is being written,
  a peer costs one system call for all of them, not one each.
- one ASGI send may carry several binary messages (``message[FRAMES]``), written in
  one call: a peer that fell behind costs one write for its whole queue.
- ``socket``, the protocol itself, for two calls (one object kept by the app rather
  than a bound method of each):
  - ``closing() -> bool``: whether the connection is going (closed by either side,
    or by the server's shutdown), for an app that waits before its next receive.
  - ``departure() -> (Departure, code, reason) | None``: who closed the connection
    when the server under the app did, before the client: at its shutdown (1012), on
    a frame it could not parse, or on a ping timeout; None if it did not. uvicorn's
    disconnect event does not say: at shutdown it looks like a client that sent 1012.

Under any other ASGI server the app sends one message at a time.

uvicorn reads a socket only while the app takes what was read: after each message,
reading pauses until the app's next receive. An app that holds its reads (a rate
limit, a database that is behind) so makes TCP push back on the sender, but a pong
behind the held messages is not read either; a missing pong then means a held peer,
not a dead one, and the timeout waits another round instead of closing it.

A sync socket lives for hours, so the protocol is also leaner than uvicorn's: its
receive queue and writable flag hold no deques (asyncio.Queue holds four, 3 KB), the
handshake's request and response are dropped once the socket is accepted, and its
keepalive pings are timed by one timer for all the sockets of the event loop
(collab/web/wskeepalive.py), not two timers each.
"""

from __future__ import annotations

import asyncio
import logging
import random
import struct
import time
from collections.abc import Awaitable, Generator
from typing import Any, Generic, TypeVar

from uvicorn.protocols.utils import (
    ClientDisconnected,
    get_client_addr,
    get_path_with_query_string,
)
from websockets.datastructures import Headers
from websockets.frames import Frame
from websockets.http11 import Request

from ..peer import Departure
from .wsextension import FRAMES
from .wskeepalive import existing, keepalive
from .wsslots import SlottedWebSocketsSansIOProtocol

T = TypeVar("T")


class _Inbox(Generic[T]):
    """What the protocol uses of asyncio.Queue, for one consumer, without deques:
    reading pauses after each message, so it holds one or two. ``take`` is a plain
    call, not a coroutine: a socket waiting for its next message keeps one future
    (144 bytes), not two coroutine frames and a future (552). Its futures are made on
    ``loop``: asyncio.get_running_loop() costs a getpid system call on Python 3.11,
    once per message received."""

    __slots__ = ("_items", "_loop", "_waiter")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._items: list[T] = []
        self._loop = loop
        self._waiter: asyncio.Future[T] | None = None

    def put_nowait(self, item: T) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():  # not cancelled with its reader
                waiter.set_result(item)
                return
        self._items.append(item)

    def empty(self) -> bool:
        return not self._items

    def take(self) -> Awaitable[T]:
        """The next item: at once if there is one, else when it is put."""
        if self._items:
            return _Ready(self._items.pop(0))
        waiter = self._waiter
        if waiter is None or waiter.done():
            waiter = self._waiter = self._loop.create_future()
        return waiter


class _Ready(Generic[T]):
    """An awaitable that is done: awaiting it returns its value without suspending."""

    __slots__ = ("value",)

    def __init__(self, value: T) -> None:
        self.value = value

    def __await__(self) -> Generator[Any, None, T]:
        return self  # type: ignore[return-value]  # an iterator is all await needs

    def __next__(self) -> Any:
        raise StopIteration(self.value)

    def __iter__(self) -> _Ready[T]:
        return self


class _Flag:
    """What the protocol uses of asyncio.Event, with its waiters made only when one
    waits (a socket's buffer is full)."""

    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = True
        self._waiters: list[asyncio.Future[None]] = []

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> None:
        if self._set:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        await waiter


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
_NO_HEADERS = Headers()


def binary_frame(payload: bytes) -> bytes:
    """A final, unmasked binary frame (RFC 6455 §5.2), as a server sends it."""
    return frame_header(len(payload)) + payload


def frame_header(size: int) -> bytes:
    """The header of such a frame of ``size`` bytes."""
    if size < 126:
        return bytes((0x82, size))
    if size < 0x10000:
        return struct.pack("!BBH", 0x82, 126, size)
    return struct.pack("!BBQ", 0x82, 127, size)


# A message of this many bytes or more goes out as its header and itself, one writev
# for both: neither copied into a frame (a document of 1.7 MB took a millisecond,
# most of it faulting in the copy's fresh memory) nor kept by the frame cache.
SPREAD_FROM = 64 * 1024


# Sockets written by one callback of the end-of-pass flush, at most; the rest wait for
# the next pass (see _Corked).
FLUSH_TURN = 128
# Seconds from the start of one round of writes to the start of the next, at least, once
# HOT_ROUNDS rounds in a row of HOT_SOCKETS sockets or more were asked for that soon:
# under load, frames gather for two milliseconds instead of a pass (see _Corked).
FLUSH_GAP = 0.002
HOT_ROUNDS = 3
HOT_SOCKETS = 16


class _Corked:
    """The sockets that hold frames, in the order they were first given one, and the
    callback that writes them.

    A pass of the event loop writes at most FLUSH_TURN of them, then lets the loop
    read. Writing a room of a thousand peers takes milliseconds: an update that
    arrives meanwhile joins the frames still held for the peers not yet written, so
    each of them gets both in one write, and the peers already written get it in the
    next round. Under load the writes become one round over the sockets, each write
    carrying all its socket got since its last one: fewer writes the busier the
    server, and no frame waits longer than one round.

    A busy server, one asked for a round within FLUSH_GAP of the last one's start
    HOT_ROUNDS times in a row, each after a round of HOT_SOCKETS sockets or more,
    starts the next FLUSH_GAP after the last one started:
    one that would write after every pass of a fraction of a millisecond gathers two
    milliseconds of updates into each write instead, several times fewer system calls
    for it and as many fewer reads for each client, for two or three milliseconds more
    latency (the loop's timers count whole milliseconds). A round that takes longer
    than that (a room of a thousand) is followed at once, and a server that is not
    busy writes at the end of the pass: a handshake's answers, or a keystroke in a
    room, wait for nothing. Nor do small rounds, however close together: connections
    opened one after the other (a round for each answer) or keystrokes in small rooms
    save few system calls by waiting, and each of them would wait a round trip's
    worth."""

    __slots__ = ("hot", "loop", "protocols", "started", "written")

    def __init__(self) -> None:
        self.protocols: list[BatchingWebSocketProtocol] = []
        # The loop a flush is scheduled on; None while none is.
        self.loop: asyncio.AbstractEventLoop | None = None
        self.started = -FLUSH_GAP  # when the last round started (perf_counter)
        self.hot = 0  # rounds in a row asked for within FLUSH_GAP of the last one's start
        self.written = 0  # sockets the last round had to write

    def schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        # Not the loop's time: uvloop's counts whole milliseconds.
        now = time.perf_counter()
        wait = self.started + FLUSH_GAP - now
        if wait <= 0 or self.written < HOT_SOCKETS:
            self.hot = 0
        elif self.hot < HOT_ROUNDS:
            self.hot += 1
        else:
            self.started = now + wait
            loop.call_later(wait, self.flush)
            return
        self.started = now
        loop.call_soon(self.flush)

    def flush(self) -> None:
        protocols = self.protocols
        loop = self.loop
        assert loop is not None  # set by schedule, until the last turn of its round
        self.written = len(protocols)
        if len(protocols) > FLUSH_TURN:
            turn = protocols[:FLUSH_TURN]
            del protocols[:FLUSH_TURN]
            loop.call_soon(self.flush)
        else:
            turn, self.protocols = protocols, []
            self.loop = None
        for protocol in turn:
            out = protocol.out
            if isinstance(out, bytes) and not protocol.transport.is_closing():
                # One frame, BatchingWebSocketProtocol.flush inline: this runs per
                # socket per pass.
                protocol.out = None
                protocol.transport.write(out)
            else:
                protocol.flush()


_corked = _Corked()


class BatchingWebSocketProtocol(SlottedWebSocketsSansIOProtocol):
    # What is held for the next flush of the corked sockets: one frame, several, or
    # None.
    out: bytes | list[bytes] | None = None
    spread = False  # out holds a large message apart from its header (SPREAD_FROM)
    paused = False  # the transport's buffer is over its high-water mark
    timed_out = False  # closed because the client stopped answering pings

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = _Inbox(self.loop)  # type: ignore[assignment]
        self.writable = _Flag()  # type: ignore[assignment]

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        # The scope holds a copy of the request, which websockets' parser keeps for the
        # socket's life: it keeps none of its strings or headers (0.4 KB).
        event.headers = _NO_HEADERS
        event.path, event.method, event.protocol = "", "GET", "HTTP/1.1"
        if self.response.status_code == 101:
            extension: dict[object, object] = {}
            if not self.conn.extensions:
                extension["write_now"] = self.write_now
            extension["socket"] = self
            self.scope["extensions"][FRAMES] = extension

    def receive(self) -> Awaitable[Any]:  # type: ignore[override]
        # uvicorn's, as a plain call (see _Inbox): reading resumes when the app asks
        # for its next message and none is left, not as soon as it has taken one, so
        # that an app that holds its reads (a rate limit, writes behind) holds the
        # socket's too.
        queue: _Inbox[Any] = self.queue  # type: ignore[assignment]
        if self.read_paused and queue.empty():
            self.read_paused = False
            self.transport.resume_reading()
        return queue.take()

    def closing(self) -> bool:
        return self.close_sent or self.disconnected or self.transport.is_closing()

    def departure(self) -> tuple[Departure, int, str] | None:
        sent = self.conn.close_sent
        if sent is None or self.conn.close_rcvd_then_sent:
            return None
        return Departure.TIMEOUT if self.timed_out else Departure.SERVER, sent.code, sent.reason

    # Keepalive: uvicorn's pings and pong deadlines, on one timer for every socket of
    # the loop (collab/web/wskeepalive.py) rather than one each. uvicorn calls
    # schedule_ping when the socket is accepted, and stop_keepalive when it goes.

    def schedule_ping(self) -> None:
        assert self.ping_interval is not None
        keepalive(self.loop, self.ping_interval, self.ping_timeout).ping_later(self)

    def send_keepalive_ping(self) -> None:
        # uvicorn's, with the pong's deadline kept by the sweep.
        if self.close_sent or self.transport.is_closing():
            return
        # Its payload identifies this ping: handle_pong ignores stale or unsolicited pongs.
        self.pending_ping_payload = struct.pack("!I", random.getrandbits(32))
        self.ping_sent_at = self.loop.time()
        self.conn.send_ping(self.pending_ping_payload)
        self.transport.write(b"".join(self.conn.data_to_send()))
        assert self.ping_interval is not None
        keepalive(self.loop, self.ping_interval, self.ping_timeout).pong_by(self)

    def handle_pong(self, event: Frame) -> None:
        awaited = self.pending_ping_payload
        super().handle_pong(event)  # with no pong_timer, it schedules no ping
        if awaited is not None and self.pending_ping_payload is None:
            assert self.ping_interval is not None
            keepalive(self.loop, self.ping_interval, self.ping_timeout).ponged(self)

    def stop_keepalive(self) -> None:
        super().stop_keepalive()
        found = existing(self.loop, self.ping_interval, self.ping_timeout)
        if found is not None:
            found.discard(self)

    def keepalive_timeout(self) -> None:
        if self.read_paused:
            # The app holds what was read: the pong may be in the socket behind it.
            assert self.ping_interval is not None
            keepalive(self.loop, self.ping_interval, self.ping_timeout).pong_by(self)
            return
        closed = self.close_sent or self.transport.is_closing()
        super().keepalive_timeout()
        self.timed_out = not closed

    def pause_writing(self) -> None:
        self.paused = True
        super().pause_writing()

    def resume_writing(self) -> None:
        self.paused = False
        super().resume_writing()

    def takes_now(self) -> bool:
        """Whether the socket takes a message at once (see ``write_now``)."""
        return not (
            self.paused
            or not self.handshake_complete
            or self.close_sent
            or self.transport.is_closing()
        )

    def write_now(self, payload: bytes) -> bool:
        # Called per peer per message, after accept: takes_now, inline.
        if (
            self.paused
            or self.close_sent
            or not self.handshake_complete
            or self.transport.is_closing()
        ):
            return False
        if len(payload) >= SPREAD_FROM:
            self._hold_parts(frame_header(len(payload)), payload)
            return True
        cache = _cache
        frame = cache.frame if payload is cache.payload else cache.frame_of(payload)
        out = self.out
        if out is None:
            self.out = frame
            # _cork, inline: this runs per socket per pass.
            corked = _corked
            corked.protocols.append(self)
            if corked.loop is not self.loop:
                corked.schedule(self.loop)
        elif isinstance(out, bytes):
            self.out = [out, frame]
        else:
            out.append(frame)
        return True

    def write_parts(self, head: bytes, body: bytes) -> bool:
        """``write_now(head + body)``, with a large ``body`` written as it is."""
        if len(body) < SPREAD_FROM or self.conn.extensions:
            return not self.conn.extensions and self.write_now(head + body)
        if not self.takes_now():
            return False
        self._hold_parts(frame_header(len(head) + len(body)) + head, body)
        return True

    def _hold_parts(self, first: bytes, body: bytes) -> None:
        """Hold a message written as two parts: its frame's start, and ``body``."""
        out = self.out
        if out is None:
            self.out = [first, body]
            self._cork()
        elif isinstance(out, bytes):
            self.out = [out, first, body]
        else:
            out += (first, body)
        self.spread = True

    def _accept(self, message: Any) -> bool:
        """uvicorn's accept (0.54), with the handshake's answer held as the socket's
        first frame: it goes out with the messages the app writes in the same pass
        (a joining peer's first sync messages), in one system call and, for the
        client, one read. False, having done nothing, where uvicorn's own applies:
        an accept out of turn, or a socket already gone or not taking data."""
        if (
            self.handshake_complete
            or self.initial_response is not None
            or self.disconnected
            or not self.writable.is_set()
        ):
            return False
        logger = self.logger
        if logger.isEnabledFor(logging.INFO):
            client, path = get_client_addr(self.scope), get_path_with_query_string(self.scope)
            logger.info('%s - "WebSocket %s" [accepted]', client, path)
        headers = [
            (name.decode("latin-1").lower(), value.decode("latin-1"))
            for name, value in (self.default_headers + list(message.get("headers", [])))
        ]
        subprotocol = message.get("subprotocol")
        if subprotocol:
            headers.append(("Sec-WebSocket-Protocol", subprotocol))
        response = self.response
        del response.headers["Date"]
        response.headers.update(headers)
        if not self.transport.is_closing():
            self.handshake_complete = True
            self.conn.send_response(response)
            self.out = b"".join(self.conn.data_to_send())
            self._cork()
            self.start_keepalive()
        # Only the handshake reads these; the app keeps what it needs.
        self.request = self.response = None  # type: ignore[assignment]
        return True

    def _cork(self) -> None:
        """Have the end-of-pass flush write what ``out`` now holds, its first frames."""
        corked = _corked
        corked.protocols.append(self)
        if corked.loop is not self.loop:
            corked.schedule(self.loop)

    def flush(self) -> None:
        out = self.out
        self.out = None
        if out is None or self.transport.is_closing():
            return
        if isinstance(out, bytes):
            self.transport.write(out)
        elif self.spread:
            self.spread = False
            self.transport.writelines(out)
        else:
            self.transport.write(b"".join(out))

    def shutdown(self) -> None:
        self.flush()
        super().shutdown()

    async def send(self, message: Any) -> None:
        kind = message["type"]
        if kind == "websocket.accept" and self._accept(message):
            return
        self.flush()  # what write_now took goes first
        frames: list[bytes] | None = message.get(FRAMES)
        if frames is None or kind != "websocket.send":
            await super().send(message)
            if kind == "websocket.accept":
                self.request = self.response = None  # type: ignore[assignment]
            elif kind == "websocket.http.response.body" and not message.get("more_body", False):
                # A refusal on the wire ends the handshake too. uvicorn (0.54) leaves the
                # flag unset here, so each refused upgrade also logged "ASGI callable
                # returned without completing handshake" at ERROR (its wsproto protocol
                # sets it; uvicorn PR #3138 does the same for this one).
                self.handshake_complete = True
            return
        await self.writable.wait()
        if self.disconnected:
            raise ClientDisconnected()
        if self.handshake_complete and not self.close_sent:
            for frame in frames:
                self.conn.send_binary(frame)
            self.transport.write(b"".join(self.conn.data_to_send()))
