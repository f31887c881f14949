"""The SQL adapter of the document store (PostgreSQL via asyncpg, SQLite via aiosqlite)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import secrets
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

from sqlalchemy import (
    Select,
    Update,
    bindparam,
    delete,
    event,
    func,
    insert,
    literal_column,
    select,
    text,
    update,
)
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from . import state
from .outbox import Debounce, Event, Outbox
from .schema import documents, snapshots, updates, versions
from .store import (
    DocumentDeleted,
    DocumentExists,
    DocumentInfo,
    DocumentNotFound,
    StoredState,
    VersionInfo,
    VersionNotFound,
)


def create_engine(url: str) -> AsyncEngine:
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# Reads by document id (its value bound as "id"), shared by both ways of running them.
_DELETED_AT = select(documents.c.deleted_at).where(documents.c.id == bindparam("id"))
_LOG = select(updates.c.data).where(updates.c.doc_id == bindparam("id")).order_by(updates.c.seq)
_SNAPSHOT = select(snapshots.c.data, snapshots.c.state_vector).where(
    snapshots.c.doc_id == bindparam("id")
)
# The snapshot's row, for reading its data as a blob.
_SNAPSHOT_ROW = select(literal_column("rowid"), snapshots.c.state_vector).where(
    snapshots.c.doc_id == bindparam("id")
)
Fetch = Callable[[Select[Any], str], Awaitable[list[tuple[Any, ...]]]]


def _sqlite_file(engine: AsyncEngine) -> str | None:
    """The file of a SQLite database; None for PostgreSQL or an in-memory SQLite
    (another connection would see another database)."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return None
    if "mode=memory" in str(engine.url.query):
        return None
    return database


class _SqliteAppender:
    """Appends to the log of a SQLite file in one hop to a thread of its own.

    Through the async engine each statement of an append is a hop to aiosqlite's
    thread and back, its transaction's begin, commit and pool checkout more of them:
    ~0.8 ms of CPU an append, against ~0.15 ms here, where the same statements run on
    a pysqlite connection of its own, in its thread. Appends are most of the writes
    (one per open room every flush): that was most of what persistence cost a busy
    server. Writes still queue on the store's lock, so they stay one at a time.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = create_sync_engine(
            engine.url.set(drivername="sqlite"), connect_args={"timeout": 30}
        )
        event.listen(self.engine, "connect", _sqlite_pragmas)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="collab-append")
        self._conn: Connection | None = None

    @classmethod
    def of(cls, engine: AsyncEngine) -> _SqliteAppender | None:
        return None if _sqlite_file(engine) is None else cls(engine)

    async def append(self, statements: _Append) -> int | None:
        """The document's log rows after the append; None, with nothing written, if
        its row is missing or tombstoned (the async path then sees to it)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._append, statements)

    def _append(self, statements: _Append) -> int | None:
        if self._conn is None:
            self._conn = self.engine.connect()
        try:
            with self._conn.begin():
                rows = self._conn.scalar(statements.document, statements.values)
                if rows is None:
                    self._conn.rollback()
                    return None
                self._conn.execute(insert(updates), statements.rows)
                return int(rows)
        except BaseException:
            self._close()  # whatever state it is in, the next append starts afresh
            raise

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._thread, self._close)
        self._thread.shutdown()
        self.engine.dispose()


class _Append(NamedTuple):
    document: Update  # updates the document's row, returning its log rows; none if absent
    values: dict[str, Any]  # its parameters
    rows: list[dict[str, Any]]  # the log rows to insert


def _appended(title: bool) -> Update:
    values: dict[str, Any] = {
        "updated_at": bindparam("now"),
        "size_bytes": documents.c.size_bytes + bindparam("size"),
        "log_rows": documents.c.log_rows + bindparam("count"),
    }
    if title:
        values["title"] = bindparam("new_title")
    return (
        update(documents)
        .where(documents.c.id == bindparam("doc"), documents.c.deleted_at.is_(None))
        .values(values)
        .returning(documents.c.log_rows)
    )


# Built once: a statement made anew each time is keyed for the compiled cache anew.
_APPENDED = {title: _appended(title) for title in (False, True)}


