"""The loss window under load: every accepted update reaches the database within the
flush interval plus one write, however busy the room; a flush is one row; a kill -9
loses nothing older than that; a visited document that was never edited stores nothing."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import time
from collections.abc import Sequence
from typing import Any

import httpx
import pytest
from pycrdt import Doc, Text
from sqlalchemy import select
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from collab import protocol
from collab.persistence import Persistence
from collab.room import Room
from collab.schema import updates as updates_table
from collab.sqlstore import SqlStore, create_engine
from collab.state import build_doc

from .conftest import ServerFactory
from .support import CollabServer, eventually
from .yclient import YClient

pytestmark = pytest.mark.timing


def _keystrokes(count: int) -> list[bytes]:
    source: Doc[Any] = Doc()
    text = source.get("text", type=Text)
    updates: list[bytes] = []
    source.observe(lambda event: updates.append(event.update))
    for i in range(count):
        text.insert(len(text) if i % 5 else 0, "abcdefghij"[i % 10])
        if i % 17 == 16:
            del text[0:1]
    return updates


async def test_a_flush_writes_its_batch_as_one_row(database_url: str) -> None:
    store = SqlStore(create_engine(database_url))
    persistence = Persistence(store)
    try:
        room = Room("grouped", await persistence.load("grouped"))
        persistence.attach(room)
        for update in _keystrokes(300):
            room.apply_update(update, "api")
        assert await persistence.flush("grouped")
        stored = await store.load("grouped")
        assert len(stored.updates) == 1
        rebuilt = build_doc(stored.snapshot, stored.updates)
        assert str(rebuilt.get("text", type=Text)) == str(room.doc.get("text", type=Text))
    finally:
        await store.close()


class SlowStore(SqlStore):
    """Each write takes ``delay`` seconds; with ``failing`` set, writes fail."""

    delay = 0.03
    failing = False
    attempts = 0

    async def append(self, doc_id: str, batch: Sequence[bytes], *, title: str | None = None) -> int:
        SlowStore.attempts += 1
        await asyncio.sleep(self.delay)
        if self.failing:
            raise OSError("database unreachable")
        return await super().append(doc_id, batch, title=title)


async def test_a_busy_room_is_written_continuously_not_backed_off(sqlite_url: str) -> None:
    store = SlowStore(create_engine(sqlite_url))
    persistence = Persistence(store, flush_interval=0.05, retry_max_delay=5.0)
    persistence.start()
    try:
        room = Room("busy", await persistence.load("busy"))
        persistence.attach(room)
        backlog = []
        keystrokes = _keystrokes(2000)
        deadline = time.monotonic() + 2.0
        for update in keystrokes:
            if time.monotonic() > deadline:
                break
            room.apply_update(update, "api")  # new updates during every write
            backlog.append(persistence.pending_updates)
            await asyncio.sleep(0.002)
        # A write of each began within the flush interval and took one write (two when
        # it arrived just as a batch was taken): about 0.11 s of updates, 2 ms apart.
        assert max(backlog) < 100, max(backlog)
        await eventually(lambda: persistence.pending_updates == 0, 2, "the last write")
        assert persistence.healthy
    finally:
        await persistence.stop()
        await store.close()


async def test_a_late_room_s_reader_waits_for_its_write(sqlite_url: str) -> None:
    store = SlowStore(create_engine(sqlite_url))
    now = [0.0]
    persistence = Persistence(store, flush_interval=0.1, clock=lambda: now[0])
    try:
        room = Room("late", await persistence.load("late"))
        persistence.attach(room)
        assert not persistence.late("late")  # nothing unwritten
        keystrokes = _keystrokes(2)
        room.apply_update(keystrokes[0], "api")
        now[0] = 0.2
        assert not persistence.late("late")  # two flush intervals: due, not late
        now[0] = 0.21
        assert persistence.late("late")
        waiting = asyncio.create_task(persistence.give_way("late", 5))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        assert await persistence.flush("late")
        await asyncio.wait_for(waiting, 0.5)  # woken by the write's end
        assert not persistence.late("late")
        # With nothing written meanwhile, a reader waits as long as it was told, no longer.
        await asyncio.wait_for(persistence.give_way("late", 0.05), 1)
        # Failing writes are the health check's to hold back (COLLAB_MAX_WRITE_LAG).
        room.apply_update(keystrokes[1], "api")
        now[0] = 1.0
        SlowStore.failing = True
        waiting = asyncio.create_task(persistence.give_way("late", 5))
        assert not await persistence.flush("late")
        await asyncio.wait_for(waiting, 0.5)  # a failed write wakes it too
        assert not persistence.late("late")
    finally:
        SlowStore.failing = False
        await store.close()


async def test_failing_writes_back_off(sqlite_url: str) -> None:
    store = SlowStore(create_engine(sqlite_url))
    persistence = Persistence(store, flush_interval=0.01, retry_max_delay=0.5)
    persistence.start()
    try:
        room = Room("down", await persistence.load("down"))
        persistence.attach(room)
        SlowStore.failing = True
        SlowStore.attempts = 0
        room.apply_update(_keystrokes(1)[0], "api")
        await asyncio.sleep(1.5)
        # 0.01, 0.02, 0.04 ... 0.5 s apart (plus 0.03 s each): about eight, not 40.
        assert 4 <= SlowStore.attempts <= 12, SlowStore.attempts
        assert not persistence.healthy
        SlowStore.failing = False
        await eventually(lambda: persistence.pending_updates == 0, 3, "the retried write")
    finally:
        SlowStore.failing = False
        await persistence.stop()
        await store.close()


async def _write_for(server: CollabServer, doc_id: str, writers: int, seconds: float) -> list[str]:
    """``writers`` clients append numbered marks as fast as they are taken, for
    ``seconds``; each client's marks, in order, with when each was sent."""
    clients = [YClient(server.ws_url(doc_id)) for _ in range(writers)]
    for client in clients:
        await client.connect()
    await asyncio.gather(*(asyncio.wait_for(c.synced.wait(), 10) for c in clients))
    deadline = time.monotonic() + seconds
    sent: list[str] = []
    i = 0
    while time.monotonic() < deadline:
        for w, client in enumerate(clients):
            mark = f"<{w}:{i}>"
            client.append(mark)
            sent.append(mark)
        i += 1
        if i % 5 == 0:
            await asyncio.gather(*(client.flush() for client in clients))
            await asyncio.sleep(0)
    await asyncio.gather(*(client.flush() for client in clients))
    return sent


