"""Gates for the tests of large updates: a wrapper of one of the server's functions
that holds its calls on a large input until the test opens it, and records the thread
each call ran in."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from collab import yupdate
from collab.workers import OFF_LOOP_BYTES, THREAD_PREFIX

from .support import eventually

BIG = "lorem ipsum " * (OFF_LOOP_BYTES // 12 + 1000)  # one update past the threshold

WORKER = "worker"


class Gate:
    """Wraps a function of the server's: records the thread of each call on a large
    input and, while closed, holds those calls there. A worker thread is recorded as
    ``WORKER``, whichever of them it is."""

    def __init__(self, size: Callable[..., int]) -> None:
        self.size = size
        self.open = threading.Event()
        self.entered = threading.Event()
        self.small_threads: set[str] = set()
        self.large_threads: list[str] = []

    def wrap(self, real: Callable[..., Any]) -> Callable[..., Any]:
        def gated(*args: Any, **kwargs: Any) -> Any:
            name = threading.current_thread().name
            if name.startswith(THREAD_PREFIX):
                name = WORKER
            if self.size(*args) < OFF_LOOP_BYTES:
                self.small_threads.add(name)
                return real(*args, **kwargs)
            self.large_threads.append(name)
            self.entered.set()
            if not self.open.wait(30):
                raise AssertionError("the gate was never opened")
            return real(*args, **kwargs)

        return gated

    async def wait_entered(self) -> None:
        await eventually(self.entered.is_set, 20, "a large update's check to start")


@pytest.fixture
def inspect_gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[Gate]:
    gate = Gate(lambda update, max_depth: len(update))
    monkeypatch.setattr(yupdate, "inspect", gate.wrap(yupdate.inspect))
    yield gate
    gate.open.set()
