"""The per-peer protocol handler: what a message from a peer does to its room.

Write permission is enforced here, where messages are handled, so no route or
adapter can forget it.
"""

from __future__ import annotations

import asyncio
import logging
import time

from . import protocol, yupdate
from .peer import Peer, PeerState
from .protocol import (
    AuthMessage,
    AwarenessMessage,
    ProtocolError,
    QueryAwarenessMessage,
    SyncMessage,
    SyncType,
)
from .room import Prepared, Room, RoomState
from .stats import Stats
from .workers import Workers

log = logging.getLogger("collab.handler")


class ProtocolHandler:
    __slots__ = ("peer", "room", "stats", "workers")

    def __init__(self, peer: Peer, room: Room, stats: Stats, workers: Workers) -> None:
        self.peer = peer
        self.room = room
        self.stats = stats
        self.workers = workers

    def receive(self, frame: bytes) -> None:
        """Handle one frame; raises ProtocolError, leaving the room unchanged, if it is bad."""
        message = protocol.decode(frame)
        if isinstance(message, SyncMessage):
            self._sync(message, frame)
        elif isinstance(message, AwarenessMessage):
            self.room.apply_awareness(message.update, self.peer, frame)
        elif isinstance(message, QueryAwarenessMessage):
            states = self.room.presence.encode_all()
            if states is not None:
                self.peer.send(protocol.awareness(states))
        elif isinstance(message, AuthMessage):
            log.debug("peer %s sent an auth message; ignored", self.peer.id)

    async def receive_large(self, frame: bytes) -> None:
        """``receive`` for a frame of ``workers.above`` bytes or more: what reads only
        its bytes runs in a worker thread, so the event loop serves the other rooms
        meanwhile; the rest follows on the loop. The caller's next frame waits for it."""
        message = protocol.decode(frame)
        if not isinstance(message, SyncMessage):
            self.receive(frame)
            return
        payload = message.payload
        if message.kind is SyncType.STEP1:
            try:
                await self.workers.run(lambda: yupdate.check_state_vector(payload))
            except ValueError:
                raise ProtocolError("malformed state vector") from None
            if not self._gone("a state vector"):
                self._step1(payload, checked=True)
            return
        if not self.peer.can_write:
            self._read_only()
            return
        prepared = await self.room.prepare(payload, self.workers)
        if not self._gone("an update"):
            self._apply(message, frame, prepared)

    def _gone(self, what: str) -> bool:
        """Whether the peer or its room closed while a frame of it was in a thread:
        then the frame is dropped (its client sends what it holds again when it
        reconnects, to a room that holds what the store has)."""
        if self.peer.state is PeerState.OPEN and self.room.state is RoomState.OPEN:
            return False
        log.info(
            "peer %s: %s of %r checked after the peer or the room closed; not applied",
            self.peer.id,
            what,
            self.room.doc_id,
            extra={"doc": self.room.doc_id, "peer": self.peer.id, "client": self.peer.client},
        )
        return True

    def _build(self) -> None:
        started = time.perf_counter()
        self.room.build()
        log.debug(
            "room %r built in %.1f ms", self.room.doc_id, (time.perf_counter() - started) * 1000
        )

    def _sync(self, message: SyncMessage, frame: bytes) -> None:
        if message.kind is SyncType.STEP1:
            self._step1(message.payload)
            return
        if message.payload == protocol.EMPTY_UPDATE:
            return  # what a client with nothing new answers to sync step 1
        if not self.peer.can_write:
            self._read_only()
            return
        self._apply(message, frame, None)

    def _step1(self, state_vector: bytes, *, checked: bool = False) -> None:
        try:
            missing = self.room.missing(state_vector, checked=checked)
        except ValueError:
            raise ProtocolError("malformed state vector") from None
        self.peer.send_parts(protocol.sync_step2_head(len(missing)), missing)
        if not self.room.built:
            # Answered from the stored snapshot: build once the answer is out,
            # before anything else of this room needs the document.
            asyncio.get_running_loop().call_soon(self._build)

    def _read_only(self) -> None:
        self.stats.updates_refused += 1
        log.warning(
            "read-only peer %s tried to change %r; refused",
            self.peer.id,
            self.room.doc_id,
            extra={"doc": self.room.doc_id, "peer": self.peer.id, "client": self.peer.client},
        )
        self.peer.send(protocol.permission_denied("read-only"))

    def _apply(self, message: SyncMessage, frame: bytes, prepared: Prepared | None) -> None:
        self.stats.updates_received += 1
        forward = frame if message.kind is SyncType.UPDATE else None
        self.room.apply_update(message.payload, self.peer, forward, prepared=prepared)
