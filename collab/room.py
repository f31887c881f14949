"""A room: one document held in memory, its presence and its peers."""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, TypeAlias

from pycrdt import Doc, TransactionEvent, merge_updates

from . import protocol, yupdate
from .astral import AstralEdges
from .nesting import Nesting, nesting, waits
from .peer import Peer
from .presence import Presence, PresenceLimits
from .protocol import ProtocolError
from .state import EMPTY_STATE_VECTOR, StoredDoc, decode_state_vector, encode_state_vector
from .workers import Workers

log = logging.getLogger("collab.room")

# Who made an update: a local peer, or a string naming a non-peer source
# ("api", "bus", "restore"); listeners use it so an update is never sent back
# where it came from.
Origin: TypeAlias = Peer | str
UpdateListener: TypeAlias = Callable[["Room", bytes, Origin], None]
AwarenessListener: TypeAlias = Callable[["Room", bytes, Origin], None]
# Told that yrs failed part-way through an update: the room's memory is suspect.
DamageListener: TypeAlias = Callable[["Room"], None]

DEFAULT_MAX_DEPTH = 128
# Updates with shared types waiting for structs still to come that a room keeps
# (a client's own edits never wait: they come after what they refer to).
MAX_WAITING = 16
# A document whose whole state encodes to this many bytes or more keeps that encoding
# while it is unchanged: most peers join with none of it, and encoding a large one
# takes milliseconds (5 ms for 1.7 MB of 40,000 items) where sending it takes one.
WHOLE_KEPT_FROM = 64 * 1024


class DocumentDamaged(ProtocolError):
    """yrs refused an update after applying part of it; the room must be reloaded."""


