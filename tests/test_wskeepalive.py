"""The keepalive sweep: one timer for every socket of a loop, each socket pinged at its
interval and timed out on its own."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from collab.web.wskeepalive import existing, keepalive


class _Timer:
    def __init__(self, when: float, callback: Any) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class _Loop:
    """A clock the test moves, and the timers armed on it."""

    def __init__(self) -> None:
        self.now = 0.0
        self.timers: list[_Timer] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Any) -> _Timer:
        timer = _Timer(when, callback)
        self.timers.append(timer)
        return timer

    def armed(self) -> list[_Timer]:
        return [timer for timer in self.timers if not timer.cancelled]

    def advance(self, until: float) -> None:
        """Run the timers due by then, in order, as the clock reaches each."""
        while True:
            due = sorted((t for t in self.armed() if t.when <= until), key=lambda t: t.when)
            if not due:
                break
            timer = due[0]
            self.timers.remove(timer)
            self.now = max(self.now, timer.when)
            timer.callback()
        self.now = until


class _Socket:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        answers: bool,
        interval: float = 1.0,
        timeout: float = 0.5,
    ) -> None:
        self.loop = loop
        self.answers = answers
        self.interval = interval
        self.timeout = timeout
        self.pings: list[float] = []
        self.timed_out_at: float | None = None

    def send_keepalive_ping(self) -> None:
        self.pings.append(self.loop.time())
        keepalive(self.loop, self.interval, self.timeout).pong_by(self)
        if self.answers:
            keepalive(self.loop, self.interval, self.timeout).ponged(self)

    def keepalive_timeout(self) -> None:
        self.timed_out_at = self.loop.time()
        keepalive(self.loop, self.interval, self.timeout).discard(self)


def test_many_sockets_share_one_timer_and_only_the_silent_one_times_out() -> None:
    fake = _Loop()
    loop = cast(asyncio.AbstractEventLoop, fake)
    sockets = [_Socket(loop, answers=i != 7) for i in range(100)]
    for i, socket in enumerate(sockets):
        fake.now = i / 100  # accepted one after the other
        keepalive(loop, 1.0, 0.5).ping_later(socket)
    assert len(fake.armed()) == 1
    fake.advance(3.995)
    assert len(fake.armed()) == 1
    silent = sockets[7]
    assert silent.pings == pytest.approx([1.07])
    assert silent.timed_out_at == pytest.approx(1.57)
    for i, socket in enumerate(sockets):
        if socket is not silent:
            assert socket.timed_out_at is None
            # pinged an interval after each pong (here, at once)
            assert socket.pings == pytest.approx([1 + i / 100, 2 + i / 100, 3 + i / 100])


def test_a_socket_that_goes_is_forgotten_and_the_last_one_stops_the_timer() -> None:
    fake = _Loop()
    loop = cast(asyncio.AbstractEventLoop, fake)
    first, second = _Socket(loop, answers=True), _Socket(loop, answers=True)
    keepalive(loop, 1.0, 0.5).ping_later(first)
    keepalive(loop, 1.0, 0.5).ping_later(second)
    sweep = existing(loop, 1.0, 0.5)
    assert sweep is not None
    sweep.discard(first)
    sweep.discard(first)  # twice, or a socket it never had: nothing to do
    sweep.ponged(first)  # a pong it did not wait for
    fake.advance(1.5)
    assert first.pings == []
    assert second.pings == [1.0]
    sweep.discard(second)
    assert fake.armed() == []
    assert existing(loop, 1.0, 0.5) is None
    assert existing(loop, None, 0.5) is None


def test_a_socket_due_before_the_armed_timer_re_arms_it_earlier() -> None:
    fake = _Loop()
    loop = cast(asyncio.AbstractEventLoop, fake)
    # A pong's timeout longer than the interval: the timer waits for the silent
    # socket's deadline (1.3) when a socket accepted later is due sooner (0.8).
    silent = _Socket(loop, answers=False, interval=0.3, timeout=1.0)
    keepalive(loop, 0.3, 1.0).ping_later(silent)
    fake.advance(0.5)
    assert silent.pings == pytest.approx([0.3])
    joined = _Socket(loop, answers=True, interval=0.3, timeout=1.0)
    keepalive(loop, 0.3, 1.0).ping_later(joined)
    fake.advance(1.0)
    assert joined.pings == pytest.approx([0.8])
    fake.advance(1.45)
    assert silent.timed_out_at == pytest.approx(1.3)
    assert joined.pings == pytest.approx([0.8, 1.1, 1.4])
    keepalive(loop, 0.3, 1.0).discard(joined)
    assert fake.armed() == []
