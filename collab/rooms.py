"""The registry of open rooms: shared loads, holders, delayed release, keep-alives."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pycrdt import Doc

from . import protocol
from .closecodes import CloseCode
from .presence import PresenceLimits
from .room import DEFAULT_MAX_DEPTH, Room, RoomState
from .state import StoredDoc

log = logging.getLogger("collab.rooms")

Loader = Callable[[str], Awaitable[Doc[Any] | StoredDoc]]
Attacher = Callable[[Room], None]
Releaser = Callable[[Room], Awaitable[bool]]


class RoomRegistry:
    """Rooms by document id.

    Concurrent joins of a room that is not open share one load; a room is held while
    anyone uses it and released ``release_delay`` seconds after the last holder goes,
    once ``releaser`` has written it (if that fails, the room stays and is retried).
    A room whose memory yrs damaged is dropped at once; ``salvager`` writes what it
    had accepted before, and the next ``acquire`` loads it again from the store.
    """

    def __init__(
        self,
        loader: Loader,
        *,
        attach: Attacher | None = None,
        releaser: Releaser | None = None,
        salvager: Releaser | None = None,
        release_delay: float = 10.0,
        keepalive_interval: float = 10.0,
        observe: Callable[[str, float], None] | None = None,
        max_update_depth: int = DEFAULT_MAX_DEPTH,
        presence_limits: PresenceLimits | None = None,
    ) -> None:
        self._loader = loader
        self._attach = attach
        self._releaser = releaser
        self._salvager = salvager
        self.max_update_depth = max_update_depth
        self.presence_limits = presence_limits
        self.release_delay = release_delay
        self.keepalive_interval = keepalive_interval
        self._observe = observe
        self.rooms: dict[str, Room] = {}
        self._loading: dict[str, asyncio.Task[Room]] = {}
        self._closing: dict[str, asyncio.Task[None]] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._keepalive_task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._keepalive_task = asyncio.get_running_loop().create_task(self._keepalive_loop())

    async def acquire(self, doc_id: str) -> Room:
        """The open room of ``doc_id``, loaded if need be, held until ``release``."""
        while True:
            closing = self._closing.get(doc_id)
            if closing is not None:
                await asyncio.shield(closing)
                continue
            room = self.rooms.get(doc_id)
            if room is not None and room.state is RoomState.OPEN:
                room.holders += 1
                timer = self._timers.pop(doc_id, None)
                if timer is not None:
                    timer.cancel()
                return room
            loading = self._loading.get(doc_id)
            if loading is None:
                loading = asyncio.get_running_loop().create_task(self._load(doc_id))
                loading.add_done_callback(_retrieve)
                self._loading[doc_id] = loading
            await asyncio.shield(loading)

    def release(self, room: Room) -> None:
        room.holders -= 1
        if room.holders == 0 and room.state is RoomState.OPEN:
            self._schedule_close(room, self.release_delay)

    def evict(self, doc_id: str, code: int) -> Room | None:
        """Close a room now, without writing it (its document was deleted)."""
        room = self.rooms.get(doc_id)
        if room is None:
            return None
        self._drop(room)
        room.close_peers(code)
        return room

    def _drop(self, room: Room) -> None:
        """Take a room out of the registry, closed, without writing it."""
        del self.rooms[room.doc_id]
        timer = self._timers.pop(room.doc_id, None)
        if timer is not None:
            timer.cancel()
        room.state = RoomState.CLOSED

    async def close(self, code: int) -> list[Room]:
        """Shutdown: close every peer with ``code``; the rooms, to be written."""
        if self._keepalive_task is not None:
            self._keepalive_task.cancel()
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        rooms = list(self.rooms.values())
        for room in rooms:
            room.close_peers(code)
        return rooms

    async def _load(self, doc_id: str) -> Room:
        started = time.perf_counter()
        try:
            doc = await self._loader(doc_id)
            room = Room(
                doc_id,
                doc,
                max_depth=self.max_update_depth,
                presence_limits=self.presence_limits,
            )
            room.damage_listeners.append(self._damaged)
            if self._attach is not None:
                self._attach(room)
            self.rooms[doc_id] = room
        finally:
            del self._loading[doc_id]
        seconds = time.perf_counter() - started
        if self._observe is not None:
            self._observe("load", seconds)
        log.debug(
            "room %r loaded in %.1f ms",
            doc_id,
            seconds * 1000,
            extra={"doc": doc_id, "duration_ms": round(seconds * 1000, 1)},
        )
        return room

    def _damaged(self, room: Room) -> None:
        if self.rooms.get(room.doc_id) is not room:
            return
        self._drop(room)
        loop = asyncio.get_running_loop()
        # After the handler in progress has closed the peer that sent the update with
        # its own code; the others reconnect and find the room as the store has it.
        loop.call_soon(room.close_peers, CloseCode.SERVICE_RESTART, "document reloading")
        self._closing[room.doc_id] = loop.create_task(self._salvage(room))

    async def _salvage(self, room: Room) -> None:
        try:
            if self._salvager is not None:
                await self._salvager(room)
        finally:
            del self._closing[room.doc_id]

    def _schedule_close(self, room: Room, delay: float) -> None:
        loop = asyncio.get_running_loop()

        def start_close() -> None:
            self._timers.pop(room.doc_id, None)
            if room.holders == 0 and room.state is RoomState.OPEN:
                self._closing[room.doc_id] = loop.create_task(self._close_room(room))

        self._timers[room.doc_id] = loop.call_later(delay, start_close)

    async def _close_room(self, room: Room) -> None:
        room.state = RoomState.CLOSING
        try:
            written = self._releaser is None or await self._releaser(room)
        finally:
            del self._closing[room.doc_id]
        if written:
            room.state = RoomState.CLOSED
            del self.rooms[room.doc_id]
            log.debug("room %r released", room.doc_id, extra={"doc": room.doc_id})
        else:
            room.state = RoomState.OPEN
            if room.holders == 0:
                self._schedule_close(room, max(self.release_delay, 1.0))

    async def _keepalive_loop(self) -> None:
        # A Yjs client drops a connection that has been silent for 30 s; an idle peer
        # is sent an empty awareness update so that it never is.
        marks: dict[int, int] = {}
        while True:
            await asyncio.sleep(self.keepalive_interval)
            seen: dict[int, int] = {}
            for room in list(self.rooms.values()):
                for peer in room.peers:
                    if marks.get(peer.id) == peer.frames_sent and not peer.queued:
                        peer.send(protocol.KEEPALIVE)
                    seen[peer.id] = peer.frames_sent
            marks = seen


def _retrieve(task: asyncio.Task[Room]) -> None:
    if not task.cancelled():
        task.exception()
