"""Token buckets: a rate with a burst, refilled lazily on each charge."""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBucket:
    """A charge is always taken, and may leave the bucket in debt: the caller then
    waits out the debt before taking more (the wait a sender is slowed by)."""

    __slots__ = ("_clock", "_level", "_stamp", "capacity", "rate")

    def __init__(
        self, rate: float, capacity: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.capacity = capacity
        self._clock = clock
        self._level = capacity
        self._stamp = clock()

    def charge(self, amount: float = 1.0) -> float:
        """Take ``amount``; the seconds until the bucket is out of debt (0.0 within
        budget)."""
        now = self._clock()
        level = min(self.capacity, self._level + (now - self._stamp) * self.rate) - amount
        self._level = level
        self._stamp = now
        return 0.0 if level >= 0 else -level / self.rate
