"""Documents outlive the process: the update log, snapshots and recovery."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sqlite3
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import aiosqlite
import pytest
from pycrdt import Doc, Map, Text
from sqlalchemy import event, insert, select, update

from collab import state
from collab.closecodes import CloseCode
from collab.documents import Documents
from collab.persistence import FLUSH_CONCURRENCY, Persistence
from collab.room import Room
from collab.schema import snapshots, updates
from collab.settings import Settings
from collab.sqlstore import SqlStore, _SqliteReader, create_engine

from .conftest import ServerFactory
from .support import CollabServer, PostgresServer, eventually, migrate
from .yclient import YClient


async def _content(server: CollabServer, doc_id: str) -> str:
    async with YClient(server.ws_url(doc_id)) as client:
        return client.content()


async def test_documents_survive_a_restart(start_server: ServerFactory, database_url: str) -> None:
    server = start_server(database_url)
    async with YClient(server.ws_url("restart")) as client:
        for i in range(50):
            client.append(f"line {i}\n")
    _graceful_stop(server)
    again = start_server(database_url)
    expected = "".join(f"line {i}\n" for i in range(50))
    assert await _content(again, "restart") == expected


async def test_kill_9_two_seconds_after_the_last_edit_loses_nothing(
    start_server: ServerFactory, database_url: str
) -> None:
    server = start_server(database_url, snapshot_threshold="20")
    async with YClient(server.ws_url("crash")) as client:
        for i in range(200):
            client.append(f"{i},")
            if i % 10 == 0:
                await asyncio.sleep(0.01)
        await asyncio.sleep(2)
        server.kill()
        await client.wait_closed()
    again = start_server(database_url)
    assert await _content(again, "crash") == "".join(f"{i}," for i in range(200))


async def test_compaction_keeps_content_identical(database_url: str) -> None:
    store = SqlStore(create_engine(database_url))
    try:
        source: Doc[Any] = Doc()
        text = source.get("text", type=Text)
        meta = source.get("meta", type=Map)
        batch: list[bytes] = []
        source.observe(lambda event: batch.append(event.update))
        await store.load("compact-me")
        for i in range(300):
            text.insert(len(text) // 2, f"[{i}]")
            if i % 7 == 0:
                del text[0:2]
            meta[f"k{i % 10}"] = i
            if len(batch) >= 25:
                await store.append("compact-me", batch)
                batch.clear()
        if batch:
            await store.append("compact-me", batch)
        before = await store.load("compact-me")
        assert len(before.updates) > 10
        await store.compact("compact-me")
        after = await store.load("compact-me")
        assert after.updates == []
        assert after.snapshot is not None
        loaded = state.build_doc(after.snapshot, after.updates)
        assert str(loaded.get("text", type=Text)) == str(text)
        assert loaded.get("meta", type=Map).to_py() == meta.to_py()
        info = await store.get_document("compact-me")
        assert info.size_bytes == len(after.snapshot)
    finally:
        await store.close()


async def test_concurrent_compactions_and_appends_lose_nothing(database_url: str) -> None:
    # Two stores stand for two server processes sharing one database.
    stores = [SqlStore(create_engine(database_url)) for _ in range(2)]
    try:
        source: Doc[Any] = Doc()
        text = source.get("text", type=Text)
        pending: list[bytes] = []
        source.observe(lambda event: pending.append(event.update))
        await stores[0].load("shared")

        async def writer(store: SqlStore, offset: int) -> None:
            for i in range(40):
                text.insert(len(text), f"<{offset + i}>")
                chunk = pending[:]
                pending.clear()
                if chunk:
                    await store.append("shared", chunk)
                await asyncio.sleep(0)

        async def compactor(store: SqlStore) -> None:
            for _ in range(10):
                await store.compact("shared")
                await asyncio.sleep(0.001)

        await asyncio.gather(
            writer(stores[0], 0),
            writer(stores[1], 1000),
            compactor(stores[0]),
            compactor(stores[1]),
        )
        stored = await stores[1].load("shared")
        loaded = state.build_doc(stored.snapshot, stored.updates)
        assert str(loaded.get("text", type=Text)) == str(text)
    finally:
        for store in stores:
            await store.close()


async def test_a_load_racing_a_compaction_elsewhere_misses_nothing(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two stores stand for two server processes; the second compacts the document
    # between the first one's reads of the log and of the snapshot.
    reader, compactor = (SqlStore(create_engine(database_url)) for _ in range(2))
    source: Doc[Any] = Doc()
    text = source.get("text", type=Text)
    edits: list[bytes] = []
    source.observe(lambda event: edits.append(event.update))
    try:
        await reader.load("raced")
        for i in range(10):
            text.insert(len(text), f"<{i}>")
            await compactor.append("raced", [edits[-1]])
            if i == 4:
                await compactor.compact("raced")
        armed = True
        if database_url.startswith("sqlite"):
            # SQLite's reads run in the reader's thread, in one transaction: the
            # compaction runs on the loop while the thread waits, as the second of the
            # reads of the log and the snapshot starts.
            loop = asyncio.get_running_loop()
            connect = _SqliteReader._connect
            started: list[str] = []

            def traced(self: _SqliteReader, turn: int) -> sqlite3.Connection:
                conn = connect(self, turn)

                def on_statement(sql: str) -> None:
                    nonlocal armed
                    if "FROM snapshots" in sql or "FROM updates" in sql:
                        started.append(sql)
                    if armed and len(started) == 2:
                        armed = False
                        asyncio.run_coroutine_threadsafe(compactor.compact("raced"), loop).result()

                conn.set_trace_callback(on_statement)
                return conn

            monkeypatch.setattr(_SqliteReader, "_connect", traced)
            await reader.close()
            reader = SqlStore(create_engine(database_url))
        else:
            reading = SqlStore._reading

            @contextlib.asynccontextmanager
            async def hooked_reading(self: SqlStore) -> AsyncIterator[Any]:
                async with reading(self) as fetch:

                    async def fetch_then_compact(statement: Any, doc_id: str) -> Any:
                        nonlocal armed
                        rows = await fetch(statement, doc_id)
                        froms = statement.get_final_froms()
                        if armed and (updates in froms or snapshots in froms):
                            armed = False  # between the reads of the log and the snapshot
                            await compactor.compact("raced")
                        return rows

                    yield fetch_then_compact

            monkeypatch.setattr(SqlStore, "_reading", hooked_reading)
        stored = await reader.load("raced")
        monkeypatch.undo()
        assert not armed
        loaded = state.build_doc(stored.snapshot, stored.updates)
        assert str(loaded.get("text", type=Text)) == str(text)
    finally:
        for store in (reader, compactor):
            await store.close()


async def test_a_failed_load_opens_nothing_and_overwrites_nothing(
    start_server: ServerFactory, database_url: str
) -> None:
    server = start_server(database_url, room_release_delay="0.1")
    async with YClient(server.ws_url("fragile")) as client:
        client.append("precious")
    store = SqlStore(create_engine(database_url))
    try:
        await eventually(lambda: _log_rows(store, "fragile"), what="the edit to be written")
        async with store.engine.begin() as conn:
            await conn.execute(
                insert(updates).values(doc_id="fragile", data=b"\x05garbage", created_at=_now())
            )
        await eventually(lambda: _released(server, "fragile"), what="the room to be released")
        broken = YClient(server.ws_url("fragile"))
        await broken.connect()
        await broken.wait_closed()
        assert broken.close_code == CloseCode.INTERNAL_ERROR
        assert not broken.synced.is_set()
        async with store.engine.begin() as conn:
            await conn.execute(
                update(updates).where(updates.c.data == b"\x05garbage").values(data=b"\x00\x00")
            )
        assert await _content(server, "fragile") == "precious"
    finally:
        await store.close()


async def test_editing_continues_through_a_database_outage(
    start_server: ServerFactory, tmp_path: Any
) -> None:
    postgres = PostgresServer()  # its own, to stop and start
    try:
        url = postgres.create_database("outage")
        migrate(url)
        server = start_server(url, retry_max_delay="0.5")
        async with (
            YClient(server.ws_url("outage")) as alice,
            YClient(server.ws_url("outage")) as bob,
        ):
            alice.append("before ")
            await eventually(lambda: bob.content() == "before ")
            postgres.stop(mode="fast")
            alice.append("during ")
            bob.append("outage ")
            # Concurrent appends: Yjs orders them by client id.
            both = {"before during outage ", "before outage during "}
            await eventually(lambda: alice.content() == bob.content() and alice.content() in both)
            await eventually(lambda: _status(server, "/readyz") == 503, 15, "readyz to fail")
            postgres.start()
            await eventually(lambda: _status(server, "/readyz") == 200, 30, "readyz to recover")
            alice.append("after")
        await eventually(lambda: "database writes succeed again" in server.log(), 30)
        _graceful_stop(server)
        again = start_server(url)
        assert await _content(again, "outage") == alice.content()
        assert alice.content().endswith("after")
    finally:
        postgres.destroy()


def _graceful_stop(server: CollabServer) -> None:
    # uvicorn ends a graceful shutdown by re-raising the signal it caught.
    assert server.stop() in (0, -signal.SIGTERM)
    assert "rooms written" in server.log()
    assert "(incomplete)" not in server.log()


def _status(server: CollabServer, path: str) -> int:
    import httpx

    return httpx.get(server.url + path, timeout=5).status_code


def _released(server: CollabServer, doc_id: str) -> bool:
    return f"room {doc_id!r} released" in server.log()


async def _log_rows(store: SqlStore, doc_id: str) -> bool:
    async with store.engine.connect() as conn:
        rows = (await conn.execute(select(updates.c.seq).where(updates.c.doc_id == doc_id))).all()
    return bool(rows) or bool((await store.load(doc_id)).snapshot)


def _now() -> Any:
    from collab.sqlstore import utcnow

    return utcnow()


def test_compaction_keeps_updates_that_arrived_before_their_dependencies() -> None:
    source: Doc[Any] = Doc()
    text = source.get("text", type=Text)
    log: list[bytes] = []
    source.observe(lambda event: log.append(event.update))
    for i in range(4):
        text.insert(len(text), f"<{i}>")
    merged, pending, _ = state.compact(None, [log[0], log[2]])  # log[1] not written yet
    assert pending == [1]
    rebuilt = state.build_doc(merged, [log[2], log[1], log[3]])
    assert str(rebuilt.get("text", type=Text)) == "<0><1><2><3>"


def test_compaction_keeps_deletes_that_arrived_before_what_they_delete() -> None:
    source: Doc[Any] = Doc()
    text = source.get("text", type=Text)
    log: list[bytes] = []
    source.observe(lambda event: log.append(event.update))
    text.insert(0, "keep")
    text.insert(4, "-gone")
    del text[4:9]
    merged, pending, _ = state.compact(None, [log[0], log[2]])  # the insert log[1] comes later
    assert pending == [1]
    rebuilt = state.build_doc(merged, [log[2], log[1]])
    assert str(rebuilt.get("text", type=Text)) == "keep"
    merged, pending, _ = state.compact(None, log)
    assert pending == []
    assert str(state.build_doc(merged, []).get("text", type=Text)) == "keep"


async def test_a_flush_writes_every_room_a_few_at_a_time(sqlite_url: str) -> None:
    class CountingStore(SqlStore):
        in_flight = 0
        most = 0

        async def append(
            self, doc_id: str, batch: Sequence[bytes], *, title: str | None = None
        ) -> int:
            CountingStore.in_flight += 1
            CountingStore.most = max(CountingStore.most, CountingStore.in_flight)
            try:
                return await super().append(doc_id, batch, title=title)
            finally:
                CountingStore.in_flight -= 1

    store = CountingStore(create_engine(sqlite_url))
    persistence = Persistence(store)
    try:
        rooms = [Room(f"many-{i}", await persistence.load(f"many-{i}")) for i in range(40)]
        for i, room in enumerate(rooms):
            persistence.attach(room)
            source: Doc[Any] = Doc()
            source.get("text", type=Text).insert(0, f"room {i}")
            room.apply_update(source.get_update(), "api")
        assert await persistence.flush_all()
        assert persistence.pending_updates == 0
        assert 1 < CountingStore.most <= FLUSH_CONCURRENCY
        for i in range(40):
            stored = await store.load(f"many-{i}")
            loaded = state.build_doc(stored.snapshot, stored.updates)
            assert str(loaded.get("text", type=Text)) == f"room {i}"
    finally:
        await store.close()


async def test_sqlite_write_transactions_queue_rather_than_sleep(sqlite_url: str) -> None:
    # SQLite's connections wait for one another's write lock in its busy handler,
    # asleep for up to 100 ms a time; the store queues its own writes instead.
    engine = create_engine(sqlite_url)
    store = SqlStore(engine)
    writing: set[int] = set()  # connections inside a transaction that has written
    most = 0

    def executing(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        nonlocal most
        if statement.lstrip().split(None, 1)[0].upper() in ("INSERT", "UPDATE", "DELETE"):
            writing.add(id(conn))
            most = max(most, len(writing))

    def ended(conn: Any) -> None:
        writing.discard(id(conn))

    # Loads only read (a document's row comes with its first write): they need no queue.
    event.listen(engine.sync_engine, "before_cursor_execute", executing)
    event.listen(engine.sync_engine, "commit", ended)
    event.listen(engine.sync_engine, "rollback", ended)
    source: Doc[Any] = Doc()
    source.get("text", type=Text).insert(0, "first words")
    edit = source.get_update()

    async def open_and_write(doc_id: str) -> None:
        await store.load(doc_id)
        await store.append(doc_id, [edit])

    try:
        await asyncio.gather(*(open_and_write(f"new-{i}") for i in range(30)))
        assert most == 1
        for i in range(30):
            assert (await store.load(f"new-{i}")).updates == [edit]
    finally:
        await store.close()


async def test_a_compacted_document_is_answered_before_it_is_built(database_url: str) -> None:
    store = SqlStore(create_engine(database_url))
    source: Doc[Any] = Doc()
    text = source.get("text", type=Text)
    halfway = b""
    for i in range(200):
        text.insert(0, f"<{i}>")
        if i == 99:
            halfway = source.get_state()
    try:
        await store.load("lazy")
        await store.append("lazy", [source.get_update()])
        await store.compact("lazy")
        stored = await Persistence(store).load("lazy")
        assert isinstance(stored, state.StoredDoc)
        assert stored.state_vector == source.get_state()
        room = Room("lazy", stored)
        assert room.missing(b"\x00") == stored.snapshot
        behind: Doc[Any] = Doc()
        behind.apply_update(source.get_update(halfway))
        behind.apply_update(room.missing(behind.get_state()))
        assert not room.built
        assert str(behind.get("text", type=Text)) == str(text)
        assert str(room.doc.get("text", type=Text)) == str(text)
        assert room.built
        await store.append("lazy", [b"\x00\x00"])  # a log row: built at load, as before
        assert isinstance(await Persistence(store).load("lazy"), Doc)
    finally:
        await store.close()


async def test_shutdown_compacts_rows_written_while_a_compaction_ran(sqlite_url: str) -> None:
    class SlowCompaction(SqlStore):
        started = asyncio.Event()
        release = asyncio.Event()

        async def compact(self, doc_id: str) -> int:
            SlowCompaction.started.set()
            await SlowCompaction.release.wait()
            return await super().compact(doc_id)

    store = SlowCompaction(create_engine(sqlite_url))
    persistence = Persistence(store)
    try:
        room = Room("busy", await persistence.load("busy"))
        persistence.attach(room)
        source: Doc[Any] = Doc()
        text = source.get("text", type=Text)
        text.insert(0, "first")
        room.apply_update(source.get_update(), "api")
        assert await persistence.flush("busy")
        compaction = asyncio.create_task(persistence.compact("busy"))
        await SlowCompaction.started.wait()
        before = source.get_state()
        text.insert(0, "during ")  # arrives while the compaction runs
        room.apply_update(source.get_update(before), "api")
        SlowCompaction.release.set()
        assert await compaction
        assert await persistence.close([room], time.monotonic() + 10)
        stored = await store.load("busy")
        assert stored.updates == []
        assert str(state.build_doc(stored.snapshot, []).get("text", type=Text)) == "during first"
    finally:
        await store.close()


async def test_the_first_room_after_a_start_reads_on_connections_opened_at_start(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The reader's connections are opened, and each read run once on them, by the
    # service's start: the first socket after a restart does not wait for their set-up.
    store = SqlStore(create_engine(sqlite_url))
    try:
        source: Doc[Any] = Doc()
        source.get("text", type=Text).insert(0, "stored before the start")
        await store.append("first", [source.get_update()])
        await store.compact("first")
    finally:
        await store.close()
    connects: list[object] = []
    connect = aiosqlite.connect

    def counting(*args: Any, **kwargs: Any) -> aiosqlite.Connection:
        connects.append(args)
        return connect(*args, **kwargs)

    documents = Documents(Settings(database_url=sqlite_url))
    async with documents.running():
        monkeypatch.setattr(aiosqlite, "connect", counting)
        room = await documents.acquire("first")
        try:
            assert str(room.doc.get("text", type=Text)) == "stored before the start"
        finally:
            documents.release(room)
        assert connects == []


async def test_sqlite_appends_take_one_hop_on_a_connection_of_their_own(sqlite_url: str) -> None:
    # Through the async engine an append was ~5 hops to aiosqlite's thread (and ~1 ms
    # of CPU); an existing document's append runs whole on the appender's connection.
    store = SqlStore(create_engine(sqlite_url))
    source: Doc[Any] = Doc()
    text = source.get("text", type=Text)
    edits: list[bytes] = []
    source.observe(lambda event: edits.append(event.update))
    on_engine: list[str] = []
    on_appender: list[str] = []

    def counter(into: list[str]) -> Any:
        return lambda _conn, _cursor, statement, *_args: into.append(statement.split()[0])

    try:
        text.insert(0, "created ")
        assert await store.append("doc", edits[-1:]) == 1  # its row: the async path
        assert store._appender is not None
        event.listen(store.engine.sync_engine, "before_cursor_execute", counter(on_engine))
        event.listen(store._appender.engine, "before_cursor_execute", counter(on_appender))
        for i in range(20):
            text.insert(len(text), f"{i} ")
            assert await store.append("doc", edits[-1:]) == i + 2
        assert on_engine == []
        assert on_appender == ["UPDATE", "INSERT"] * 20
        stored = await store.load("doc")
        assert str(state.build_doc(stored.snapshot, stored.updates).get("text", type=Text)) == str(
            text
        )
    finally:
        await store.close()


async def test_a_failed_sqlite_append_writes_nothing_and_the_next_one_succeeds(
    sqlite_url: str,
) -> None:
    store = SqlStore(create_engine(sqlite_url))
    source: Doc[Any] = Doc()
    text = source.get("text", type=Text)
    edits: list[bytes] = []
    source.observe(lambda event: edits.append(event.update))
    path = sqlite_url.split("///", 1)[1]
    try:
        text.insert(0, "first ")
        await store.append("doc", edits[-1:])
        async with aiosqlite.connect(path) as db:
            await db.execute(
                "CREATE TRIGGER refuse BEFORE INSERT ON updates "
                "BEGIN SELECT RAISE(ABORT, 'disk full'); END"
            )
            await db.commit()
        text.insert(len(text), "lost ")
        with pytest.raises(Exception, match="disk full"):
            await store.append("doc", edits[-1:])
        async with aiosqlite.connect(path) as db:
            # The document's row was not counted up for the rows that were not written.
            rows = await db.execute_fetchall("SELECT log_rows FROM documents WHERE id = 'doc'")
            assert list(rows) == [(1,)]
            await db.execute("DROP TRIGGER refuse")
            await db.commit()
        assert await store.append("doc", edits[-1:]) == 2
        stored = await store.load("doc")
        assert len(stored.updates) == 2
    finally:
        await store.close()


async def test_a_background_loop_that_fails_is_restarted(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = SqlStore(create_engine(sqlite_url))
    persistence = Persistence(store, flush_interval=0.01, retry_max_delay=0.05)
    flush_loop = persistence._flush_loop
    runs = []

    async def failing_once() -> None:
        runs.append(1)
        if len(runs) == 1:
            raise RuntimeError("a bug")
        await flush_loop()

    persistence._flush_loop = failing_once  # type: ignore[method-assign]
    room = Room("restarted", await persistence.load("restarted"))
    persistence.attach(room)
    persistence.start()
    try:
        await eventually(lambda: len(runs) == 2, 5, "the restart")
        assert "failing_once failed; restarting it" in caplog.text
        source: Doc[Any] = Doc()
        source.get("text", type=Text).insert(0, "written")
        room.apply_update(source.get_update(), "api")
        await eventually(lambda: persistence.pending_updates == 0, 5, "the write")
        assert len((await store.load("restarted")).updates) == 1
    finally:
        try:
            await persistence.stop()
        finally:
            await store.close()
