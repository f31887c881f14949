"""Where PUT …/content is parsed and written: threads of its own, a bounded number at
once and a bounded number waiting. Hostile Markdown costs markdown-it seconds of CPU a
body, and writing its paragraphs to Yjs more (quadratic in their number); a flood of
such bodies in the default executor would hold the threads that storage's compaction
and the webhook deliverer need, and queue work without end."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from . import change, parse

_T = TypeVar("_T")


class Busy(Exception):
    """Every parser is busy and the queue is full: try again later."""


class Parsers:
    def __init__(self, threads: int, queue: int) -> None:
        self._threads = threads
        self._limit = threads + queue
        self._executor: ThreadPoolExecutor | None = None
        # Counted until the work is done, not until its caller stops waiting: a client
        # that hangs up leaves its parse running, and that parse still takes its place.
        self._lock = threading.Lock()
        self._taken = 0

    @property
    def taken(self) -> int:
        return self._taken

    async def parse(self, format: str, content: object) -> dict[str, Any]:
        """``content.parse`` in a parser's thread."""
        return await self._run(parse, format, content)

    async def change(self, state: bytes, format: str, content: object, mode: str) -> bytes:
        """``content.change`` in a parser's thread."""
        return await self._run(change, state, format, content, mode)

    async def _run(self, work: Callable[..., _T], *args: object) -> _T:
        with self._lock:
            if self._taken >= self._limit:
                raise Busy(f"{self._taken} content bodies are being parsed or waiting")
            self._taken += 1
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self._threads, thread_name_prefix="collab-parse")
        try:
            running = self._executor.submit(work, *args)
        except BaseException:
            self._release(None)
            raise
        running.add_done_callback(self._release)
        return await asyncio.wrap_future(running)

    def _release(self, _work: Future[Any] | None) -> None:
        with self._lock:
            self._taken -= 1

    def close(self) -> None:
        """Drops the waiting parses; the running ones finish in their threads."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