def _append_statements(
    doc_id: str, batch: Sequence[bytes], now: dt.datetime, title: str | None
) -> _Append:
    values = {"doc": doc_id, "now": now, "size": sum(len(u) for u in batch), "count": len(batch)}
    if title is not None:
        values["new_title"] = title
    rows = [{"doc_id": doc_id, "data": u, "created_at": now} for u in batch]
    return _Append(_APPENDED[title is not None], values, rows)


class _SqliteReader:
    """Reads a document's stored state from a SQLite file in one hop to a thread, its
    three statements in one read transaction, on a pysqlite connection of that
    thread's own.

    Opening a room reads the database, and through the pool each read cost ~250 us of
    CPU (a checkout, a rollback on return, each a thread hop): most of what a new
    document's first connection cost. WAL lets them read while the pool's connections
    write; reads take turns over CONNECTIONS threads. The snapshot is read through a
    memory map of the file, with the incremental-blob API, straight into the bytes
    returned: a 1.7 MB one in about a millisecond, against 2-4.5 ms of 4 KB page reads
    and one copy more (most of opening a large document after a start). The map is
    address space, not memory: its pages are the kernel's page cache.
    """

    CONNECTIONS = 4
    MMAP_BYTES = 1 << 30

    def __init__(self, path: str) -> None:
        self._path = path
        self._threads = [
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="collab-read")
            for _ in range(self.CONNECTIONS)
        ]
        self._conns: list[sqlite3.Connection | None] = [None] * self.CONNECTIONS
        self._turn = 0
        self._sql = [
            str(statement.compile(dialect=sqlite.dialect()))
            for statement in (_DELETED_AT, _LOG, _SNAPSHOT_ROW)
        ]

    @classmethod
    def of(cls, engine: AsyncEngine) -> _SqliteReader | None:
        """A reader for a file database; None for PostgreSQL or an in-memory SQLite."""
        database = _sqlite_file(engine)
        return None if database is None else cls(database)

    async def load(self, doc_id: str) -> StoredState:
        """What ``SqlStore.load`` returns."""
        turn = self._turn = (self._turn + 1) % self.CONNECTIONS
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._threads[turn], self._load, turn, doc_id)

    def _load(self, turn: int, doc_id: str) -> StoredState:
        conn = self._conns[turn] or self._connect(turn)
        deleted_at, log, snapshot_row = self._sql
        try:
            conn.execute("BEGIN")
            try:
                found = conn.execute(deleted_at, (doc_id,)).fetchone()
                if found is None:
                    return StoredState(None, [])
                if found[0] is not None:
                    raise DocumentDeleted(doc_id)
                updates = [row[0] for row in conn.execute(log, (doc_id,))]
                stored = conn.execute(snapshot_row, (doc_id,)).fetchone()
                if stored is None:
                    return StoredState(None, updates)
                rowid, vector = stored
                with conn.blobopen("snapshots", "data", rowid, readonly=True) as blob:
                    snapshot = blob.read()
                return StoredState(snapshot, updates, vector)
            finally:
                conn.execute("COMMIT")
        except sqlite3.Error:
            self._close(turn)  # whatever state it is in, the next read starts afresh
            raise

    def _connect(self, turn: int) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, timeout=30, isolation_level=None)
        conn.execute("PRAGMA query_only=ON")
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute(f"PRAGMA mmap_size={self.MMAP_BYTES}")
        self._conns[turn] = conn
        return conn

    def _close(self, turn: int) -> None:
        conn, self._conns[turn] = self._conns[turn], None
        if conn is not None:
            conn.close()

    async def open(self) -> None:
        """The connections, opened, each having run its reads once (by an id no
        document has): the first room opened after a start then pays neither their
        set-up nor the statements' preparation."""
        loop = asyncio.get_running_loop()
        for turn, thread in enumerate(self._threads):
            await loop.run_in_executor(thread, self._load, turn, "")

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        for turn, thread in enumerate(self._threads):
            await loop.run_in_executor(thread, self._close, turn)
            thread.shutdown()


