"""The documents service: the one owner of a document's life in this process.

It builds the store, the write path, the rooms and (with Redis) the fan-out; opens,
edits, deletes and versions documents; starts and stops it all; answers readiness;
and tells the embedding host's hooks what happens. Routes, the socket endpoint and
hosts talk to it alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry
from pycrdt import Doc

from . import hooks as events
from . import yupdate
from .closecodes import CloseCode
from .fanout import Fanout, is_relayed
from .health import Health
from .hooks import ChangeDebouncer, HookRunner, Hooks
from .migrate import check_schema
from .outbox import Debounce
from .peer import Peer
from .persistence import Persistence
from .presence import PresenceLimits
from .restore import restore
from .room import Origin, Prepared, Room, RoomState
from .rooms import RoomRegistry
from .settings import Settings
from .sqlstore import SqlStore, create_engine
from .store import DocumentDeleted, DocumentInfo, DocumentNotFound, VersionInfo
from .web import dependencies
from .workers import Workers

if TYPE_CHECKING:
    from .webhooks import Webhooks

log = logging.getLogger("collab.documents")

READY_TIMEOUT = 2.0

# Collections of the middle generation between two full ones, at least.
FULL_COLLECTION_EVERY = 100

Observer = Callable[[str, float], None]


class NotStarted(RuntimeError):
    """The service was used before its lifespan started it (or after it stopped)."""


class Documents:
    def __init__(
        self,
        settings: Settings,
        *,
        hooks: Hooks | None = None,
        observe: Observer | None = None,
        metrics: CollectorRegistry | None = None,
    ) -> None:
        self.settings = settings
        self.hooks = hooks or Hooks()
        self.runner = HookRunner(self.hooks, timeout=settings.hook_timeout)
        self.started = False
        # Threads for the pure-Python passes over large updates (collab.workers).
        self.workers = Workers()
        self.engine = create_engine(settings.database_url)
        self.store = SqlStore(self.engine, webhooks=Debounce.of(settings))
        # The deliverer of the events the store records with the changes they report.
        self.webhooks: Webhooks | None = None
        if settings.webhook_url:  # its HTTP client is imported only then
            from .webhooks import Webhooks

            self.webhooks = Webhooks.of(settings, self.store, metrics)
        self.persistence = Persistence(
            self.store,
            flush_interval=settings.flush_interval,
            snapshot_interval=settings.snapshot_interval,
            snapshot_threshold=settings.snapshot_threshold,
            retry_max_delay=settings.retry_max_delay,
            observe=observe,
            version_quiet=settings.version_quiet,
            version_retention=settings.version_retention,
            shared=bool(settings.redis_url),
            workers=self.workers,
        )
        self.health = Health(
            self.persistence, self.store.ping, max_write_lag=settings.max_write_lag
        )
        self.fanout = self._fanout()
        persistence = self.persistence
        self.registry = RoomRegistry(
            persistence.load
            if self.fanout is None
            else partial(self.fanout.load, loader=persistence.load),
            attach=self._attach,
            releaser=self._release,
            salvager=self._salvage,
            release_delay=settings.room_release_delay,
            keepalive_interval=settings.keepalive_interval,
            observe=observe,
            max_update_depth=settings.max_update_depth,
            presence_limits=PresenceLimits(
                clients_per_peer=settings.max_awareness_clients,
                state_bytes=settings.max_awareness_state,
                clients_per_room=settings.max_room_awareness_clients,
            ),
        )
        self._changes = (
            ChangeDebouncer(
                self._report_change, self.hooks.change_debounce, self.hooks.change_max_wait
            )
            if self.hooks.on_change is not None
            else None
        )
        if self.hooks.on_store is not None:
            persistence.stored_listeners.append(self._stored)

    # Life

    async def start(self) -> None:
        if self.started:
            raise RuntimeError("collab's lifespan is already running")
        if self.fanout is not None:
            dependencies.check(dependencies.REDIS)
        await check_schema(self.engine)
        await self.store.open()
        # What exists now lives as long as the process: out of the collector's way, a
        # full collection scans only what the rooms and peers made (a 60-80 ms pause
        # every few seconds under load before).
        gc.collect()
        gc.freeze()
        # A full collection scans every room and peer: by default one follows every
        # ten of the middle generation, and a server opening 2,000 sockets spent a
        # fifth of its CPU (~75 us a socket) in four of them, each a 30-50 ms pause.
        # Young garbage is collected as often as before.
        young, middle, full = gc.get_threshold()
        gc.set_threshold(young, middle, max(full, FULL_COLLECTION_EVERY))
        self.persistence.start()
        self.health.start()
        self.registry.start()
        if self.fanout is not None:
            self.fanout.start()
        if self.webhooks is not None:
            self.webhooks.start()
        self.started = True

    async def close(self) -> None:
        """Shutdown: close every peer, write every room, stop everything."""
        self.started = False
        settings = self.settings
        deadline = time.monotonic() + settings.shutdown_timeout
        rooms = await self.registry.close(CloseCode.SERVICE_RESTART)
        written = await self.persistence.close(rooms, deadline)
        log.info("shutdown: %d rooms written%s", len(rooms), "" if written else " (incomplete)")
        fanout = self.fanout
        if fanout is not None:
            # Another process may have died holding edits it had not written.
            for room in fanout.changed_by_silent():
                if time.monotonic() < deadline:
                    await self.persistence.write_missing(room)
            await fanout.close()
        if self._changes is not None:
            await self._changes.flush()
        if self.webhooks is not None:
            await self.webhooks.close()
        loop = asyncio.get_running_loop()
        await self.runner.close(loop.time() + max(0.0, deadline - time.monotonic()))
        await self.health.stop()
        await self.store.close()
        self.workers.close()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Documents]:
        await self.start()
        try:
            yield self
        finally:
            await self.close()

    async def problems(self) -> dict[str, str]:
        """What keeps this process from serving: empty when it is ready."""
        if not self.started:
            return {"lifespan": "collab's lifespan has not run"}
        await self.health.check_database()
        self.health.sample()
        failing = self.health.problems()
        if self.fanout is not None:
            try:
                await asyncio.wait_for(self.fanout.transport.ping(), READY_TIMEOUT)
            except Exception as exc:
                failing["redis"] = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
        return failing

    def stats(self) -> dict[str, Any]:
        rooms = {doc_id: len(room.peers) for doc_id, room in self.registry.rooms.items()}
        return {
            "rooms": len(rooms),
            "peers": sum(rooms.values()),
            "unwritten_updates": self.persistence.pending_updates,
            "processes": 1 + (self.fanout.processes if self.fanout is not None else 0),
            "peers_by_room": rooms,
        }

    # Documents

    async def list_documents(self, limit: int, offset: int) -> list[DocumentInfo]:
        return await self.store.list_documents(limit, offset)

    async def info(self, doc_id: str) -> DocumentInfo:
        """DocumentNotFound (or DocumentDeleted) unless it exists."""
        return await self.store.get_document(doc_id)

    async def create(self, doc_id: str) -> DocumentInfo:
        """DocumentExists if it does; a deleted id is created again."""
        self._check_started()
        return await self.store.create_document(doc_id)

    async def delete(self, doc_id: str) -> None:
        """Tombstone a document: its room, its peers and its unwritten edits go, on
        every process. DocumentNotFound if there is no such document."""
        self._check_started()
        await self.store.delete_document(doc_id, unwritten=doc_id in self.registry.rooms)
        self._forget(doc_id)
        if self.fanout is not None:
            self.fanout.deleted(doc_id)
        log.info("deleted document %r", doc_id, extra={"doc": doc_id})
        self.runner.notify("on_delete", events.DocumentDeleted(doc_id))

    @contextlib.asynccontextmanager
    async def open(self, doc_id: str, *, create: bool = False) -> AsyncIterator[Room]:
        """The document's room, held for the duration (loaded if it was not open).
        DocumentNotFound unless the document exists or ``create``; DocumentDeleted for
        a tombstoned id."""
        if not create and doc_id not in self.registry.rooms:
            self._check_started()
            await self.store.get_document(doc_id)
        room = await self.acquire(doc_id)
        try:
            yield room
        finally:
            self.release(room)

    async def acquire(self, doc_id: str) -> Room:
        """The document's room, loaded if need be (opening a socket on a new id
        creates the document), held until ``release``."""
        self._check_started()
        return await self.registry.acquire(doc_id)

    def release(self, room: Room) -> None:
        self.registry.release(room)

    async def apply(self, doc_id: str, update: bytes, origin: str) -> None:
        """Merge a client's Yjs update: checked, stored, sent to live peers; a
        ProtocolError, with nothing applied (and no document created), if it is not
        well formed."""
        max_depth = self.settings.max_update_depth
        if self.workers.large(len(update)):
            checked = await self.workers.run(lambda: yupdate.inspect(update, max_depth))
        else:
            checked = yupdate.inspect(update, max_depth, parts=True)
        await self._apply(doc_id, update, origin, strict=True, checked=checked)

    async def apply_change(self, doc_id: str, change: bytes, origin: str) -> None:
        """Apply a change the server made (a restore, a content write, an edit): stored
        and sent to live peers, like a client's, but its parents may be anywhere."""
        await self._apply(doc_id, change, origin, strict=False)

    async def _apply(
        self,
        doc_id: str,
        update: bytes,
        origin: str,
        *,
        strict: bool,
        checked: yupdate.Checked | None = None,
    ) -> None:
        # A large update is prepared in the workers' threads; if its room closed
        # meanwhile (yrs damaged it on another update), the room that replaces it takes it.
        while True:
            async with self.open(doc_id, create=True) as room:
                prepared = None
                if self.workers.large(len(update)):
                    prepared = await room.prepare(update, self.workers, checked=checked)
                    if room.state is not RoomState.OPEN:
                        continue
                elif checked is not None:
                    prepared = Prepared(update, checked, None, None)
                room.apply_update(update, origin, strict=strict, prepared=prepared)
                return

    @contextlib.asynccontextmanager
    async def edit(self, doc_id: str, origin: str = "server") -> AsyncIterator[Doc[Any]]:
        """A server-side edit: a copy of the document to change; on a clean exit what
        changed in it is applied through the room as one change (sent to live peers,
        stored, kept in history), whether the room was open or not. The document is
        created if need be; an exception inside discards the change."""
        async with self.open(doc_id, create=True) as room:
            scratch: Doc[Any] = Doc()
            scratch.apply_update(room.doc.get_update())
            before = scratch.get_state()
            yield scratch
            change = scratch.get_update(before)
        await self.apply_change(doc_id, change, origin)

    async def read(self, doc_id: str) -> Doc[Any]:
        """A copy of the document as it is now (for a hook to read)."""
        async with self.open(doc_id) as room:
            copy: Doc[Any] = Doc()
            copy.apply_update(room.doc.get_update())
            return copy

    async def state(self, doc_id: str) -> bytes:
        """The whole document as one Yjs v1 update."""
        async with self.open(doc_id) as room:
            state: bytes = room.doc.get_update()
            return state

    # Versions

    async def versions(self, doc_id: str) -> list[VersionInfo]:
        async with self.open(doc_id) as room:
            return await self.store.list_versions(room.doc_id)

    async def version_state(self, doc_id: str, version_id: str) -> bytes:
        """VersionNotFound unless the document has that version."""
        async with self.open(doc_id) as room:
            state: bytes = await self.store.version_state(room.doc_id, version_id)
            return state

    async def save_version(
        self, doc_id: str, *, label: str = "", created_by: str, kind: str = "manual"
    ) -> VersionInfo | None:
        """The current content saved as a version; None if the database failed."""
        async with self.open(doc_id) as room:
            return await self.persistence.save_version(
                room, kind=kind, label=label, created_by=created_by
            )

    async def restore(self, doc_id: str, version_id: str, *, created_by: str) -> VersionInfo | None:
        """The live content becomes the version's, for every peer, as a new change;
        the content it replaces is saved as a version first (returned; None if that
        failed, and then nothing changed)."""
        async with self.open(doc_id) as room:
            state = await self.store.version_state(doc_id, version_id)
            backup = await self.persistence.save_version(
                room, kind="restore", created_by=created_by
            )
            if backup is None:
                return None
            # Computed on a copy, then applied like any edit: stored and sent to peers.
            scratch: Doc[Any] = Doc()
            scratch.apply_update(room.doc.get_update())
            changes: list[bytes] = []
            subscription = scratch.observe(lambda event: changes.append(event.update))
            restore(scratch, state)
            scratch.unobserve(subscription)
            for update in changes:
                await self.apply_change(doc_id, update, "restore")
        log.info("restored %r to version %s", doc_id, version_id, extra={"doc": doc_id})
        return backup

    # Peers

    def connected(self, room: Room, peer: Peer) -> None:
        if self.hooks.on_connect is not None:
            self.runner.notify(
                "on_connect",
                events.PeerConnected(
                    room.doc_id, str(peer.id), peer.user, not peer.can_write, peer.client
                ),
            )

    def disconnected(self, room: Room, peer: Peer) -> None:
        if self.hooks.on_disconnect is not None:
            self.runner.notify(
                "on_disconnect",
                events.PeerDisconnected(
                    room.doc_id,
                    str(peer.id),
                    peer.user,
                    peer.close_code,
                    peer.close_reason or "",
                    (time.monotonic() - peer.opened_at) * 1000,
                ),
            )

    # Internals

    def _check_started(self) -> None:
        if not self.started:
            raise NotStarted(
                "collab's lifespan has not run: pass collab.lifespan to the host "
                "application (FastAPI(lifespan=collab.lifespan)), or enter it in yours"
            )

    def _attach(self, room: Room) -> None:
        self.persistence.attach(room)
        if self.fanout is not None:
            self.fanout.attach(room)
        if self._changes is not None:
            room.update_listeners.append(self._changed)
        self.runner.notify("on_load", events.DocumentLoaded(room.doc_id))

    def _changed(self, room: Room, update: bytes, origin: Origin) -> None:
        assert self._changes is not None
        if is_relayed(origin):
            return  # reported by the process that accepted it, as it is stored there
        self._changes.changed(room.doc_id, origin.user if isinstance(origin, Peer) else origin)

    async def _report_change(self, event: events.DocumentChanged) -> None:
        hook = self.hooks.on_change
        assert hook is not None
        with contextlib.suppress(events.HookFailed):
            await self.runner.call("on_change", hook(event))

    def _stored(self, doc_id: str, updates: int) -> None:
        self.runner.notify("on_store", events.DocumentStored(doc_id, updates))

    async def _release(self, room: Room) -> bool:
        if not await self.persistence.release(room):
            return False
        if self.fanout is not None:
            await self.fanout.detach(room.doc_id)
        return True

    async def _salvage(self, room: Room) -> bool:
        if self.fanout is not None:
            await self.fanout.detach(room.doc_id)
        return await self.persistence.salvage(room)

    def _forget(self, doc_id: str) -> None:
        """A deleted document leaves memory: its unwritten updates, its room, its peers."""
        self.persistence.discard(doc_id)
        self.registry.evict(doc_id, CloseCode.DOCUMENT_DELETED)

    def _fanout(self) -> Fanout | None:
        settings = self.settings
        if not settings.redis_url:
            return None

        async def check_storage(rooms: list[Room]) -> None:
            for room in rooms:
                await self.persistence.write_missing(room)

        from .redisbus import RedisTransport  # redis-py is imported only with Redis

        transport = RedisTransport(
            settings.redis_url,
            retry_max_delay=settings.redis_retry_max_delay,
            idle_timeout=max(3 * settings.redis_heartbeat_interval, 5.0),
        )
        return Fanout(
            transport,
            prefix=settings.redis_prefix,
            heartbeat_interval=settings.redis_heartbeat_interval,
            process_timeout=settings.redis_process_timeout,
            join_timeout=settings.redis_join_timeout,
            on_deleted=self._forget,
            on_process_gone=check_storage,
            find_deleted=self.store.deleted_among,
            workers=self.workers,
        )


__all__ = ["DocumentDeleted", "DocumentNotFound", "Documents", "NotStarted"]
