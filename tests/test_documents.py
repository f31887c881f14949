"""The documents service's life in the process."""

from __future__ import annotations

import gc
from typing import Any

from collab.documents import Documents
from collab.room import Room
from collab.settings import Settings


async def test_rooms_piling_up_set_off_young_collections_but_no_full_one(sqlite_url: str) -> None:
    # A full collection scans every room and peer there is; a server opening thousands
    # of sockets spent a fifth of its CPU in them, each a pause of tens of ms.
    collections = {0: 0, 1: 0, 2: 0}

    def count(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            collections[info["generation"]] += 1

    documents = Documents(Settings(database_url=sqlite_url))
    async with documents.running():
        rooms: list[Room] = []
        gc.callbacks.append(count)
        try:
            while collections[1] < 20 and len(rooms) < 20_000:
                rooms.append(await documents.acquire(f"pile-{len(rooms)}"))
        finally:
            gc.callbacks.remove(count)
            for room in rooms:
                documents.release(room)
    assert collections[1] >= 20
    assert collections[2] == 0
