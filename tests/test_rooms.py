"""The room registry, with a fake loader: shared loads and delayed release."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pycrdt import Doc, Text

from collab import protocol, state
from collab.closecodes import CloseCode
from collab.handler import ProtocolHandler
from collab.peer import Peer
from collab.room import DocumentDamaged, Room, RoomState
from collab.rooms import RoomRegistry
from collab.state import StoredDoc
from collab.stats import Stats
from collab.workers import Workers

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
    handler = ProtocolHandler(peer, room, Stats(), Workers())
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


def _content(update: bytes) -> str:
    doc: Doc[Any] = Doc()
    doc.apply_update(update)
    return str(doc.get("text", type=Text))


def test_a_large_document_is_encoded_once_while_it_is_unchanged() -> None:
    source: Doc[Any] = Doc()
    source.get("text", type=Text).insert(0, "x" * 100_000)
    snapshot = source.get_update()
    room = Room("doc", StoredDoc(snapshot, source.get_state()))
    room.build()
    assert room.missing(b"\x00") is snapshot  # the stored bytes, not encoded again
    text = room.doc.get("text", type=Text)
    text.insert(0, "ab")
    whole = room.missing(b"\x00")
    assert _content(whole) == "ab" + "x" * 100_000
    assert room.missing(b"\x00") is whole
    del text[0:1]  # a deletion changes no state vector
    assert _content(room.missing(b"\x00")) == "b" + "x" * 100_000
    other: Doc[Any] = Doc()
    other.apply_update(room.missing(b"\x00"))
    other.get("text", type=Text).insert(1, "c")
    room.apply_update(other.get_update(room.doc.get_state()), "api")
    assert _content(room.missing(b"\x00")) == "bc" + "x" * 100_000
    # a peer that has some of it gets only what it lacks
    assert _content(room.missing(room.doc.get_state())) == ""


def test_a_small_document_is_encoded_for_each_peer() -> None:
    room = Room("doc", Doc())
    room.doc.get("text", type=Text).insert(0, "small")
    first = room.missing(b"\x00")
    again = room.missing(b"\x00")
    assert again == first
    assert again is not first


class PanicException(BaseException):
    """Named as pyo3's: a Rust panic reaches Python as a BaseException of this name."""


class HalfApplyingDoc(Doc[Any]):
    """A document whose yrs applies part of one update, then panics."""

    def apply_update(self, update: bytes) -> None:
        with self.transaction():
            self.get("text", type=Text).insert(0, "half")
        raise PanicException("called `Option::unwrap()` on a `None` value")


async def test_a_room_yrs_fails_on_is_dropped_and_loaded_again_from_the_store() -> None:
    loads: list[Doc[Any]] = []
    salvaged: list[Room] = []

    async def loader(doc_id: str) -> Doc[Any]:
        doc: Doc[Any] = HalfApplyingDoc() if not loads else Doc()
        loads.append(doc)
        return doc

    async def salvager(room: Room) -> bool:
        salvaged.append(room)
        return True

    registry = RoomRegistry(loader, salvager=salvager, release_delay=60)
    room = await registry.acquire("a")
    written: list[bytes] = []
    room.update_listeners.append(lambda _room, update, _origin: written.append(update))
    sender, other = FakeTransport(), FakeTransport()
    peers = [Peer(sender), Peer(other)]
    for peer in peers:
        room.join(peer)
    sent_before = list(other.sent)
    source = Doc()
    source.get("text", type=Text).insert(0, "hello")
    handler = ProtocolHandler(peers[0], room, Stats(), Workers())
    with pytest.raises(DocumentDamaged):
        handler.receive(protocol.sync_update(source.get_update()))
    assert "a" not in registry.rooms
    assert room.state is RoomState.CLOSED
    assert written == []
    assert other.sent == sent_before
    again = await registry.acquire("a")  # waits for the salvage, then loads anew
    assert salvaged == [room]
    assert again is not room
    assert len(loads) == 2
    await peers[1].wait_closed()
    assert other.closed is not None
    assert other.closed[0] == CloseCode.SERVICE_RESTART
    assert str(again.doc.get("text", type=Text)) == ""


def test_documents_share_what_pycrdt_keeps_for_unused_apis() -> None:
    # 1.4 KB a room (collab/state.py): if a pycrdt release renamed them, new_doc would
    # quietly keep its own, and this fails.
    one, two = state.build_doc(None, []), state.new_doc()
    assert one._txn_async_lock is two._txn_async_lock
    assert one._send_streams is two._send_streams
    text = one.get("text", type=Text)
    text += "still a document"
    two.apply_update(one.get_update())
    assert str(two.get("text", type=Text)) == "still a document"
