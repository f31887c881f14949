"""Logging set-up: plain text by default, one JSON object per line on request."""

from __future__ import annotations

import datetime
import json
import logging
import sys
import time
from collections.abc import Callable, Hashable
from typing import Any

# Attributes every LogRecord has; anything else was passed in ``extra``.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def timestamp(record: logging.LogRecord) -> str:
    """RFC 3339 in UTC, to the millisecond: ``2026-12-01T11:32:26.123Z``."""
    moment = datetime.datetime.fromtimestamp(record.created, datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return timestamp(record)


class JsonFormatter(logging.Formatter):
    """One object per line: ``time``, ``level``, ``logger``, ``message``, and the
    fields the call passed in ``extra`` (``doc``, ``peer``, ``client``, ``code``…)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure(level: str, fmt: str) -> None:
    # Neither format shows where a line was logged from, nor its thread or process:
    # a record need not find them out (the logging HOWTO's "Optimization"). Finding
    # the caller walks the stack: with the rest, it was half of what a line cost
    # (29 -> 16 us for a sync connection's open line, and collab logs one per
    # connection).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    # uvicorn logs every accepted WebSocket at info, alembic its set-up steps, and
    # redis-py each connection's set-up, httpx each webhook request; collab logs its
    # own line for each of these.
    quiet = (
        "uvicorn.error",
        "alembic.runtime.plugins",
        "alembic.runtime.migration",
        "aiosqlite",
        "redis",
        "httpx",
        "httpcore",
    )
    for name in quiet:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))


class Repeats:
    """Events that repeat, counted by kind, so that a flood of one kind logs one line
    per ``interval`` instead of one per event: :meth:`hit` says whether this one is
    to be logged in full (the first of its kind in an interval) and how many went
    unlogged since the last that was."""

    def __init__(
        self,
        interval: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_kinds: int = 1024,
    ) -> None:
        self.interval = interval
        self._clock = clock
        self._max_kinds = max_kinds
        self._kinds: dict[Hashable, tuple[float, int]] = {}  # kind -> (logged at, unlogged)

    def hit(self, kind: Hashable) -> tuple[bool, int]:
        now = self._clock()
        seen = self._kinds.get(kind)
        if seen is not None and now - seen[0] < self.interval:
            self._kinds[kind] = (seen[0], seen[1] + 1)
            return False, seen[1] + 1
        self._kinds.pop(kind, None)
        if len(self._kinds) >= self._max_kinds:
            # Forget the kinds logged longest ago (they may be logged in full again).
            for old in list(self._kinds)[: len(self._kinds) // 2 + 1]:
                del self._kinds[old]
        self._kinds[kind] = (now, 0)
        return True, seen[1] if seen is not None else 0
