"""The storage seam: documents as bytes keyed by id. SQL lives in one adapter."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


class DocumentDeleted(LookupError):
    """The document id is tombstoned: it was deleted and not created again."""


class DocumentNotFound(LookupError):
    pass


class DocumentExists(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class StoredState:
    snapshot: bytes | None
    updates: list[bytes]
    state_vector: bytes | None = None  # of the snapshot, when known


@dataclass(frozen=True, slots=True)
class DocumentInfo:
    id: str
    created_at: dt.datetime
    updated_at: dt.datetime
    size_bytes: int
    title: str = ""  # the content's first line (plaintext.title)


@dataclass(frozen=True, slots=True)
class VersionInfo:
    id: str
    doc_id: str
    created_at: dt.datetime
    label: str
    created_by: str
    kind: str  # "manual", "auto" or "restore"
    size_bytes: int


class VersionNotFound(LookupError):
    pass


class DocumentStore(Protocol):
    async def load(self, doc_id: str) -> StoredState:
        """The stored state; empty if the id was never used (nothing is stored until
        the first write). Raises DocumentDeleted for a tombstoned id.
        """
        ...

    async def append(
        self, doc_id: str, updates: Sequence[bytes], *, title: str | None = None
    ) -> int:
        """Add updates to the document's log in one transaction, creating the document
        on its first write; the log's length after. ``title``, unless None, is the
        document's title with them."""
        ...

    async def compact(self, doc_id: str) -> int:
        """Merge the snapshot and the log into a new snapshot in one transaction; its size."""
        ...

    async def ping(self) -> None: ...

    async def list_documents(self, limit: int, offset: int) -> list[DocumentInfo]: ...

    async def get_document(self, doc_id: str) -> DocumentInfo: ...

    async def deleted_among(self, doc_ids: Sequence[str]) -> set[str]:
        """Those of ``doc_ids`` that are tombstoned."""
        ...

    async def create_document(self, doc_id: str) -> DocumentInfo: ...

    async def delete_document(self, doc_id: str, *, unwritten: bool = False) -> None:
        """Drop the content and tombstone the id; DocumentNotFound if there is none
        (``unwritten``: the document is open in memory, perhaps not written yet)."""
        ...

    async def add_version(
        self, doc_id: str, state: bytes, *, label: str, created_by: str, kind: str, keep_auto: int
    ) -> VersionInfo:
        """Save a version; automatic ones beyond the newest ``keep_auto`` are dropped."""
        ...

    async def list_versions(self, doc_id: str) -> list[VersionInfo]:
        """Newest first."""
        ...

    async def version_state(self, doc_id: str, version_id: str) -> bytes:
        """The version's document as one update; VersionNotFound if there is none."""
        ...

    async def close(self) -> None: ...
