"""Building a document from stored bytes, and compacting it back to bytes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pycrdt import Doc, merge_updates


def build_doc(snapshot: bytes | None, updates: Sequence[bytes]) -> Doc[Any]:
    """A document from a snapshot and the log after it; ValueError if they don't decode."""
    doc: Doc[Any] = Doc()
    parts = ([snapshot] if snapshot else []) + list(updates)
    if parts:
        doc.apply_update(parts[0] if len(parts) == 1 else merge_updates(*parts))
    return doc


def compact(snapshot: bytes | None, updates: Sequence[bytes]) -> bytes:
    """The whole state as one update, with deleted content garbage-collected."""
    return build_doc(snapshot, updates).get_update()