async def _reopened(server: CollabServer, doc_id: str) -> str:
    """The text of ``doc_id`` as a fresh client opens it."""
    async with YClient(server.ws_url(doc_id)) as reopened:
        return reopened.content()


async def test_sustained_load_then_kill_9_loses_nothing(
    start_server: ServerFactory, database_url: str
) -> None:
    server = start_server(database_url)
    sent = await _write_for(server, "sustained", writers=5, seconds=7)
    # Sent, so read by the server within a fraction of a second; the window after that
    # is 0.1 s plus one write.
    await asyncio.sleep(0.7)
    server.kill()
    content = await _reopened(start_server(database_url), "sustained")
    lost = [m for m in sent if m not in content]
    assert not lost, f"{len(lost)} of {len(sent)} edits lost"


async def test_a_kill_during_load_loses_nothing_older_than_the_window(
    start_server: ServerFactory,
) -> None:
    server = start_server()
    watcher = YClient(server.ws_url("killed"))
    await watcher.connect()
    seen: dict[str, float] = {}  # mark -> by when the server had relayed it

    async def watch() -> None:
        while True:
            now = time.monotonic()
            for mark in watcher.content().split(">"):
                if mark:
                    seen.setdefault(mark + ">", now)
            await asyncio.sleep(0.02)

    watching = asyncio.create_task(watch())
    lags: list[float] = []  # the write lag the server reported, every 50 ms
    sampling = asyncio.create_task(_sample_write_lag(server, lags))

    async def kill_soon() -> float:
        await asyncio.sleep(4.5)
        server.kill()
        return time.monotonic()

    killer = asyncio.create_task(kill_soon())
    await _write_for(server, "killed", writers=3, seconds=6)  # the server goes away
    killed_at = await killer
    watching.cancel()
    sampling.cancel()
    content = await _reopened(start_server(), "killed")
    relayed_long_before = [m for m, at in seen.items() if at < killed_at - 0.5]
    assert relayed_long_before
    lost = [m for m in relayed_long_before if m not in content]
    stored_at = max((at for m, at in seen.items() if m in content), default=0.0)
    assert not lost, (
        f"{len(lost)} of {len(relayed_long_before)} older edits lost: the newest stored "
        f"was relayed {killed_at - stored_at:.2f} s before the kill; the server reported "
        f"a write lag of up to {max(lags, default=0.0):.2f} s ({len(lags)} samples)"
    )


