"""Building a document from stored bytes, and compacting it back to bytes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import anyio
from pycrdt import Doc, write_var_uint
from pycrdt import get_update as diff

from .protocol import Reader

# pycrdt makes two things for every Doc that serve APIs collab never calls on its
# documents, async transactions and ``Doc.events()``: an anyio lock (its deque is 760
# bytes) and a dict of two sets (656 bytes). A room's document lives as long as the
# room, so collab's documents share one of each instead (both are pycrdt internals:
# collab/web/dependencies.py pins the tested release). The sets are frozen: an
# ``events()`` call fails at once instead of sharing events between documents.
_SHARED_ASYNC_LOCK = anyio.Lock()
_NO_EVENT_STREAMS: dict[bool, frozenset[Any]] = {False: frozenset(), True: frozenset()}

# The state vector of a peer that has nothing of the document (no clients).
EMPTY_STATE_VECTOR = b"\x00"


def new_doc() -> Doc[Any]:
    """An empty document, without what it would keep for APIs collab does not use."""
    doc: Doc[Any] = Doc()
    if hasattr(doc, "_txn_async_lock") and hasattr(doc, "_send_streams"):
        doc._txn_async_lock = _SHARED_ASYNC_LOCK
        doc._send_streams = _NO_EVENT_STREAMS  # type: ignore[assignment]
    return doc


def build_doc(snapshot: bytes | None, updates: Sequence[bytes]) -> Doc[Any]:
    """A document from a snapshot and the log after it; ValueError if they don't decode."""
    # Updates are applied one by one: pycrdt's merge_updates is no faster and keeps
    # native memory it never gives back.
    doc = new_doc()
    with doc.transaction():
        if snapshot:
            doc.apply_update(snapshot)
        for update in updates:
            doc.apply_update(update)
    return doc


@dataclass(frozen=True, slots=True)
class StoredDoc:
    """A document stored as one snapshot and its state vector: enough to answer a
    peer's sync before the document is built (building a large one takes tens of ms)."""

    snapshot: bytes
    state_vector: bytes

    def missing(self, state_vector: bytes) -> bytes:
        """What a peer at ``state_vector`` lacks, as one update; ValueError if malformed."""
        if state_vector == EMPTY_STATE_VECTOR:
            return self.snapshot
        return diff(self.snapshot, state_vector)

    def build(self) -> Doc[Any]:
        return build_doc(self.snapshot, [])


class Compacted(NamedTuple):
    update: bytes  # the whole state
    pending: list[int]  # positions of the updates it could not include
    state_vector: bytes  # of ``update``


def compact(snapshot: bytes | None, updates: Sequence[bytes]) -> Compacted:
    """The whole state as one update, with deleted content garbage-collected, the
    positions of the updates it could not include, and its state vector.

    When several writers share a log, an update can be logged before one it depends
    on: an insert before the insert it follows, or a delete before the insert of what
    it deletes. The document holds such content as *pending* and leaves it out of
    ``get_update()``, so those updates must stay in the log.
    """
    doc = build_doc(snapshot, updates)
    state = doc.get_state()
    have = decode_state_vector(state)
    pending = [index for index, update in enumerate(updates) if _beyond(diff(update, state), have)]
    return Compacted(doc.get_update(), pending, state)


def decode_state_vector(state: bytes) -> dict[int, int]:
    reader = Reader(state)
    return {reader.var_uint(): reader.var_uint() for _ in range(reader.var_uint())}


def encode_state_vector(state: dict[int, int]) -> bytes:
    parts = [write_var_uint(len(state))]
    for client, clock in state.items():
        parts.append(write_var_uint(client) + write_var_uint(clock))
    return b"".join(parts)


def _beyond(update: bytes, have: dict[int, int]) -> bool:
    """Whether ``update``, already diffed against the state ``have``, holds structs, or
    deletes of anything past ``have``."""
    reader = Reader(update)
    if reader.var_uint() > 0:  # the number of clients with structs left by the diff
        return True
    for _ in range(reader.var_uint()):  # the delete set: clients, then (clock, length)s
        client = reader.var_uint()
        for _ in range(reader.var_uint()):
            if reader.var_uint() + reader.var_uint() > have.get(client, 0):
                return True
    return False
