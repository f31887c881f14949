"""The room registry, with a fake loader: shared loads and delayed release."""

from __future__ import annotations

import asyncio
from typing import Any

from pycrdt import Doc, Text

from collab import protocol
from collab.handler import ProtocolHandler
from collab.peer import Peer
from collab.room import Room, RoomState
from collab.rooms import RoomRegistry
from collab.state import StoredDoc
from collab.stats import Stats

from .test_peer import FakeTransport


async def test_concurrent_joins_share_one_load() -> None:
    loads: list[str] = []

    async def loader(doc_id: str) -> Doc[Any]:
        loads.append(doc_id)
        await asyncio.sleep(0.05)
        return Doc()

    registry = RoomRegistry(loader, release_delay=0.01)
    rooms = await asyncio.gather(*(registry.acquire("a") for _ in range(10)))
    assert loads == ["a"]
    assert len({id(r) for r in rooms}) == 1
    assert rooms[0].holders == 10


async def test_a_failed_load_reaches_every_joiner_and_is_retried() -> None:
    attempts = 0

    async def loader(doc_id: str) -> Doc[Any]:
        nonlocal attempts
        attempts += 1
        await asyncio.sleep(0.01)
        if attempts == 1:
            raise OSError("database down")
        return Doc()

    registry = RoomRegistry(loader)
    results = await asyncio.gather(
        *(registry.acquire("a") for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, OSError) for r in results)
    assert "a" not in registry.rooms
    room = await registry.acquire("a")
    assert room.state is RoomState.OPEN


async def test_release_after_delay_and_retry_when_writing_fails() -> None:
    outcomes = [False, True]
    released: list[str] = []

    async def releaser(room: Room) -> bool:
        released.append(room.doc_id)
        return outcomes.pop(0)

    async def loader(doc_id: str) -> Doc[Any]:
        return Doc()

    registry = RoomRegistry(loader, releaser=releaser, release_delay=0.01)
    room = await registry.acquire("a")
    registry.release(room)
    for _ in range(200):
        if "a" not in registry.rooms:
            break
        await asyncio.sleep(0.01)
    assert released == ["a", "a"]  # the first write failed: kept, then retried
    assert room.state is RoomState.CLOSED


async def test_a_join_during_the_release_delay_keeps_the_room() -> None:
    async def loader(doc_id: str) -> Doc[Any]:
        return Doc()

    registry = RoomRegistry(loader, release_delay=0.05)
    room = await registry.acquire("a")
    registry.release(room)
    again = await registry.acquire("a")
    await asyncio.sleep(0.1)
    assert again is room
    assert room.state is RoomState.OPEN


async def test_a_room_from_a_stored_snapshot_answers_first_then_builds() -> None:
    source: Doc[Any] = Doc()
    source.get("text", type=Text).insert(0, "stored")
    room = Room("doc", StoredDoc(source.get_update(), source.get_state()))
    transport = FakeTransport()
    peer = Peer(transport)
    room.join(peer)
    handler = ProtocolHandler(peer, room, Stats())
    handler.receive(protocol.sync_step1(b"\x00"))
    assert transport.sent == [  # the socket took both at once
        protocol.sync_step1(source.get_state()),
        protocol.sync_step2(source.get_update()),
    ]
    assert not room.built
    await asyncio.sleep(0)
    assert room.built  # right after the answer went out
    assert str(room.doc.get("text", type=Text)) == "stored"
    peer.close(1000)
    await peer.wait_closed()
