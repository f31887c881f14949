"""The webhook outbox's SQL: events recorded in the transactions of the changes they
report, and claimed, finished or rescheduled by the processes that deliver them."""

from __future__ import annotations

import contextlib
import datetime as dt
import enum
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, case, delete, exists, func, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from .schema import GATHERING, webhook_events
from .settings import Settings

Write = Callable[[], contextlib.AbstractAsyncContextManager[AsyncConnection]]


class Event(enum.StrEnum):
    CREATED = "document.created"
    CHANGED = "document.changed"
    DELETED = "document.deleted"
    VERSION_CREATED = "version.created"


@dataclass(frozen=True, slots=True)
class Debounce:
    """When document.changed is due: ``seconds`` after a document's last change, and
    ``max_wait`` after its first at the latest."""

    seconds: float
    max_wait: float

    @classmethod
    def of(cls, settings: Settings) -> Debounce | None:
        """None without webhooks: then no change records anything."""
        if not settings.webhook_url:
            return None
        return cls(settings.webhook_debounce, settings.webhook_max_wait)


@dataclass(frozen=True, slots=True)
class Claimed:
    """An event a process holds for one delivery attempt."""

    seq: int
    id: str
    event: Event
    doc_id: str
    version_id: str | None
    at: dt.datetime  # of the (last) change it reports
    due_at: dt.datetime  # when it was first deliverable: after the debounce
    attempt: int  # 1 for the first
    body: bytes | None  # as first sent, if it was


def _seconds(value: float) -> dt.timedelta:
    return dt.timedelta(seconds=value)


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


