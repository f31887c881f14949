"""The process's health in one place: ``/readyz``, the metrics and the sockets'
readers all read this state, so they cannot disagree.

The database is unhealthy while its last ping failed (pinged every
``PING_INTERVAL`` seconds and by every readiness probe), while writes fail, or while
writes are behind: the oldest accepted update not yet written is older than
``max_write_lag``. Writes stay behind until that age is back under half the limit,
so that a lag hovering at the limit does not flap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

log = logging.getLogger("collab.health")

SAMPLE_INTERVAL = 0.1  # seconds between samples of the write lag (it costs O(rooms))
PING_INTERVAL = 2.0  # seconds between pings of the database
PING_TIMEOUT = 2.0


class Writes(Protocol):
    """What health reads of the write-behind persistence."""

    healthy: bool  # False while writes fail
    last_error: str

    def write_lag(self) -> float: ...


class Health:
    def __init__(
        self,
        writes: Writes,
        ping: Callable[[], Awaitable[None]],
        *,
        max_write_lag: float,
    ) -> None:
        self.writes = writes
        self._ping = ping
        self.max_write_lag = max_write_lag
        self.database_error = ""  # why the last ping failed; empty while it answers
        self.write_lag = 0.0  # as last sampled
        # Writes are behind: the readers of sockets hold writers' changes until they
        # catch up. Read per message: an attribute, not a computation.
        self.behind = False
        self._waiters: list[asyncio.Future[None]] = []
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def database_healthy(self) -> bool:
        return not self.database_error and self.writes.healthy and not self.behind

    def problems(self) -> dict[str, str]:
        """What is failing, by part; empty while the database is healthy."""
        failing: dict[str, str] = {}
        if self.database_error:
            failing["database"] = self.database_error
        elif not self.writes.healthy:
            failing["database"] = f"writes failing: {self.writes.last_error}"
        if self.behind:
            failing["write_lag"] = (
                f"the oldest unwritten update was accepted {self.write_lag:.1f} s ago "
                f"(COLLAB_MAX_WRITE_LAG={self.max_write_lag})"
            )
        return failing

    def sample(self) -> None:
        """Read the write lag, and wake whoever waits for the next sample."""
        lag = self.write_lag = self.writes.write_lag()
        if not self.behind and lag > self.max_write_lag:
            self.behind = True
            log.warning(
                "database writes are behind: the oldest unwritten update was accepted "
                "%.1f s ago (COLLAB_MAX_WRITE_LAG=%s); writers' changes are not read until "
                "writes catch up",
                lag,
                self.max_write_lag,
            )
        elif self.behind and lag < self.max_write_lag / 2:
            self.behind = False
            log.warning("database writes caught up (%.1f s behind); reading changes again", lag)
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def next_sample(self) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        await waiter

    async def check_database(self) -> None:
        """Ping the database and keep the answer."""
        try:
            await asyncio.wait_for(self._ping(), PING_TIMEOUT)
        except Exception as exc:
            error = _describe(exc)
            if not self.database_error:
                log.warning("the database does not answer: %s", error)
            self.database_error = error
        else:
            if self.database_error:
                log.warning("the database answers again")
            self.database_error = ""

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._every(SAMPLE_INTERVAL, self._sample), name="collab-lag"),
            loop.create_task(self._every(PING_INTERVAL, self.check_database), name="collab-ping"),
        ]

    async def stop(self) -> None:
        # A ping in flight finishes (within its timeout) rather than being cancelled
        # inside the driver.
        self._stopping.set()
        await asyncio.gather(*self._tasks)
        self._tasks = []

    async def _sample(self) -> None:
        self.sample()

    async def _every(self, seconds: float, check: Callable[[], Awaitable[None]]) -> None:
        while not self._stopping.is_set():
            await check()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), seconds)


def _describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text.splitlines()[0][:200]
