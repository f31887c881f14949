"""The per-peer protocol handler: what a message from a peer does to its room.

Write permission is enforced here, where messages are handled, so no route or
adapter can forget it.
"""

from __future__ import annotations

import asyncio
import logging
import time

from . import protocol
from .peer import Peer
from .protocol import (
    AuthMessage,
    AwarenessMessage,
    ProtocolError,
    QueryAwarenessMessage,
    SyncMessage,
    SyncType,
)
from .room import Room
from .stats import Stats

log = logging.getLogger("collab.handler")


class ProtocolHandler:
    __slots__ = ("peer", "room", "stats")

    def __init__(self, peer: Peer, room: Room, stats: Stats) -> None:
        self.peer = peer
        self.room = room
        self.stats = stats

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

    def _build(self) -> None:
        started = time.perf_counter()
        self.room.build()
        log.debug(
            "room %r built in %.1f ms", self.room.doc_id, (time.perf_counter() - started) * 1000
        )

    def _sync(self, message: SyncMessage, frame: bytes) -> None:
        if message.kind is SyncType.STEP1:
            try:
                missing = self.room.missing(message.payload)
            except ValueError:
                raise ProtocolError("malformed state vector") from None
            self.peer.send(protocol.sync_step2(missing))
            if not self.room.built:
                # Answered from the stored snapshot: build once the answer is out,
                # before anything else of this room needs the document.
                asyncio.get_running_loop().call_soon(self._build)
            return
        if message.payload == protocol.EMPTY_UPDATE:
            return  # what a client with nothing new answers to sync step 1
        if not self.peer.can_write:
            self.stats.updates_refused += 1
            log.warning(
                "read-only peer %s tried to change %r; refused",
                self.peer.id,
                self.room.doc_id,
                extra={"doc": self.room.doc_id, "peer": self.peer.id, "client": self.peer.client},
            )
            self.peer.send(protocol.permission_denied("read-only"))
            return
        self.stats.updates_received += 1
        forward = frame if message.kind is SyncType.UPDATE else None
        self.room.apply_update(message.payload, self.peer, forward)
