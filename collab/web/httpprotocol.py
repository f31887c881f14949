"""uvicorn's httptools protocol with a deadline on request headers, which uvicorn
lacks: a client that opens a connection (or starts another request on a kept-alive
one) and does not finish its request's headers within ``header_timeout`` seconds is
closed. Without it, sockets that send half a request line are kept open forever, each
holding a file descriptor (a "slowloris").

The connections still sending their headers are also bounded: past
``max_incomplete``, the one that has waited longest is closed. A client that means to
talk sends its headers in one round trip, so the oldest is the likeliest to be one of
a flood; WebSockets and requests being answered do not count.

Relies on uvicorn's ``HttpToolsProtocol`` calling ``connection_made``,
``on_message_begin`` (httptools' first byte of a request), ``on_headers_complete``
and ``connection_lost``, and on its ``transport`` and ``loop`` attributes.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ..logs import Repeats

log = logging.getLogger("collab.http")


class HeaderDeadlineProtocol(HttpToolsProtocol):
    """Configured by :func:`header_deadline_protocol`, which gives each server its own
    subclass holding that server's settings and its incomplete connections."""

    header_timeout: ClassVar[float]
    max_incomplete: ClassVar[int]
    # The connections whose request headers are incomplete, oldest first.
    incomplete: ClassVar[dict[HeaderDeadlineProtocol, None]]
    dropped: ClassVar[Repeats]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._deadline is None:  # the next request on a kept-alive connection
            self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

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

    def _drop(self, why: str) -> None:
        self._disarm()
        if self.transport.is_closing():
            return
        self.transport.close()
        # A flood of these is one attack: one line per interval says how many.
        logged, unlogged = self.dropped.hit(why)
        if logged:
            client = f"{self.client[0]}:{self.client[1]}" if self.client else "unknown"
            more = f" ({unlogged} more since the last such line)" if unlogged else ""
            log.warning("closed connection from %s: %s%s", client, why, more)


def header_deadline_protocol(
    header_timeout: float, max_incomplete: int
) -> type[HeaderDeadlineProtocol]:
    """A protocol class for one server (uvicorn's ``http=``)."""
    timeout, most = header_timeout, max_incomplete

    class Configured(HeaderDeadlineProtocol):
        header_timeout = timeout
        max_incomplete = most
        incomplete = {}  # noqa: RUF012 (one per server, on purpose)
        dropped = Repeats(interval=10.0)

    return Configured