class SqlStore:
    def __init__(self, engine: AsyncEngine, *, webhooks: Debounce | None = None) -> None:
        self.engine = engine
        self._dialect = engine.dialect.name
        # SQLite has one writer at a time, and its connections wait for one another
        # by sleeping and retrying, up to 100 ms a time: opening many new rooms at
        # once spent most of its time asleep. Write transactions queue on this lock
        # instead (SQLite serves one process only). PostgreSQL locks rows: no queue.
        self._write_lock = asyncio.Lock() if self._dialect == "sqlite" else None
        self._reader = _SqliteReader.of(engine)
        self._appender = _SqliteAppender.of(engine)
        # With webhooks, each change records its event in its own transaction.
        self.outbox = (
            None
            if webhooks is None
            else Outbox(engine, self._write, debounce=webhooks.seconds, max_wait=webhooks.max_wait)
        )

    @contextlib.asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncConnection]:
        """A transaction that may write."""
        if self._write_lock is None:
            async with self.engine.begin() as conn:
                yield conn
            return
        async with self._write_lock, self.engine.begin() as conn:
            yield conn

    async def open(self) -> None:
        """Ready what opening a room reads with (at start, before any socket)."""
        if self._reader is not None:
            await self._reader.open()
            return
        async with self._reading() as fetch:
            for statement in (_DELETED_AT, _LOG, _SNAPSHOT):
                await fetch(statement, "")  # no document has this id

    async def close(self) -> None:
        if self._reader is not None:
            await self._reader.close()
        if self._appender is not None:
            await self._appender.close()
        await self.engine.dispose()

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def load(self, doc_id: str) -> StoredState:
        # Reads only: an id that was never used gets its row with its first write, so
        # visiting a URL stores nothing.
        if self._reader is not None:
            return await self._reader.load(doc_id)
        async with self._reading() as fetch:
            found = await fetch(_DELETED_AT, doc_id)
            if not found:
                return StoredState(None, [])
            if found[0][0] is not None:
                raise DocumentDeleted(doc_id)
            # The log before the snapshot: each is its own statement, and a
            # compaction (by another process) committed between the two then only
            # moves rows already read into the snapshot. Read the other way round,
            # the rows it compacted would be in neither.
            log = [bytes(row[0]) for row in await fetch(_LOG, doc_id)]
            stored = await fetch(_SNAPSHOT, doc_id)
        if not stored:
            return StoredState(None, log)
        snapshot, vector = stored[0]
        return StoredState(bytes(snapshot), log, None if vector is None else bytes(vector))

    @contextlib.asynccontextmanager
    async def _reading(self) -> AsyncIterator[Fetch]:
        """A function running a read statement by a document id on a pooled connection."""
        async with self.engine.connect() as conn:

            async def fetch(statement: Select[Any], doc_id: str) -> list[tuple[Any, ...]]:
                return [tuple(row) for row in await conn.execute(statement, {"id": doc_id})]

            yield fetch

    async def append(self, doc_id: str, batch: Sequence[bytes], *, title: str | None = None) -> int:
        if not batch:
            raise ValueError("nothing to append")
        now = utcnow()
        statements = _append_statements(doc_id, batch, now, title)
        # Updating the document row first takes its lock, which orders this append
        # with any compaction of the same document.
        if self._appender is not None and self.outbox is None:
            assert self._write_lock is not None
            async with self._write_lock:
                rows = await self._appender.append(statements)
            if rows is not None:
                return rows
        created = False
        async with self._write() as conn:
            rows = await conn.scalar(statements.document, statements.values)
            if rows is None:
                # Its first write (or its row was lost): create it, unless the id is
                # tombstoned. Another process may create it at the same moment.
                created = await self._insert_document(conn, doc_id, now)
                rows = await conn.scalar(statements.document, statements.values)
                if rows is None:
                    raise DocumentDeleted(doc_id)
            await conn.execute(insert(updates), statements.rows)
            due = None if self.outbox is None else await self.outbox.changed(conn, doc_id, now)
        self._announce(now if created else due)
        return int(rows)

    async def compact(self, doc_id: str) -> int:
        async with self._write() as conn:
            locked = await conn.scalar(
                update(documents)
                .where(documents.c.id == doc_id)
                .values(log_rows=documents.c.log_rows)
                .returning(documents.c.id)
            )
            if locked is None:
                return 0  # never written: nothing to compact
            snapshot = await conn.scalar(
                select(snapshots.c.data).where(snapshots.c.doc_id == doc_id)
            )
            log = (
                await conn.execute(
                    select(updates.c.seq, updates.c.data)
                    .where(updates.c.doc_id == doc_id)
                    .order_by(updates.c.seq)
                )
            ).all()
            if not log:
                return len(snapshot or b"")
            merged, pending, vector = await asyncio.to_thread(
                state.compact, snapshot, [r.data for r in log]
            )
            await self._write_snapshot(conn, doc_id, merged, vector, exists=snapshot is not None)
            kept = [log[i].seq for i in pending]
            await conn.execute(
                delete(updates).where(
                    updates.c.doc_id == doc_id,
                    updates.c.seq <= log[-1].seq,
                    updates.c.seq.not_in(kept),
                )
            )
            await conn.execute(
                update(documents)
                .where(documents.c.id == doc_id)
                .values(
                    size_bytes=len(merged) + sum(len(log[i].data) for i in pending),
                    log_rows=len(kept),
                )
            )
            return len(merged)

    async def list_documents(self, limit: int, offset: int) -> list[DocumentInfo]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(documents)
                .where(documents.c.deleted_at.is_(None))
                .order_by(documents.c.updated_at.desc(), documents.c.id)
                .limit(limit)
                .offset(offset)
            )
            return [_info(row) for row in rows]

    async def get_document(self, doc_id: str) -> DocumentInfo:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(documents).where(documents.c.id == doc_id))).first()
        if row is None:
            raise DocumentNotFound(doc_id)
        if row.deleted_at is not None:
            raise DocumentDeleted(doc_id)
        return _info(row)

    async def deleted_among(self, doc_ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        async with self.engine.connect() as conn:
            for start in range(0, len(doc_ids), 500):
                chunk = doc_ids[start : start + 500]
                rows = await conn.execute(
                    select(documents.c.id).where(
                        documents.c.id.in_(chunk), documents.c.deleted_at.is_not(None)
                    )
                )
                found.update(row.id for row in rows)
        return found

    async def create_document(self, doc_id: str) -> DocumentInfo:
        now = utcnow()
        async with self._write() as conn:
            row = (
                await conn.execute(select(documents.c.deleted_at).where(documents.c.id == doc_id))
            ).first()
            if row is None:
                if not await self._insert_document(conn, doc_id, now):
                    raise DocumentExists(doc_id)
            elif row.deleted_at is None:
                raise DocumentExists(doc_id)
            else:
                await conn.execute(delete(updates).where(updates.c.doc_id == doc_id))
                await conn.execute(delete(snapshots).where(snapshots.c.doc_id == doc_id))
                await conn.execute(
                    update(documents)
                    .where(documents.c.id == doc_id)
                    .values(
                        created_at=now,
                        updated_at=now,
                        size_bytes=0,
                        log_rows=0,
                        deleted_at=None,
                        title="",
                    )
                )
                await self._record(conn, Event.CREATED, doc_id, now)
        self._announce(now)
        return DocumentInfo(doc_id, now, now, 0)

    async def delete_document(self, doc_id: str, *, unwritten: bool = False) -> None:
        now = utcnow()
        tombstone = (
            update(documents)
            .where(documents.c.id == doc_id, documents.c.deleted_at.is_(None))
            .values(deleted_at=now, updated_at=now, size_bytes=0, log_rows=0, title="")
            .returning(documents.c.id)
        )
        async with self._write() as conn:
            tombstoned = await conn.scalar(tombstone)
            if tombstoned is None and unwritten:
                # A document open in memory and not yet written: its row, as a
                # tombstone; or, if a write created the row meanwhile, that row.
                await self._insert_document(conn, doc_id, now, announce=False)
                tombstoned = await conn.scalar(tombstone)
            if tombstoned is None:
                raise DocumentNotFound(doc_id)
            await conn.execute(delete(updates).where(updates.c.doc_id == doc_id))
            await conn.execute(delete(snapshots).where(snapshots.c.doc_id == doc_id))
            await self._record(conn, Event.DELETED, doc_id, now)
        self._announce(now)

    async def add_version(
        self, doc_id: str, state: bytes, *, label: str, created_by: str, kind: str, keep_auto: int
    ) -> VersionInfo:
        info = VersionInfo(
            id=secrets.token_hex(8),
            doc_id=doc_id,
            created_at=utcnow(),
            label=label,
            created_by=created_by,
            kind=kind,
            size_bytes=len(state),
        )
        async with self._write() as conn:
            await self._insert_document(conn, doc_id)  # a visited document never edited
            await conn.execute(
                insert(versions).values(
                    id=info.id,
                    doc_id=doc_id,
                    created_at=info.created_at,
                    label=label,
                    created_by=created_by,
                    kind=kind,
                    data=state,
                )
            )
            stale = (
                select(versions.c.id)
                .where(versions.c.doc_id == doc_id, versions.c.kind == "auto")
                .order_by(versions.c.created_at.desc())
                .offset(keep_auto)
            )
            await conn.execute(delete(versions).where(versions.c.id.in_(stale.scalar_subquery())))
            await self._record(
                conn, Event.VERSION_CREATED, doc_id, info.created_at, version_id=info.id
            )
        self._announce(info.created_at)
        return info

    async def list_versions(self, doc_id: str) -> list[VersionInfo]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(
                    versions.c.id,
                    versions.c.doc_id,
                    versions.c.created_at,
                    versions.c.label,
                    versions.c.created_by,
                    versions.c.kind,
                    func.length(versions.c.data).label("size_bytes"),
                )
                .where(versions.c.doc_id == doc_id)
                .order_by(versions.c.created_at.desc(), versions.c.id)
            )
            return [
                VersionInfo(
                    id=row.id,
                    doc_id=row.doc_id,
                    created_at=_aware(row.created_at),
                    label=row.label,
                    created_by=row.created_by,
                    kind=row.kind,
                    size_bytes=int(row.size_bytes),
                )
                for row in rows
            ]

    async def version_state(self, doc_id: str, version_id: str) -> bytes:
        async with self.engine.connect() as conn:
            data = await conn.scalar(
                select(versions.c.data).where(
                    versions.c.doc_id == doc_id, versions.c.id == version_id
                )
            )
        if data is None:
            raise VersionNotFound(version_id)
        return bytes(data)

    async def _insert_document(
        self,
        conn: AsyncConnection,
        doc_id: str,
        now: dt.datetime | None = None,
        *,
        announce: bool = True,
    ) -> bool:
        """Create the document's row unless it exists; whether it did. With
        ``announce``, a created row records document.created."""
        now = now or utcnow()
        values = {
            "id": doc_id,
            "created_at": now,
            "updated_at": now,
            "size_bytes": 0,
            "log_rows": 0,
        }
        dialect_insert = postgresql.insert if self._dialect == "postgresql" else sqlite.insert
        result = await conn.execute(
            dialect_insert(documents).values(values).on_conflict_do_nothing(index_elements=["id"])
        )
        if not result.rowcount:
            return False
        if announce:
            await self._record(conn, Event.CREATED, doc_id, now)
        return True

    async def _record(
        self,
        conn: AsyncConnection,
        event: Event,
        doc_id: str,
        now: dt.datetime,
        *,
        version_id: str | None = None,
    ) -> None:
        """Record a webhook event in the transaction of ``conn``, if webhooks are on."""
        if self.outbox is not None:
            await self.outbox.record(conn, event, doc_id, now, version_id=version_id)

    def _announce(self, due: dt.datetime | None) -> None:
        """After the transaction that recorded an event committed: wake its deliverer."""
        if self.outbox is not None and due is not None:
            self.outbox.announce(due)

    async def _write_snapshot(
        self, conn: AsyncConnection, doc_id: str, data: bytes, vector: bytes, *, exists: bool
    ) -> None:
        values = {"data": data, "state_vector": vector, "created_at": utcnow()}
        if exists:
            await conn.execute(update(snapshots).where(snapshots.c.doc_id == doc_id).values(values))
        else:
            await conn.execute(insert(snapshots).values(doc_id=doc_id, **values))


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def _info(row: Row[Any]) -> DocumentInfo:
    return DocumentInfo(
        id=row.id,
        created_at=_aware(row.created_at),
        updated_at=_aware(row.updated_at),
        size_bytes=row.size_bytes,
        title=row.title,
    )