async def _sample_write_lag(server: CollabServer, lags: list[float]) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=1) as http:
        while True:
            with contextlib.suppress(httpx.HTTPError):
                for line in (await http.get("/metrics")).text.splitlines():
                    if line.startswith("collab_write_lag_seconds "):
                        lags.append(float(line.split()[1]))
            await asyncio.sleep(0.05)


async def test_a_visited_document_that_is_never_edited_stores_nothing(
    start_server: ServerFactory,
) -> None:
    server = start_server()
    async with YClient(server.ws_url("only-looked-at")) as visitor:
        visitor.set_presence({"user": {"name": "visitor"}})
        await visitor.flush()
    async with httpx.AsyncClient(base_url=server.url) as http:
        listed = (await http.get("/api/documents")).json()["documents"]
        assert "only-looked-at" not in [d["id"] for d in listed]
        assert (await http.get("/api/documents/only-looked-at")).status_code == 404
        async with YClient(server.ws_url("edited")) as writer:
            writer.append("something")

        async def listed_now() -> bool:
            documents = (await http.get("/api/documents")).json()["documents"]
            return "edited" in [d["id"] for d in documents]

        await eventually(listed_now, what="the edited document in the list")


async def test_an_open_document_not_yet_written_can_be_deleted(
    start_server: ServerFactory,
) -> None:
    server = start_server(flush_interval="30", max_write_lag="60")  # nothing written meanwhile
    async with YClient(server.ws_url("unwritten")) as writer:
        writer.append("not yet stored")
        await writer.flush()
        async with httpx.AsyncClient(base_url=server.url) as http:
            assert (await http.get("/api/documents/unwritten")).status_code == 404
            assert (await http.delete("/api/documents/unwritten")).status_code == 204
            await writer.wait_closed()
            assert (await http.delete("/api/documents/unwritten")).status_code == 404
    with pytest.raises(InvalidStatus) as refused:  # tombstoned: it cannot come back
        await YClient(server.ws_url("unwritten")).connect()
    assert refused.value.response.status_code == 410


async def test_a_fast_sender_does_not_keep_its_writes_waiting(start_server: ServerFactory) -> None:
    """A reader that is never short of frames gives way every few milliseconds, and
    waits for the room's write when it is late: otherwise each step of the write waits
    for the reader's next turn, and a client sending as fast as it can held off the
    writes of what it sent for seconds (two rows for 60,000 updates, 0.8 and 1.7 s
    apart)."""
    server = start_server(messages_per_second="1000000", bytes_per_second="1000000000")
    source: Doc[Any] = Doc()
    updates: list[bytes] = []
    source.observe(lambda event: updates.append(event.update))
    text = source.get("text", type=Text)
    for _ in range(60_000):
        text.insert(len(text), "x")
    async with connect(server.ws_url("fast"), max_size=None) as ws:
        began = dt.datetime.now(dt.UTC)
        for update in updates:
            await ws.send(protocol.sync_update(update))
        await ws.send(protocol.sync_step1(b"\x00"))
        # The answer comes after the server has applied everything sent before it.
        while not _is_step2(protocol.decode(await ws.recv(decode=False))):
            pass
        read = dt.datetime.now(dt.UTC)
        async with httpx.AsyncClient(base_url=server.url) as http:

            async def all_written() -> bool:
                return (await http.get("/api/stats")).json()["unwritten_updates"] == 0

            await eventually(all_written, 60, "the writes")
    engine = create_engine(server.database_url)
    store = SqlStore(engine)
    try:
        stored = await store.load("fast")
        async with engine.connect() as conn:
            written = list(
                await conn.scalars(
                    select(updates_table.c.created_at)
                    .where(updates_table.c.doc_id == "fast")
                    .order_by(updates_table.c.seq)
                )
            )
    finally:
        await store.close()
    assert str(build_doc(stored.snapshot, stored.updates).get("text", type=Text)) == str(text)
    # While the server read (1.5-3 s here), a write every 0.1-0.2 s: the longest wait
    # for one is two flush intervals and a write, not the whole read.
    moments = [began, *(_utc(at) for at in written if _utc(at) <= read)]
    gaps = [(later - earlier).total_seconds() for earlier, later in itertools.pairwise(moments)]
    assert len(gaps) >= 5, (len(gaps), read - began)
    assert max(gaps) < 0.5, gaps


def _utc(at: dt.datetime) -> dt.datetime:
    """A stored time as an aware UTC one (SQLite gives it back naive)."""
    return at if at.tzinfo is not None else at.replace(tzinfo=dt.UTC)


def _is_step2(message: protocol.Message) -> bool:
    return isinstance(message, protocol.SyncMessage) and message.kind is protocol.SyncType.STEP2
