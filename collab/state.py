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

    An update that arrived before one it depends on (possible when several writers
    share a log) is held as *pending* by the document, and pycrdt leaves pending
    content out of ``get_update()``: such updates must stay in the log.
    """
    doc = build_doc(snapshot, updates)
    have = doc.get_state()
    pending = [index for index, update in enumerate(updates) if _has_structs(diff(update, have))]
    return doc.get_update(), pending


def _has_structs(update: bytes) -> bool:
    # A v1 update opens with the number of clients whose structs it carries.
    return Reader(update).var_uint() > 0
