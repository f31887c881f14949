"""uvicorn's httptools protocol with a deadline on request headers, which uvicorn
lacks: a client that opens a connection (or starts another request on a kept-alive
one) and does not finish its request's headers within ``header_timeout`` seconds is
closed. Without it, sockets that send half a request line are kept open forever, each
holding a file descriptor (a "slowloris").

The connections still sending their headers are also bounded: past
``max_incomplete``, the one that has waited longest is closed. A client that means to
talk sends its headers in one round trip, so the oldest is the likeliest to be one of
a flood; WebSockets and requests being answered do not count.

So is the size of a request's headers, which uvicorn and httptools keep in memory
however large they grow: past ``max_header_bytes`` the request is answered 431 and
the connection closed. And a WebSocket upgrade that the websockets library refuses
to parse (past its own bounds: 128 header lines, 8 KiB a line) is answered 431 or 400
and closed, where uvicorn would leave the socket open and unanswered.

Relies on uvicorn's ``HttpToolsProtocol`` calling ``connection_made``,
``on_message_begin`` (httptools' first byte of a request), ``on_headers_complete``,
``data_received``, ``handle_websocket_upgrade`` (which hands the socket to the
WebSocket protocol and feeds it the request) and ``connection_lost``, on its
``transport`` and ``loop`` attributes, and on the WebSocket protocol's
``handshake_initiated`` (set once its handshake request is parsed).
"""

from __future__ import annotations

import asyncio
import logging
from http import HTTPStatus
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from websockets.exceptions import SecurityError, TooManyHeaders

from ..logs import Repeats

log = logging.getLogger("collab.http")


class HeaderDeadlineProtocol(HttpToolsProtocol):
    """Configured by :func:`header_deadline_protocol`, which gives each server its own
    subclass holding that server's settings and its incomplete connections."""

    header_timeout: ClassVar[float]
    max_incomplete: ClassVar[int]
    max_header_bytes: ClassVar[int]
    # The connections whose request headers are incomplete, oldest first.
    incomplete: ClassVar[dict[HeaderDeadlineProtocol, None]]
    dropped: ClassVar[Repeats]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._begun = 0  # requests begun on this connection
        self._header_bytes = 0  # the request's URL and the headers that ended
        self._unended = 0  # bytes of chunks wholly within the request's headers

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        self._begun += 1
        self._header_bytes = self._unended = 0
        super().on_message_begin()
        if self._deadline is None:  # the next request on a kept-alive connection
            self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def data_received(self, data: bytes) -> None:
        begun = self._begun
        within = self._deadline is not None  # in a request's headers
        super().data_received(data)
        if within and self._begun == begun and self._deadline is not None:
            # All of it went to the same request's headers. httptools hands a header
            # over only once it ends, so _count cannot see one that grows and grows:
            # these bytes, a lower bound of the headers' size, can.
            self._unended += len(data)
            if self._unended > self.max_header_bytes and not self.transport.is_closing():
                self._too_large()

    def send_400_response(self, msg: str) -> None:
        if self._header_bytes > self.max_header_bytes:
            self._too_large()  # what _count raised
        else:
            super().send_400_response(msg)

    def _count(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > self.max_header_bytes:
            raise _HeadersTooLarge  # out of the parser, to send_400_response

    def _too_large(self) -> None:
        limit = self.max_header_bytes
        answer = _answer(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, f"headers over {limit} bytes")
        self._drop(f"request headers over {limit} bytes", answer)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def handle_websocket_upgrade(self) -> None:
        super().handle_websocket_upgrade()
        # The socket is the WebSocket protocol's now, and this one hears nothing more
        # (no connection_lost, which would drop the parser): without its parser, which
        # refers back to it, it is freed at once, not by the next full collection
        # (a connection's worth of objects, kept for minutes by a server whose full
        # collections are rare).
        self.parser = None  # type: ignore[assignment]
        upgraded = self.transport.get_protocol()
        if not upgraded.handshake_initiated and not self.transport.is_closing():  # type: ignore[attr-defined]
            # websockets refused to parse the request: uvicorn sends nothing.
            refused = upgraded.conn.handshake_exc  # type: ignore[attr-defined]
            refused = getattr(refused, "__cause__", None) or refused  # as websockets < 17
            if isinstance(refused, SecurityError):  # over one of its bounds
                status = HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE
                many = isinstance(refused, TooManyHeaders)
                why = "too many header lines" if many else "a line too long"
            else:  # its words may quote the request
                status, why = HTTPStatus.BAD_REQUEST, "malformed WebSocket request"
            self._drop(f"WebSocket upgrade refused: {why}", _answer(status, why))

    def _arm(self) -> None:
        incomplete = self.incomplete
        while len(incomplete) >= self.max_incomplete:
            oldest = next(iter(incomplete))
            oldest._drop(f"over {self.max_incomplete} connections sending their headers")
        self._deadline = self.loop.call_later(
            self.header_timeout, self._drop, f"no complete headers in {self.header_timeout:g} s"
        )
        incomplete[self] = None

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self.incomplete.pop(self, None)

    def _drop(self, why: str, answer: bytes = b"") -> None:
        """Close the connection, after ``answer`` (an HTTP response), and log ``why``."""
        self._disarm()
        if self.transport.is_closing():
            return
        if answer:
            self.transport.write(answer)
        self.transport.close()
        # A flood of these is one attack: one line per interval says how many.
        logged, unlogged = self.dropped.hit(why)
        if logged:
            client = f"{self.client[0]}:{self.client[1]}" if self.client else "unknown"
            more = f" ({unlogged} more since the last such line)" if unlogged else ""
            log.warning("closed connection from %s: %s%s", client, why, more)


class _HeadersTooLarge(Exception):
    pass


def _answer(status: HTTPStatus, text: str) -> bytes:
    body = f"{text}\n".encode()
    return (
        f"HTTP/1.1 {status.value} {status.phrase}\r\n"
        "content-type: text/plain; charset=utf-8\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    ).encode() + body


def header_deadline_protocol(
    header_timeout: float, max_incomplete: int, max_header_bytes: int
) -> type[HeaderDeadlineProtocol]:
    """A protocol class for one server (uvicorn's ``http=``)."""
    timeout, most, largest = header_timeout, max_incomplete, max_header_bytes

    class Configured(HeaderDeadlineProtocol):
        header_timeout = timeout
        max_incomplete = most
        max_header_bytes = largest
        incomplete = {}  # noqa: RUF012 (one per server, on purpose)
        dropped = Repeats(interval=10.0)

    return Configured
