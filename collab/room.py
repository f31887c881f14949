"""A room: one document held in memory, its presence and its peers."""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from typing import Any, TypeAlias

from pycrdt import Doc

from . import protocol
from .peer import Peer
from .presence import Presence, PresenceLimits
from .protocol import ProtocolError
from .state import StoredDoc

log = logging.getLogger("collab.room")

# Who made an update: a local peer, or a string naming a non-peer source
# ("api", "bus", "restore"); listeners use it so an update is never sent back
# where it came from.
Origin: TypeAlias = Peer | str
UpdateListener: TypeAlias = Callable[["Room", bytes, Origin], None]
AwarenessListener: TypeAlias = Callable[["Room", bytes, Origin], None]


class RoomState(enum.Enum):
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


class Room:
    def __init__(
        self,
        doc_id: str,
        doc: Doc[Any] | StoredDoc,
        *,
        presence_limits: PresenceLimits | None = None,
    ) -> None:
        self.doc_id = doc_id
        self._doc = doc if isinstance(doc, Doc) else None
        self._stored = doc if isinstance(doc, StoredDoc) else None
        self.presence = Presence(presence_limits, doc_id)
        self.peers: set[Peer] = set()
        self.state = RoomState.OPEN
        self.holders = 0
        self.update_listeners: list[UpdateListener] = []
        self.awareness_listeners: list[AwarenessListener] = []

    def __repr__(self) -> str:
        return f"<Room {self.doc_id!r} {self.state.value} peers={len(self.peers)}>"

    @property
    def doc(self) -> Doc[Any]:
        """The document, built from its stored snapshot on first use."""
        if self._doc is None:
            self.build()
            assert self._doc is not None
        return self._doc

    def build(self) -> None:
        if self._stored is not None:
            self._doc = self._stored.build()
            self._stored = None

    @property
    def built(self) -> bool:
        return self._doc is not None

    def missing(self, state_vector: bytes) -> bytes:
        """What a peer at ``state_vector`` lacks; ValueError if that is malformed."""
        if self._stored is not None:
            return self._stored.missing(state_vector)
        return self.doc.get_update(state_vector)

    def join(self, peer: Peer) -> None:
        """Start the sync handshake with a new peer and show it who is here."""
        self.peers.add(peer)
        state = self._stored.state_vector if self._stored is not None else self.doc.get_state()
        peer.send(protocol.sync_step1(state))
        states = self.presence.encode_all()
        if states is not None:
            peer.send(protocol.awareness(states))

    def leave(self, peer: Peer) -> None:
        self.peers.discard(peer)
        removal = self.presence.remove_owned_by(peer)
        if removal is not None:
            self.broadcast_awareness(removal, peer)

    def apply_update(self, update: bytes, origin: Origin, frame: bytes | None = None) -> None:
        """Merge an update and send it to every peer but its origin.

        ``frame`` is the update message as received, when there is one: it is sent
        as it is, so the bytes are encoded once for all peers, never per peer.
        """
        if update == protocol.EMPTY_UPDATE:
            return
        try:
            self.doc.apply_update(update)
        except ValueError as exc:
            raise ProtocolError(f"malformed update: {exc}") from None
        self.broadcast(frame if frame is not None else protocol.sync_update(update), origin)
        for listener in self.update_listeners:
            listener(self, update, origin)

    def apply_awareness(self, update: bytes, origin: Origin, frame: bytes | None = None) -> None:
        changed = self.presence.apply(update, origin)
        if changed is not None:
            self.broadcast_awareness(changed, origin, frame if changed is update else None)

    def broadcast_awareness(
        self, update: bytes, origin: Origin, frame: bytes | None = None
    ) -> None:
        self.broadcast(frame if frame is not None else protocol.awareness(update), origin)
        for listener in self.awareness_listeners:
            listener(self, update, origin)

    def broadcast(self, frame: bytes, origin: Origin | None = None) -> None:
        for peer in self.peers:
            if peer is not origin:
                peer.send(frame)

    def close_peers(self, code: int, reason: str | None = None) -> None:
        for peer in list(self.peers):
            peer.close(code, reason)
