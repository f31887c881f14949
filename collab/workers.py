"""The pure-Python passes over a large update, in worker threads.

Every room of a process is served by one event loop. The checks of an update that read
only its bytes (``yupdate.inspect``, the depths of the shared types it creates) and the
merge of a batch for group commit cost about 90-250 ns a byte in Python: 0.8-2 s for
an 8 MiB message, during which no other room would be served. From ``OFF_LOOP_BYTES``
on they run in one of a few threads of their own: the interpreter hands the GIL back to
the loop every switch interval (5 ms), so the loop goes on serving the other rooms.
Below it the work takes less than one switch interval, so a thread would not shorten
the loop's wait and would only add a hop to the keystrokes' path. What reads the
document (yrs, holding the GIL) stays on the loop, after the thread, in order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

_T = TypeVar("_T")

# 64 KiB: ~5 ms of yupdate.inspect on the worst case (many small structs), one switch
# interval; a keystroke's update is 20-100 bytes, a pasted page a few KiB.
OFF_LOOP_BYTES = 64 * 1024
# Threads share the GIL: more would not check faster, two keep one large update from
# waiting behind another.
THREADS = 2
THREAD_PREFIX = "collab-work"


class Workers:
    """Threads for large updates' pure-Python work, created on first use."""

    def __init__(self, threads: int = THREADS, above: int = OFF_LOOP_BYTES) -> None:
        self.above = above
        self._threads = threads
        self._executor: ThreadPoolExecutor | None = None

    def large(self, size: int) -> bool:
        """Whether work on ``size`` bytes goes to a thread."""
        return size >= self.above

    async def run(self, work: Callable[[], _T]) -> _T:
        """``work()`` in a worker thread; what it raises is raised here."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self._threads, thread_name_prefix=THREAD_PREFIX)
        return await asyncio.get_running_loop().run_in_executor(self._executor, work)

    def close(self) -> None:
        """Lets the running work finish in its thread; nothing waits for it."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
