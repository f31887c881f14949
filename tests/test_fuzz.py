"""Mutated real updates sent through a real server: after each batch the process is up,
other rooms are undisturbed, and the live document, the one rebuilt from the store and
the one a stock JS client opens all hold the same content.

COLLAB_FUZZ_EXAMPLES sets the number of batches (`make fuzz` runs many more)."""

from __future__ import annotations

import asyncio
import os
import uuid

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from collab import protocol
from collab.protocol import SyncMessage, SyncType
from collab.sqlstore import SqlStore, create_engine
from collab.state import build_doc

from .conftest import ServerFactory
from .corpus import content, deep_any, deep_json_format, real_updates
from .jsclient import JsClient
from .support import CollabServer, eventually
from .test_yupdate import mutated_update
from .yclient import YClient

pytestmark = pytest.mark.timing

EXAMPLES = int(os.environ.get("COLLAB_FUZZ_EXAMPLES", "12"))

hostile = st.one_of(
    mutated_update(),
    st.sampled_from([deep_any(26_000), deep_json_format(26_000)]).map(lambda u: (0, u)),
    st.binary(max_size=64).map(lambda u: (0, u)),
)

Outcome = dict[str, int]


async def _answered(ws: ClientConnection) -> bool:
    """Whether the server answered the sync step 1 sent last (else it closed the socket)."""
    try:
        async for frame in ws:
            assert isinstance(frame, bytes)
            message = protocol.decode(frame)
            if isinstance(message, SyncMessage) and message.kind is SyncType.STEP2:
                return True
    except ConnectionClosed:
        pass
    return False


async def _send(url: str, update: bytes) -> bool:
    """Send one update on a connection of its own; whether the server accepted it."""
    async with connect(url, max_size=None) as ws:
        await ws.send(protocol.sync_update(update))
        await ws.send(protocol.sync_step1(b"\x00"))
        return await _answered(ws)


async def _batch(server: CollabServer, hostile: list[tuple[int, bytes]], outcome: Outcome) -> None:
    doc_id = "fuzz-" + uuid.uuid4().hex[:12]
    url = server.ws_url(doc_id)
    by_position: dict[int, list[bytes]] = {}
    for position, update in hostile:
        by_position.setdefault(position, []).append(update)
    forged = False  # whether an accepted mutation took IDs of the real updates' client
    for position, update in enumerate(real_updates()):
        for bad in by_position.get(position, []):
            accepted = await _send(url, bad)
            outcome["accepted" if accepted else "refused"] += 1
            forged = forged or accepted
        if not await _send(url, update):
            # Only after a forgery: with the real IDs taken, the real update's items may
            # name a parent that is no longer the type it was (Yjs trusts client IDs).
            assert forged, "a real update was refused"
            outcome["real refused after a forgery"] += 1
    async with httpx.AsyncClient(base_url=server.url) as http:

        async def written() -> bool:
            stats = (await http.get("/api/stats")).json()
            return stats["unwritten_updates"] == 0

        await eventually(written, what="the writes")
        live = (await http.get(f"/api/documents/{doc_id}/update")).content
    store = SqlStore(create_engine(server.database_url))
    try:
        stored = await store.load(doc_id)
    finally:
        await store.close()
    rebuilt = build_doc(stored.snapshot, stored.updates).get_update()
    async with JsClient(server.ws_base, doc_id) as js:
        await js.wait_synced()
        opened = await js.dump()
    assert content(rebuilt) == content(live)
    assert content(opened) == content(live)


def test_mutated_updates_never_crash_fork_or_poison(start_server: ServerFactory) -> None:
    server = start_server()
    outcome: Outcome = {
        "accepted": 0,
        "refused": 0,
        "batches": 0,
        "real refused after a forgery": 0,
    }

    async def bystanding(batch: list[tuple[int, bytes]]) -> None:
        async with YClient(server.ws_url("fuzz-bystander-" + uuid.uuid4().hex[:6])) as other:
            other.append("undisturbed")
            await _batch(server, batch, outcome)
            async with YClient(other.url) as late:
                await eventually(lambda: late.content() == "undisturbed")
            assert not other.closed.is_set()

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(hostile, min_size=1, max_size=6))
    def run(batch: list[tuple[int, bytes]]) -> None:
        asyncio.run(bystanding(batch))
        outcome["batches"] += 1
        assert server.process is not None
        assert server.process.poll() is None, "the server died"

    run()
    print(f"fuzz: {outcome}")  # `make fuzz` shows it
    assert outcome["refused"] > 0