class Outbox:
    """Rows of ``webhook_events``. ``record`` and ``changed`` run inside the store's
    write transactions; the other writes take their own through ``write`` (on SQLite,
    the store's queue of writers)."""

    def __init__(
        self, engine: AsyncEngine, write: Write, *, debounce: float, max_wait: float
    ) -> None:
        self._engine = engine
        self._write = write
        self._dialect = engine.dialect.name
        self._debounce = _seconds(min(debounce, max_wait))
        self._max_wait = _seconds(max_wait)
        self._listeners: list[Callable[[dt.datetime], None]] = []

    def listen(self, listener: Callable[[dt.datetime], None]) -> None:
        """``listener(due)`` is called after a transaction that recorded an event
        committed; ``due`` is the earliest it may be delivered."""
        self._listeners.append(listener)

    def announce(self, due: dt.datetime) -> None:
        for listener in self._listeners:
            listener(due)

    async def record(
        self,
        conn: AsyncConnection,
        event: Event,
        doc_id: str,
        now: dt.datetime,
        *,
        version_id: str | None = None,
    ) -> dt.datetime:
        """Record an event due at once; its due time."""
        await conn.execute(
            webhook_events.insert().values(
                _values(event, doc_id, now, deadline=now, due=now, version_id=version_id)
            )
        )
        return now

    async def changed(self, conn: AsyncConnection, doc_id: str, now: dt.datetime) -> dt.datetime:
        """Fold a change into the document's gathering document.changed event, or start
        one: due a debounce after this change, and no later than a maximum wait after
        the first. The earliest it may be due."""
        due = now + self._debounce
        values = _values(
            Event.CHANGED, doc_id, now, deadline=now + self._max_wait, due=due, version_id=None
        )
        insert = (postgresql.insert if self._dialect == "postgresql" else sqlite.insert)(
            webhook_events
        ).values(values)
        table = webhook_events.c
        await conn.execute(
            insert.on_conflict_do_update(
                index_elements=[table.doc_id],
                index_where=text(GATHERING),
                set_={
                    "last_at": insert.excluded.last_at,
                    "due_at": case(
                        (table.deadline_at < insert.excluded.due_at, table.deadline_at),
                        else_=insert.excluded.due_at,
                    ),
                },
            )
        )
        return due

    async def claim(self, now: dt.datetime, limit: int, lease: float) -> list[Claimed]:
        """Take up to ``limit`` due events for an attempt each, held for ``lease``
        seconds: the oldest first, and none of a document while an older event of it
        is undelivered (so that a document's events arrive in order)."""
        table = webhook_events.c
        older = webhook_events.alias("older")
        free = or_(table.lease_until.is_(None), table.lease_until < now)
        due = select(table.seq).where(
            or_(and_(table.retry_at.is_(None), table.due_at <= now), table.retry_at <= now),
            free,
            ~exists().where(older.c.doc_id == table.doc_id, older.c.seq < table.seq),
        )
        due = due.order_by(table.seq).limit(limit)
        if self._dialect == "postgresql":
            # Other processes claiming at the same moment skip these rows, not wait.
            due = due.with_for_update(skip_locked=True)
        statement = (
            update(webhook_events)
            .where(table.seq.in_(due.scalar_subquery()), free)
            .values(attempts=table.attempts + 1, lease_until=now + _seconds(lease))
            .returning(
                table.seq,
                table.id,
                table.event,
                table.doc_id,
                table.version_id,
                table.last_at,
                table.due_at,
                table.attempts,
                table.body,
            )
        )
        async with self._write() as conn:
            rows = (await conn.execute(statement)).all()
        claimed = [
            Claimed(
                seq=row.seq,
                id=row.id,
                event=Event(row.event),
                doc_id=row.doc_id,
                version_id=row.version_id,
                at=_aware(row.last_at),
                due_at=_aware(row.due_at),
                attempt=row.attempts,
                body=None if row.body is None else bytes(row.body),
            )
            for row in rows
        ]
        return sorted(claimed, key=lambda event: event.seq)

    async def delivered(self, seq: int) -> None:
        async with self._write() as conn:
            await conn.execute(delete(webhook_events).where(webhook_events.c.seq == seq))

    async def failed(
        self, seq: int, *, retry_at: dt.datetime, body: bytes | None, error: str
    ) -> None:
        """Give the event back, to be attempted again at ``retry_at``, with ``body``
        from then on (None: none was built)."""
        values: dict[str, Any] = {
            "retry_at": retry_at,
            "lease_until": None,
            "last_error": error[:200],
        }
        if body is not None:
            values["body"] = body
        async with self._write() as conn:
            await conn.execute(
                update(webhook_events).where(webhook_events.c.seq == seq).values(values)
            )

    async def release(self, seqs: Sequence[int]) -> None:
        """Give back events whose attempts were abandoned (at shutdown): due at once."""
        if not seqs:
            return
        async with self._write() as conn:
            await conn.execute(
                update(webhook_events)
                .where(webhook_events.c.seq.in_(seqs))
                .values(lease_until=None)
            )

    async def next_due(self) -> dt.datetime | None:
        """The earliest time an event not held by a process may be attempted."""
        table = webhook_events.c
        async with self._engine.connect() as conn:
            value = await conn.scalar(
                select(func.min(func.coalesce(table.retry_at, table.due_at))).where(
                    table.lease_until.is_(None)
                )
            )
        return None if value is None else _aware(_parse(value))

    async def backlog(self) -> int:
        async with self._engine.connect() as conn:
            return int(await conn.scalar(select(func.count()).select_from(webhook_events)) or 0)


def _values(
    event: Event,
    doc_id: str,
    now: dt.datetime,
    *,
    deadline: dt.datetime,
    due: dt.datetime,
    version_id: str | None,
) -> dict[str, Any]:
    return {
        "id": secrets.token_hex(16),
        "event": event.value,
        "doc_id": doc_id,
        "version_id": version_id,
        "first_at": now,
        "last_at": now,
        "deadline_at": deadline,
        "due_at": due,
        "attempts": 0,
    }


def _parse(value: Any) -> dt.datetime:
    # SQLite returns min() over a DateTime column as the stored text.
    return value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
