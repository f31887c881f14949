"""Write-behind persistence of rooms: group commit, compaction, retry with backoff.

Accepted updates are queued in memory and written to the store's log, one transaction
per room per flush tick, by one background task: the fan-out never waits for the
database. While the database is unreachable, rooms keep working from memory and the
writes are retried with backoff; a room with unwritten updates is never released.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pycrdt import Doc

from . import ymerge, yupdate
from .fanout import BUS
from .plaintext import title
from .room import Origin, Room
from .state import StoredDoc, build_doc, compact
from .store import DocumentDeleted, DocumentStore, VersionInfo
from .workers import Workers

# An unwritten update: its bytes, whether the room applied it whole, and its
# ``yupdate.split`` where the room read it (Room.applied_parts).
Pending = tuple[bytes, bool, yupdate.Parts | None]

log = logging.getLogger("collab.persistence")

# Rooms written at once by a flush: enough to keep a connection pool busy. Starting
# one write per room at once would hold a suspended database call (and its greenlet
# stack) for each of thousands of rooms, memory the process never gives back.
FLUSH_CONCURRENCY = 8

# Past this many unwritten updates of one room (a long outage), they are merged into
# one, so memory grows with the document, not with the number of keystrokes.
MERGE_PENDING_ABOVE = 256

# A room whose oldest unwritten update has waited this many flush intervals, while
# writes succeed, is late: its readers give the write a turn as long as theirs.
LATE_INTERVALS = 2


class LoadError(RuntimeError):
    pass


# Told how long an operation ("flush", "snapshot") took, in seconds.
Observer = Callable[[str, float], None]


class Persistence:
    def __init__(
        self,
        store: DocumentStore,
        *,
        flush_interval: float = 0.1,
        snapshot_interval: float = 60.0,
        snapshot_threshold: int = 500,
        retry_max_delay: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        observe: Observer | None = None,
        version_quiet: float = 30.0,
        version_retention: int = 20,
        shared: bool = False,
        workers: Workers | None = None,
    ) -> None:
        self.store = store
        # Where a batch of large updates is merged (None: on the event loop).
        self._workers = workers
        self.flush_interval = flush_interval
        self.snapshot_interval = snapshot_interval
        self.snapshot_threshold = snapshot_threshold
        self.retry_max_delay = retry_max_delay
        self.healthy = True
        self.last_error = ""
        self._clock = clock
        self._observe = observe
        self.version_quiet = version_quiet
        self.version_retention = version_retention
        # Other processes serve the same documents: memory may hold edits that one of
        # them accepted and died before writing.
        self.shared = shared
        self._rooms: dict[str, Room] = {}
        self._last_change: dict[str, float] = {}  # doc id -> last change not yet versioned
        # doc id -> its unwritten updates, each with whether it was applied whole
        self._pending: dict[str, list[Pending]] = {}
        # doc id -> when its oldest unwritten update was accepted (or, for updates that
        # arrived during a write, when that write began: no later than their arrival)
        self._unwritten_since: dict[str, float] = {}
        self._log_rows: dict[str, int] = {}
        self._titles: dict[str, str] = {}  # doc id -> the title its last write stored
        self._changed_at: dict[str, float] = {}  # doc id -> first change since its snapshot
        self._compact_due: set[str] = set()
        self._wake = asyncio.Event()
        self._compact_wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._doc_locks: dict[str, asyncio.Lock] = {}
        # doc id -> done at the end of the room's next write (attempt), for readers
        # giving the write its turn (see ``give_way``)
        self._written: dict[str, asyncio.Future[None]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        # Told (doc id, updates written) after a write of a document's updates.
        self.stored_listeners: list[Callable[[str, int], None]] = []

    @property
    def pending_updates(self) -> int:
        return sum(len(updates) for updates in self._pending.values())

    def write_lag(self) -> float:
        """Seconds since the oldest update not yet in the database was accepted."""
        if not self._unwritten_since:
            return 0.0
        return max(0.0, self._clock() - min(self._unwritten_since.values()))

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._keep_running(self._flush_loop), name="collab-flush"),
            loop.create_task(self._keep_running(self._compact_loop), name="collab-compact"),
        ]

    async def _keep_running(self, loop: Callable[[], Awaitable[None]]) -> None:
        """Run a background loop until the stop, through any error it did not expect:
        one such error must not end the writes, or make the shutdown's final write fail."""
        while True:
            try:
                await loop()
                return
            except Exception:
                log.exception("%s failed; restarting it", loop.__name__)
            if await self._stopped_within(self.retry_max_delay):
                return

    async def stop(self) -> None:
        # The loops finish the write they are in: cancelling one mid-transaction
        # could leave the database locked.
        self._stopping.set()
        self._wake.set()
        self._compact_wake.set()
        await asyncio.gather(*self._tasks)
        self._tasks = []

    async def load(self, doc_id: str) -> Doc[Any] | StoredDoc:
        """The stored document: built, or, when it is one snapshot of known state
        vector (as compaction leaves it), to be built on first use."""
        state = await self.store.load(doc_id)
        if state.snapshot and state.state_vector and not state.updates:
            self._log_rows[doc_id] = 0
            return StoredDoc(state.snapshot, state.state_vector)
        try:
            doc = build_doc(state.snapshot, state.updates)
        except ValueError as exc:
            raise LoadError(f"stored state of {doc_id!r} does not decode: {exc}") from exc
        self._log_rows[doc_id] = len(state.updates)
        return doc

    def attach(self, room: Room) -> None:
        self._rooms[room.doc_id] = room
        room.update_listeners.append(self._on_update)

    def _on_update(self, room: Room, update: bytes, origin: Origin) -> None:
        if origin == BUS:
            # Updates from another collab process were logged by the process that
            # accepted them from a client; logging them again would only waste space.
            return
        pending = self._pending.setdefault(room.doc_id, [])
        # The parts only where the update can be merged with one before it: a room's
        # only unwritten update is written as it is, and a thousand rooms' parts held
        # to the next write were a quarter of a KiB more per connection.
        parts = room.applied_parts if pending else None
        pending.append((update, room.applied_whole, parts))
        now = self._clock()
        self._unwritten_since.setdefault(room.doc_id, now)
        self._changed_at.setdefault(room.doc_id, now)
        self._last_change[room.doc_id] = now
        self._wake.set()

    def has_pending(self, doc_id: str) -> bool:
        return bool(self._pending.get(doc_id))

    def late(self, doc_id: str) -> bool:
        """Whether the room's oldest unwritten update has waited two flush intervals
        while writes succeed: the event loop is too busy reading for its write."""
        since = self._unwritten_since.get(doc_id)
        return (
            since is not None
            and self.healthy
            and self._clock() - since > LATE_INTERVALS * self.flush_interval
        )

    async def give_way(self, doc_id: str, seconds: float) -> None:
        """Wait, up to ``seconds``, for the room's next write to end.

        A reader that is never short of frames (a client sending as fast as it can)
        otherwise keeps the loop for itself: the write's every step (a database
        round trip, the merge of its batch in a thread, which shares the GIL) waits for
        the reader's next turn, and writes fell seconds behind. Its socket waits
        meanwhile, so TCP slows the sender down to what the database takes.

        The wait is bounded by the reader's own turn, not by the write: a write may take
        long for reasons the reader cannot help (a process short of CPU, a batch of
        megabytes to merge), and a reader waiting a whole write per turn of reading
        left the room's clients seconds behind (the ones on a capped process at
        10 edits/s, p99 0.8-1.3 s) and a flooding sender at a fraction of its pace.
        Half the loop for the write, while the room is late, keeps the write within a
        few flush intervals (the health check holds writers past COLLAB_MAX_WRITE_LAG)."""
        future = self._written.get(doc_id)
        if future is None:
            future = self._written[doc_id] = asyncio.get_running_loop().create_future()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(future), seconds)

    def _wrote(self, doc_id: str) -> None:
        """Wake the readers waiting for the room's write (it ended, either way)."""
        future = self._written.pop(doc_id, None)
        if future is not None and not future.done():
            future.set_result(None)

    async def flush(self, doc_id: str) -> bool:
        """Write the room's queued updates; False if the write failed. Updates that
        arrive during the write are left for the next one."""
        try:
            return await self._flush(doc_id)
        finally:
            self._wrote(doc_id)

    async def _flush(self, doc_id: str) -> bool:
        async with self._lock(doc_id):
            batch = self._pending.get(doc_id)
            if not batch:
                return True
            count = len(batch)
            began = self._clock()
            started = time.perf_counter()
            try:
                merged_rows = await self._merged(batch[:count])
                if self._pending.get(doc_id) is not batch:
                    return True  # discarded (deleted) while it was merged
                retitled = self._retitled(doc_id)
                rows = await self.store.append(doc_id, merged_rows, title=retitled)
            except DocumentDeleted:
                log.warning(
                    "%d updates to deleted document %r dropped",
                    count,
                    doc_id,
                    extra={"doc": doc_id},
                )
                del self._pending[doc_id]
                self._unwritten_since.pop(doc_id, None)
                return True
            except Exception as exc:
                self._failed(f"writing {doc_id!r}", exc, doc_id)
                if len(batch) > MERGE_PENDING_ABOVE:
                    updates = [update for update, _, _ in batch]
                    merged, pending, _ = compact(None, updates)
                    batch[:] = [
                        (merged, False, None),
                        *((updates[i], False, None) for i in pending),
                    ]
                return False
            if self._observe is not None:
                self._observe("flush", time.perf_counter() - started)
            if retitled is not None:
                self._titles[doc_id] = retitled
            del batch[:count]
            if batch:
                self._unwritten_since[doc_id] = began
            else:
                del self._pending[doc_id]
                del self._unwritten_since[doc_id]
            self._log_rows[doc_id] = rows
            if rows >= self.snapshot_threshold:
                self._compact_due.add(doc_id)
                self._compact_wake.set()
            self._recovered()
            for listener in self.stored_listeners:
                listener(doc_id, count)
            return True

    async def _merged(self, batch: list[Pending]) -> list[bytes]:
        """``log_rows(batch)``; in a worker thread if the batch is large (a copy the
        room's new updates do not change)."""
        workers = self._workers
        if workers is None or not workers.large(sum(len(update) for update, _, _ in batch)):
            return log_rows(batch)
        return await workers.run(lambda: log_rows(batch))

    async def _flush_out(self, doc_id: str) -> bool:
        """Write until nothing of the room is left unwritten; False if a write failed."""
        while self.has_pending(doc_id):
            if not await self.flush(doc_id):
                return False
        return True

    async def compact(self, doc_id: str) -> bool:
        async with self._lock(doc_id):
            started = time.perf_counter()
            try:
                await self.store.compact(doc_id)
            except Exception as exc:
                self._failed(f"compacting {doc_id!r}", exc, doc_id)
                return False
            if self._observe is not None:
                self._observe("snapshot", time.perf_counter() - started)
            self._log_rows[doc_id] = 0
            self._changed_at.pop(doc_id, None)
            self._compact_due.discard(doc_id)
            return True

    async def release(self, room: Room) -> bool:
        """Write everything of a room about to leave memory; False if that failed."""
        if not await self._flush_out(room.doc_id):
            return False
        if self.shared and not await self.write_missing(room):
            return False
        if self._uncompacted(room.doc_id):
            await self.compact(room.doc_id)  # a failure leaves a longer log, nothing lost
        if room.doc_id in self._last_change:
            await self.save_version(room, kind="auto")
        self._forget(room.doc_id)
        return True

    async def salvage(self, room: Room) -> bool:
        """Write what a damaged room accepted before yrs failed, and nothing from its
        memory: no version, no compaction, no comparison with the store."""
        # Not even its title: the writes below take none from the room.
        self._rooms.pop(room.doc_id, None)
        delay = self.flush_interval
        while not await self._flush_out(room.doc_id):
            if await self._stopped_within(delay):
                return False  # shutdown writes what is still pending
            delay = min(delay * 2, self.retry_max_delay)
        self._forget(room.doc_id)
        return True

    async def write_missing(self, room: Room) -> bool:
        """Log whatever the room holds that the database lacks; False if that failed.

        With several processes, an edit is logged by the process that accepted it; if
        that process died before its flush, the others still hold the edit.
        """
        async with self._lock(room.doc_id):
            try:
                stored = await self.store.load(room.doc_id)
                written = build_doc(stored.snapshot, stored.updates)
                missing = room.doc.get_update(written.get_state())
                before = written.get_update()
                written.apply_update(missing)
                if written.get_update() == before:
                    return True
                retitled = self._retitled(room.doc_id)
                self._log_rows[room.doc_id] = await self.store.append(
                    room.doc_id, [missing], title=retitled
                )
                if retitled is not None:
                    self._titles[room.doc_id] = retitled
            except DocumentDeleted:
                return True
            except Exception as exc:
                self._failed(f"checking {room.doc_id!r} against memory", exc, room.doc_id)
                return False
        self._changed_at.setdefault(room.doc_id, self._clock())
        log.warning(
            "wrote %d bytes of %r that only memory held (another process's unwritten edits)",
            len(missing),
            room.doc_id,
            extra={"doc": room.doc_id},
        )
        return True

    async def save_version(
        self, room: Room, *, kind: str, label: str = "", created_by: str = "collab"
    ) -> VersionInfo | None:
        """Save the room's current content as a version; None if the database failed."""
        if kind == "auto":
            self._last_change.pop(room.doc_id, None)
        try:
            return await self.store.add_version(
                room.doc_id,
                room.doc.get_update(),
                label=label,
                created_by=created_by,
                kind=kind,
                keep_auto=self.version_retention,
            )
        except DocumentDeleted:
            return None
        except Exception as exc:
            self._failed(f"saving a version of {room.doc_id!r}", exc, room.doc_id)
            return None

    def discard(self, doc_id: str) -> None:
        """Forget a deleted document's unwritten updates."""
        self._pending.pop(doc_id, None)
        self._unwritten_since.pop(doc_id, None)
        self._forget(doc_id)

    async def flush_all(self) -> bool:
        """Write every room's queued updates once; False if any write failed."""
        doc_ids = iter(list(self._pending))

        async def writer() -> bool:
            written = True
            for doc_id in doc_ids:  # shared: each room is taken by one writer
                written = await self.flush(doc_id) and written
            return written

        results = await asyncio.gather(*(writer() for _ in range(FLUSH_CONCURRENCY)))
        return all(results)

    async def close(self, rooms: list[Room], deadline: float) -> bool:
        """At shutdown: write and compact every room, retrying until ``deadline``."""
        await self.stop()
        delay = self.flush_interval
        while not await self.flush_all() or self._pending:
            if time.monotonic() + delay > deadline:
                log.error(
                    "shutdown: %d updates could not be written: %s",
                    self.pending_updates,
                    self.last_error,
                )
                return False
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.retry_max_delay)
        for room in rooms:
            if self._uncompacted(room.doc_id) and time.monotonic() < deadline:
                await self.compact(room.doc_id)
        return True

    def _uncompacted(self, doc_id: str) -> bool:
        # Rows written while a compaction ran count in the log, not in _changed_at.
        return doc_id in self._changed_at or bool(self._log_rows.get(doc_id))

    async def _flush_loop(self) -> None:
        # An update waits at most flush_interval before a write of it begins: behind,
        # the loop writes continuously; it backs off only while writes fail.
        failures = 0
        while True:
            await self._wake.wait()
            self._wake.clear()
            if failures:
                delay = min(self.flush_interval * 2**failures, self.retry_max_delay)
            else:
                delay = max(0.0, self.flush_interval - self.write_lag())
            if await self._stopped_within(delay):
                return
            failures = 0 if await self.flush_all() else min(failures + 1, 30)
            if self._pending:
                self._wake.set()

    async def _compact_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._compact_wake.wait(), self._tick())
            self._compact_wake.clear()
            if self._stopping.is_set():
                return
            now = self._clock()
            due = set(self._compact_due)
            due.update(
                doc_id
                for doc_id, since in self._changed_at.items()
                if now - since >= self.snapshot_interval and not self.has_pending(doc_id)
            )
            quiet = [
                doc_id
                for doc_id, last in self._last_change.items()
                if now - last >= self.version_quiet and doc_id in self._rooms
            ]
            for doc_id in quiet:
                # Each save awaits: a room may have left memory (its release saved
                # its version) or been saved meanwhile.
                room = self._rooms.get(doc_id)
                if room is not None and doc_id in self._last_change:
                    await self.save_version(room, kind="auto")
            for doc_id in due:
                if self._stopping.is_set():
                    return
                if not await self.compact(doc_id):
                    if await self._stopped_within(self.retry_max_delay):
                        return
                    break

    async def _stopped_within(self, seconds: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
        return self._stopping.is_set()

    def _tick(self) -> float:
        return max(0.05, min(self.snapshot_interval / 4, self.version_quiet / 4, 5.0))

    def _lock(self, doc_id: str) -> asyncio.Lock:
        lock = self._doc_locks.get(doc_id)
        if lock is None:
            lock = self._doc_locks[doc_id] = asyncio.Lock()
        return lock

    def _retitled(self, doc_id: str) -> str | None:
        """The room's title if a write should store it: its first, or a changed one.
        It reads only the blocks up to the first line, so every write may ask."""
        room = self._rooms.get(doc_id)
        if room is None:
            return None
        current = title(room.doc)
        return None if self._titles.get(doc_id) == current else current

    def _forget(self, doc_id: str) -> None:
        self._wrote(doc_id)
        self._rooms.pop(doc_id, None)
        self._titles.pop(doc_id, None)
        self._last_change.pop(doc_id, None)
        self._log_rows.pop(doc_id, None)
        self._changed_at.pop(doc_id, None)
        self._compact_due.discard(doc_id)
        lock = self._doc_locks.get(doc_id)
        if lock is not None and not lock.locked():
            del self._doc_locks[doc_id]

    def _failed(self, what: str, exc: Exception, doc_id: str) -> None:
        self.last_error = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        if self.healthy:
            log.error(
                "database write failed (%s): %s; retrying",
                what,
                self.last_error,
                extra={"doc": doc_id},
            )
        self.healthy = False

    def _recovered(self) -> None:
        if not self.healthy:
            log.warning("database writes succeed again")
        self.healthy = True


def log_rows(batch: list[Pending]) -> list[bytes]:
    """The log rows for a batch: each run of updates that were applied whole, merged
    into one (group commit); any other update as a row of its own, in order, so that
    a load applies the log as the room applied the updates."""
    rows: list[bytes] = []
    run: list[bytes] = []
    parts: list[yupdate.Parts | None] = []
    for update, whole, split in batch:
        if whole:
            run.append(update)
            parts.append(split)
            continue
        rows.extend(ymerge.merge(run, parts))
        run.clear()
        parts.clear()
        rows.append(update)
    rows.extend(ymerge.merge(run, parts))
    return rows
