"""The keepalive pings of every socket of an event loop, on one timer.

uvicorn arms a timer per socket for its next ping, then one for its pong's deadline:
an asyncio TimerHandle and a libuv timer, over 500 bytes for each of thousands of
sockets that mostly sit idle. Every socket of a server waits the same interval for its
next ping and the same timeout for its pong, so the sockets become due in the order they
were armed: two insertion-ordered dicts, socket -> when, hold them, the first entry of
each is the next due, and one timer for the earlier of the two serves them all.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

# A timer may fire a little before its time (uvloop counts in milliseconds): what is
# due that soon is served with it, rather than re-arming for a fraction of a millisecond.
EARLY = 0.001

Key = tuple[asyncio.AbstractEventLoop, float, float | None]


class Pinged(Protocol):
    def send_keepalive_ping(self) -> None: ...

    def keepalive_timeout(self) -> None: ...


class Keepalive:
    """The sockets of one loop, ping interval and pong timeout."""

    __slots__ = ("at", "interval", "key", "loop", "pings", "pongs", "timeout", "timer")

    def __init__(self, key: Key) -> None:
        self.key = key
        self.loop, self.interval, self.timeout = key
        self.pings: dict[Pinged, float] = {}  # socket -> when its next ping is due
        self.pongs: dict[Pinged, float] = {}  # socket -> when its pong is overdue
        self.timer: asyncio.TimerHandle | None = None
        self.at = 0.0  # when the timer fires, if it is armed

    def ping_later(self, socket: Pinged) -> None:
        """Ping the socket an interval from now."""
        self._add(self.pings, socket, self.loop.time() + self.interval)

    def pong_by(self, socket: Pinged) -> None:
        """Time the socket out if discard or ponged has not been called within the timeout
        (or, with no timeout, ping it again an interval from now)."""
        if self.timeout is None:
            self.ping_later(socket)
        else:
            self._add(self.pongs, socket, self.loop.time() + self.timeout)

    def ponged(self, socket: Pinged) -> None:
        """The socket answered its ping: the next one is due an interval from now."""
        if self.pongs.pop(socket, None) is not None:
            self.ping_later(socket)

    def discard(self, socket: Pinged) -> None:
        self.pings.pop(socket, None)
        self.pongs.pop(socket, None)
        if not self.pings and not self.pongs:
            if self.timer is not None:
                self.timer.cancel()
                self.timer = None
            _keepalives.pop(self.key, None)

    def _add(self, due: dict[Pinged, float], socket: Pinged, when: float) -> None:
        due.pop(socket, None)  # to the end: what is added last is due last
        due[socket] = when
        if self.timer is None or when < self.at:
            self._arm(when)

    def _arm(self, when: float) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.at = when
        self.timer = self.loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self.timer = None
        now = self.loop.time() + EARLY
        # Each callback may add its socket again, at the end: what is due is listed first.
        for socket in _due(self.pongs, now):
            del self.pongs[socket]
            socket.keepalive_timeout()
        for socket in _due(self.pings, now):
            del self.pings[socket]
            socket.send_keepalive_ping()
        first = [next(iter(due.values())) for due in (self.pings, self.pongs) if due]
        if first:
            if self.timer is None or min(first) < self.at:
                self._arm(min(first))
        else:
            _keepalives.pop(self.key, None)


def _due(due: dict[Pinged, float], now: float) -> list[Pinged]:
    sockets = []
    for socket, when in due.items():
        if when > now:
            break
        sockets.append(socket)
    return sockets


# One per event loop and settings, while it has sockets: a server's pings stop with it.
_keepalives: dict[Key, Keepalive] = {}


def keepalive(loop: asyncio.AbstractEventLoop, interval: float, timeout: float | None) -> Keepalive:
    key = (loop, interval, timeout)
    found = _keepalives.get(key)
    if found is None:
        found = _keepalives[key] = Keepalive(key)
    return found


def existing(
    loop: asyncio.AbstractEventLoop, interval: float | None, timeout: float | None
) -> Keepalive | None:
    if interval is None:
        return None
    return _keepalives.get((loop, interval, timeout))
