"""Building a document from stored bytes, and compacting it back to bytes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pycrdt import Doc
from pycrdt import get_update as diff

from .protocol import Reader


def build_doc(snapshot: bytes | None, updates: Sequence[bytes]) -> Doc[Any]:
    """A document from a snapshot and the log after it; ValueError if they don't decode."""
    # Updates are applied one by one: pycrdt's merge_updates is no faster and keeps
    # native memory it never gives back.
    doc: Doc[Any] = Doc()
    with doc.transaction():
        if snapshot:
            doc.apply_update(snapshot)
        for update in updates:
            doc.apply_update(update)
    return doc


def compact(snapshot: bytes | None, updates: Sequence[bytes]) -> tuple[bytes, list[int]]:
    """The whole state as one update, with deleted content garbage-collected, and the
    positions of the updates it could not include.

    When several writers share a log, an update can be logged before one it depends
    on: an insert before the insert it follows, or a delete before the insert of what
    it deletes. The document holds such content as *pending* and leaves it out of
    ``get_update()``, so those updates must stay in the log.
    """
    doc = build_doc(snapshot, updates)
    state = doc.get_state()
    have = decode_state_vector(state)
    pending = [index for index, update in enumerate(updates) if _beyond(diff(update, state), have)]
    return doc.get_update(), pending


def decode_state_vector(state: bytes) -> dict[int, int]:
    reader = Reader(state)
    return {reader.var_uint(): reader.var_uint() for _ in range(reader.var_uint())}


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