class Prepared(NamedTuple):
    """What ``Room.apply_update`` reads of a large update's own bytes, worked out in a
    worker thread beforehand (``Room.prepare``)."""

    update: bytes
    checked: yupdate.Checked
    # The depths of the types it creates, counted with ``known``, the room's depths as
    # they were then; None: not counted.
    found: Nesting | None
    known: dict[yupdate.ID, int] | None

    def found_with(self, depths: Mapping[yupdate.ID, int]) -> Nesting | None:
        """``found``, if ``depths`` still say what ``known`` said of everything outside
        the update that it depends on; None: to be counted again."""
        found, known = self.found, self.known
        if found is None or known is None:
            return None
        if all(depths.get(item) == known.get(item) for item in found.outside):
            return found
        return None


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
        max_depth: int = DEFAULT_MAX_DEPTH,
        presence_limits: PresenceLimits | None = None,
    ) -> None:
        self.doc_id = doc_id
        self.max_depth = max_depth
        self._doc: Doc[Any] | None = None
        self._stored = doc if isinstance(doc, StoredDoc) else None
        # Where a deletion could split a character of two UTF-16 units in the document.
        self._edges = AstralEdges()
        self._applying: bytes | None = None
        # The whole document as one update, while it is unchanged (see WHOLE_KEPT_FROM).
        self._whole: bytes | None = None
        if isinstance(doc, Doc):
            self._hold(doc)
        # Whether the last update applied was integrated whole, on its own: none of it
        # waits for structs still to come, and it completed none that waited.
        self.applied_whole = False
        # That update's ``yupdate.split``, while its update listeners run, when it was
        # applied whole and read on the event loop: the log's merge (group commit) then
        # need not read it again.
        self.applied_parts: yupdate.Parts | None = None
        self._integrated: bytes | None = None
        # The depth of each shared type in the document, once an update creates one.
        self._depths: dict[yupdate.ID, int] | None = None
        # Updates whose types yrs holds back for structs still to come, each with its
        # clients' newest type (Nesting.newest).
        self._waiting: list[tuple[bytes, dict[int, int]]] = []
        self.presence = Presence(presence_limits, doc_id)
        self.peers: set[Peer] = set()
        self.state = RoomState.OPEN
        self.holders = 0
        self.update_listeners: list[UpdateListener] = []
        self.awareness_listeners: list[AwarenessListener] = []
        self.damage_listeners: list[DamageListener] = []

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
        stored = self._stored
        if stored is not None:
            self._hold(stored.build())
            self._stored = None
            if len(stored.snapshot) >= WHOLE_KEPT_FROM:
                self._whole = stored.snapshot

    def _hold(self, doc: Doc[Any]) -> None:
        self._doc = doc
        self._edges.start(decode_state_vector(doc.get_state()))
        doc.observe(self._on_transaction)

    def _on_transaction(self, event: TransactionEvent) -> None:
        self._whole = None
        integrated: bytes = event.update
        self._integrated = integrated
        if integrated != self._applying:
            # Not (only) the update being applied: structs yrs held back went in, or the
            # document was changed some other way. What went in is what yrs encodes.
            try:
                self._edges.note(yupdate.astral(integrated))
            except yupdate.MalformedUpdate:
                self._edges.start(None)  # unread: all the document holds is not known

    @property
    def built(self) -> bool:
        return self._doc is not None

    def missing(self, state_vector: bytes, *, checked: bool = False) -> bytes:
        """What a peer at ``state_vector`` lacks; ProtocolError if that is malformed
        (``checked``: ``yupdate.check_state_vector`` found it is not)."""
        if not checked:
            yupdate.check_state_vector(state_vector)
        if self._stored is not None:
            return self._stored.missing(state_vector)
        if state_vector != EMPTY_STATE_VECTOR:
            return self.doc.get_update(state_vector)
        whole = self._whole
        if whole is None:
            whole = self.doc.get_update()
            if len(whole) >= WHOLE_KEPT_FROM:
                self._whole = whole
        return whole

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

    async def prepare(
        self, update: bytes, workers: Workers, *, checked: yupdate.Checked | None = None
    ) -> Prepared:
        """What ``apply_update`` reads of ``update``'s bytes alone, worked out in
        ``workers``' threads; MalformedUpdate if it is malformed. The room may change
        (or close) meanwhile: ``apply_update`` uses what still holds. ``checked``:
        ``yupdate.inspect(update)``, when the caller has it."""
        if checked is None:
            max_depth = self.max_depth
            checked = await workers.run(lambda: yupdate.inspect(update, max_depth))
        if not checked.types:
            return Prepared(update, checked, None, None)
        if self._depths is None and self._doc is not None:
            # The document's own depths, counted once, in a thread too: they hold if no
            # struct went in meanwhile (a deletion changes no depth).
            doc = self._doc
            snapshot, before = doc.get_update(), doc.get_state()
            depths = await workers.run(lambda: nesting(snapshot, {}).depths)
            if self._depths is None and self._doc is doc and doc.get_state() == before:
                self._depths = depths
        if self._depths is None:
            return Prepared(update, checked, None, None)
        known = dict(self._depths)
        found = await workers.run(lambda: nesting(update, known))
        return Prepared(update, checked, found, known)

    def apply_update(
        self,
        update: bytes,
        origin: Origin,
        frame: bytes | None = None,
        *,
        strict: bool = True,
        prepared: Prepared | None = None,
    ) -> None:
        """Merge an update and send it to every peer but its origin; ProtocolError, with
        nothing applied or sent, if it is malformed.

        ``frame`` is the update message as received, when there is one: it is sent
        as it is, so the bytes are encoded once for all peers, never per peer.
        ``strict``: the update came from a client, so each parent it names must be here
        already; another process's updates (checked there) may arrive before their parent.
        ``prepared``: ``prepare(update)``, worked out off the event loop.
        """
        if update == protocol.EMPTY_UPDATE:
            return
        if prepared is None:
            checked = yupdate.inspect(update, self.max_depth, parts=True)
        elif prepared.update is update:
            checked = prepared.checked
        else:
            raise ValueError("prepared from another update")
        doc = self.doc
        # The document's clocks, read once for the checks of a client's update that
        # need them (a keystroke needs none).
        state: dict[int, int] = {}
        if strict and (checked.parents or checked.deletions or checked.types or self._waiting):
            state = decode_state_vector(doc.get_state())
        if checked.parents and strict:
            _check_parents(doc, state, checked.parents, self._depths)
        if checked.deletions and strict:
            self._edges.check(doc, state, checked.deletions, checked.astral)
        found = None
        if checked.types or self._waiting:
            found = self._nesting(
                doc, state, update, types=checked.types, strict=strict, prepared=prepared
            )
        # Noted whether yrs integrates them now or holds them back for structs to come.
        self._edges.note(checked.astral)
        self._integrated = None
        self._applying = update
        try:
            doc.apply_update(update)
        except BaseException as exc:
            if not _from_yrs(exc):
                raise
            # yrs may have applied part of it: what memory holds is no longer what the
            # store and the peers have. Nothing of it was sent or queued for writing.
            log.error(
                "room %r: yrs failed on a checked update (%s: %s); reloading the room",
                self.doc_id,
                type(exc).__name__,
                str(exc)[:200],
                extra={"doc": self.doc_id},
            )
            for damaged in self.damage_listeners:
                damaged(self)
            raise DocumentDamaged(f"update refused by yrs: {type(exc).__name__}") from None
        finally:
            self._applying = None
        # yrs encodes what a transaction integrated: the update itself when it went in
        # whole, alone (as it does for clients' own edits).
        self.applied_whole = self._integrated == update
        self.applied_parts = checked.parts if self.applied_whole else None
        self._count_placed(doc, update, found)
        self.broadcast(frame if frame is not None else protocol.sync_update(update), origin)
        for listener in self.update_listeners:
            listener(self, update, origin)
        self.applied_parts = None  # a room of a thousand would keep 0.5 MB of them

    def _nesting(
        self,
        doc: Doc[Any],
        state: dict[int, int],
        update: bytes,
        *,
        types: bool,
        strict: bool,
        prepared: Prepared | None,
    ) -> Nesting | None:
        """The depths of the types ``update`` creates (None if it creates none); from a
        client, MalformedUpdate if that would nest the document deeper than
        ``max_depth``: yrs deletes a type recursively, and a tree tens of thousands
        deep crashes it."""
        found = None
        if types:
            if self._depths is None:
                self._depths = nesting(doc.get_update(), {}).depths
            found = None if prepared is None else prepared.found_with(self._depths)
            if found is None:
                found = nesting(update, self._depths)
        if not strict:
            return found
        waiting = found is not None and waits(found, state)
        if waiting and len(self._waiting) >= MAX_WAITING:
            raise yupdate.MalformedUpdate("too many shared types wait for structs to come")
        if self._waiting or waiting or (found is not None and not found.exact):
            # Types yrs holds back are placed by the update that completes them, which
            # may hold none: count the whole document as it would be.
            parts = [doc.get_update(), *(held for held, _ in self._waiting), update]
            try:
                merged = merge_updates(*parts)
            except ValueError:
                # yrs cannot read it with the document: neither could it apply it.
                raise yupdate.MalformedUpdate("an update yrs cannot merge") from None
            deepest = nesting(merged, {}).deepest
        else:
            deepest = 0 if found is None else found.deepest
        if deepest > self.max_depth:
            raise yupdate.MalformedUpdate(f"shared types nested deeper than {self.max_depth}")
        return found

    def _count_placed(self, doc: Doc[Any], update: bytes, found: Nesting | None) -> None:
        placed_unseen = not self.applied_whole and (found is not None or bool(self._waiting))
        if placed_unseen or (found is not None and not found.exact):
            # Types placed that this update does not show (or not exactly): count again.
            # An update with no types that completed no held-back one (a reconnecting
            # client's text, another process's keystrokes) changes no depth.
            self._depths = None
        elif found is not None and self._depths is not None:
            self._depths.update(found.depths)
        if found is None and not self._waiting:
            return
        state = decode_state_vector(doc.get_state())
        if found is not None:
            self._waiting.append((update, found.newest))
        self._waiting = [
            (held, newest)
            for held, newest in self._waiting
            if any(clock >= state.get(client, 0) for client, clock in newest.items())
        ]

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


def _from_yrs(exc: BaseException) -> bool:
    """Whether pycrdt raised it: an error, or a Rust panic (PanicException derives
    from BaseException, so that ``except Exception`` does not catch it)."""
    return isinstance(exc, Exception) or type(exc).__name__ == "PanicException"


def _check_parents(
    doc: Doc[Any],
    state: dict[int, int],
    parents: list[yupdate.ID],
    types: Mapping[yupdate.ID, int] | None,
) -> None:
    """Each parent is in ``doc`` (at ``state``) and a shared type (or deleted): yrs would
    fail part-way on one that is not, and one still to come could be an item that is not.
    ``types``: shared types known to be in ``doc`` (the room's depths), taken as they are."""
    for client, clock in parents:
        if clock >= state.get(client, 0):
            raise yupdate.MalformedUpdate("an item's parent is not in the document")
        if types is not None and (client, clock) in types:
            continue
        # What the document holds of that client from the parent on: it starts there.
        since = encode_state_vector({**state, client: clock})
        if yupdate.parent_kind(doc.get_update(since)) == "other":
            raise yupdate.MalformedUpdate("an item's parent is not a shared type")
