"""One connected peer: its send queue, its writer task and its lifecycle."""

from __future__ import annotations

import asyncio
import enum
import itertools
import logging
import time
from collections.abc import Callable
from typing import Protocol

from .closecodes import REASONS, CloseCode

log = logging.getLogger("collab.peer")

_ids = itertools.count(1)


class Transport(Protocol):
    """What the core needs of a socket; the web layer adapts a real one."""

    # Hand a message to the socket at once if it takes it without waiting (it is
    # written in this pass of the event loop); False if it cannot (then ``send`` is
    # awaited instead).
    write_now: Callable[[bytes], bool]

    def write_parts(self, head: bytes, body: bytes) -> bool:
        """``write_now(head + body)``, where the socket may write ``body`` as it is."""

    async def send(self, frame: bytes) -> None: ...

    async def send_many(self, frames: list[bytes]) -> None:
        """Send several messages, in order: in one write where the server allows it."""

    async def close(self, code: int, reason: str) -> None: ...

    def abort(self) -> None:
        """Drop the connection without a closing handshake (its writes are stuck)."""


class PeerState(enum.Enum):
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


class Departure(enum.Enum):
    """Which end closed a peer's connection."""

    CLIENT = "client"  # the client closed it, or the connection dropped
    SERVER = "server"  # collab or the server under it, with ``close_code``
    TIMEOUT = "timeout"  # the client stopped answering pings


_OPEN = PeerState.OPEN  # read per peer per message


class IllegalTransition(RuntimeError):
    pass


class Peer:
    """Frames are sent without awaiting, in order.

    While nothing is queued, a frame goes straight to the socket if it takes it
    without waiting; otherwise it is queued, and a writer task, which lives only while
    there is a queue, writes it. A peer whose queue outgrows its bounds is closed with
    1013 rather than having frames dropped: its client reconnects and resynchronises.
    """

    __slots__ = (
        "_max_bytes",
        "_max_messages",
        "_queue",
        "_queued",
        "_queued_bytes",
        "_sending",
        "_transport",
        "_write_now",
        "_writer",
        "bytes_sent",
        "can_write",
        "client",
        "close_code",
        "close_reason",
        "departure",
        "frames_sent",
        "id",
        "opened_at",
        "state",
        "user",
    )

    def __init__(
        self,
        transport: Transport,
        *,
        client: str = "",
        user: str = "",
        can_write: bool = True,
        max_messages: int = 4096,
        max_bytes: int = 32 * 1024 * 1024,
    ) -> None:
        self.id = next(_ids)
        self.client = client
        self.user = user  # who the grant names
        self.can_write = can_write
        self.state = PeerState.OPEN
        self.close_code: int | None = None
        self.close_reason = ""
        self.departure: Departure | None = None
        self.opened_at = time.monotonic()
        self.frames_sent = 0
        self.bytes_sent = 0
        self._transport = transport
        self._write_now = transport.write_now
        # A list the writer swaps out whole, rather than a deque: an idle peer's empty
        # list is 56 bytes, a deque's first block over 600. The counts include the
        # frames the writer has taken but not sent yet.
        self._queue: list[bytes] = []
        self._queued = 0
        self._queued_bytes = 0
        self._max_messages = max_messages
        self._max_bytes = max_bytes
        self._sending = False
        self._writer: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"<Peer {self.id} {self.client} {self.state.value}>"

    @property
    def queued(self) -> int:
        return self._queued

    def send(self, frame: bytes) -> None:
        if self.state is not _OPEN:
            return
        if not self._queued and self._write_now(frame):
            self.frames_sent += 1
            self.bytes_sent += len(frame)
            return
        self._queue.append(frame)
        self._queued += 1
        self._queued_bytes += len(frame)
        if self._queued > self._max_messages or self._queued_bytes > self._max_bytes:
            log.warning(
                "peer %s too slow: %d frames / %d bytes queued, closing",
                self.id,
                self._queued,
                self._queued_bytes,
                extra={"peer": self.id, "client": self.client},
            )
            self.close(CloseCode.TRY_AGAIN_LATER)
            return
        self._start_writer()

    def send_parts(self, head: bytes, body: bytes) -> None:
        """``send(head + body)``, with ``body`` not copied when the socket takes the
        message at once: a whole document, to a peer that joins."""
        if self.state is _OPEN and not self._queued and self._transport.write_parts(head, body):
            self.frames_sent += 1
            self.bytes_sent += len(head) + len(body)
            return
        self.send(head + body)

    def close(self, code: int, reason: str | None = None) -> None:
        """Ask the writer to close the socket after what it is writing now."""
        if self.state is not PeerState.OPEN:
            return
        self._transition(PeerState.OPEN, PeerState.CLOSING)
        self.close_code = code
        self.close_reason = reason if reason is not None else _reason(code)
        self.departure = Departure.SERVER
        self._queue.clear()
        self._queued = 0
        self._queued_bytes = 0
        if self._sending and self._writer is not None:
            # Only a socket that stopped reading keeps a send pending while other
            # code runs; a close frame could not get through either.
            self._writer.cancel()
            self._transport.abort()
        else:
            self._start_writer()

    def disconnected(
        self, code: int, reason: str = "", departure: Departure = Departure.CLIENT
    ) -> None:
        """The connection is gone; nothing more can be written. ``departure`` says who
        closed it when it was not this peer: the client, or the server under the socket
        (at its shutdown, or on a frame it could not parse) with ``code`` and ``reason``."""
        if self.state is PeerState.OPEN:
            self._transition(PeerState.OPEN, PeerState.CLOSING)
            self.close_code = code
            self.departure = departure
            if departure is Departure.CLIENT:
                self.close_reason = "closed by client"
            else:
                self.close_reason = reason or _reason(code)
        if self._writer is not None:
            self._writer.cancel()

    async def wait_closed(self) -> None:
        writer = self._writer
        if writer is not None:
            try:
                await writer
            except asyncio.CancelledError:
                if not writer.cancelled():
                    raise
        self.state = PeerState.CLOSED

    def _start_writer(self) -> None:
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._write_loop())

    async def _write_loop(self) -> None:
        transport = self._transport
        try:
            while self._queue and self.state is PeerState.OPEN:
                # Everything queued goes out at once: a peer that fell behind costs
                # one write for all its frames, not one each.
                # Frames count against the bounds until they are written.
                batch, self._queue = self._queue, []
                size = sum(map(len, batch))
                self._sending = True
                if len(batch) == 1:
                    await transport.send(batch[0])
                else:
                    await transport.send_many(batch)
                self._sending = False
                self._queued -= len(batch)
                self._queued_bytes -= size
                self.frames_sent += len(batch)
                self.bytes_sent += size
        except OSError as exc:
            log.debug("peer %s: send failed: %s", self.id, exc)
            self.close(CloseCode.GOING_AWAY, "connection lost")
            return
        if self.state is PeerState.OPEN:
            self._writer = None  # the queue is written: frames go straight out again
            return
        code = self.close_code if self.close_code is not None else CloseCode.NORMAL
        try:
            await transport.close(code, self.close_reason)
        except OSError as exc:
            log.debug("peer %s: close failed: %s", self.id, exc)

    def _transition(self, expected: PeerState, new: PeerState) -> None:
        if self.state is not expected:
            raise IllegalTransition(
                f"peer {self.id} is {self.state.value}, expected {expected.value}"
            )
        self.state = new


def _reason(code: int) -> str:
    try:
        return REASONS[CloseCode(code)]
    except ValueError:
        return ""
