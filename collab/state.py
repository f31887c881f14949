"""Building a document from stored bytes, and compacting it back to bytes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pycrdt import Doc


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


def compact(snapshot: bytes | None, updates: Sequence[bytes]) -> bytes:
    """The whole state as one update, with deleted content garbage-collected."""
    return build_doc(snapshot, updates).get_update()
