"""Unit tests of the hook machinery: the change debouncer and the bounded runner."""

from __future__ import annotations

import asyncio
import logging

import pytest

from collab.hooks import ChangeDebouncer, DocumentChanged, HookFailed, HookRunner, Hooks


class Calls:
    def __init__(self, hold: float = 0.0) -> None:
        self.events: list[tuple[float, DocumentChanged]] = []
        self.hold = hold
        self.running: set[str] = set()
        self.overlapped = False  # two calls for one document at once

    async def __call__(self, event: DocumentChanged) -> None:
        self.overlapped |= event.doc_id in self.running
        self.running.add(event.doc_id)
        self.events.append((asyncio.get_running_loop().time(), event))
        await asyncio.sleep(self.hold)
        self.running.discard(event.doc_id)


async def test_one_call_for_a_burst_after_it_goes_quiet() -> None:
    calls = Calls()
    changes = ChangeDebouncer(calls, debounce=0.2, max_wait=5)
    start = asyncio.get_running_loop().time()
    for origin in ("alice", "bob", "alice"):
        changes.changed("doc", origin)
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.4)
    assert len(calls.events) == 1
    at, event = calls.events[0]
    assert event == DocumentChanged("doc", 3, frozenset({"alice", "bob"}))
    assert at - start >= 0.1 + 0.2  # the last change, then the quiet spell


async def test_a_steady_stream_is_reported_every_max_wait() -> None:
    calls = Calls()
    changes = ChangeDebouncer(calls, debounce=0.2, max_wait=0.3)
    start = asyncio.get_running_loop().time()
    for _ in range(20):  # a change every 50 ms for a second: never quiet
        changes.changed("doc", "alice")
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)
    times = [at - start for at, _ in calls.events]
    assert 0.3 <= times[0] < 0.6
    assert len(calls.events) >= 3
    assert sum(event.updates for _, event in calls.events) == 20


async def test_documents_are_debounced_apart_and_calls_never_overlap() -> None:
    calls = Calls(hold=0.3)
    changes = ChangeDebouncer(calls, debounce=0.05, max_wait=0.1)
    changes.changed("a", "x")
    changes.changed("b", "y")
    await asyncio.sleep(0.1)
    changes.changed("a", "z")  # while a's call runs: waits for it
    await asyncio.sleep(0.8)
    assert not calls.overlapped
    by_doc = [(e.doc_id, e.origins) for _, e in calls.events]
    assert by_doc.count(("a", frozenset({"x"}))) == 1
    assert by_doc.count(("b", frozenset({"y"}))) == 1
    assert by_doc.count(("a", frozenset({"z"}))) == 1
    a_times = [at for at, e in calls.events if e.doc_id == "a"]
    assert a_times[1] - a_times[0] >= 0.3


async def test_flush_reports_what_is_pending() -> None:
    calls = Calls()
    changes = ChangeDebouncer(calls, debounce=60, max_wait=60)
    changes.changed("doc", "alice")
    await changes.flush()
    assert [e for _, e in calls.events] == [DocumentChanged("doc", 1, frozenset({"alice"}))]


async def test_runner_bounds_and_logs_failing_hooks(caplog: pytest.LogCaptureFixture) -> None:
    runner = HookRunner(Hooks(), timeout=0.1)

    async def raises() -> None:
        raise ValueError("the host's bug")

    async def hangs() -> None:
        await asyncio.sleep(60)

    with caplog.at_level(logging.ERROR, "collab.hooks"):
        with pytest.raises(HookFailed):
            await runner.call("on_change", raises())
        with pytest.raises(HookFailed):
            await runner.call("on_change", hangs())
    assert "hook on_change raised ValueError" in caplog.text
    assert "hook on_change ran past 0.1 s" in caplog.text
    assert runner.failures == 2


async def test_runner_drops_notifications_past_its_bound() -> None:
    started = asyncio.Event()

    async def hangs(event: object) -> None:
        started.set()
        await asyncio.sleep(60)

    runner = HookRunner(Hooks(on_load=hangs), timeout=30, max_running=2)
    for _ in range(5):
        runner.notify("on_load", object())
    await started.wait()
    assert runner.dropped == 3
    await runner.close(asyncio.get_running_loop().time())


def test_hooks_refuse_what_is_not_callable() -> None:
    with pytest.raises(TypeError):
        Hooks(on_change="index")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="change_debounce"):
        Hooks(change_debounce=5, change_max_wait=1)
