"""The fan-out core between processes, over an in-memory bus (unit tests; the real
Redis transport is tested with real processes in test_scaleout)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pycrdt import Doc, Text

from collab import protocol
from collab.fanout import Fanout, Kind, Message, relay
from collab.peer import Peer
from collab.presence import Presence
from collab.protocol import ProtocolError
from collab.room import Room
from collab.workers import Workers

from .corpus import deep_any
from .gates import BIG, WORKER, Gate
from .support import eventually
from .test_peer import FakeTransport


class Hub:
    """Pub/sub in memory: delivery is asynchronous and in publish order."""

    def __init__(self) -> None:
        self.subscribers: dict[str, set[MemoryTransport]] = {}
        self.processes: list[Process] = []


@pytest.fixture
async def hub() -> AsyncIterator[Hub]:
    hub = Hub()
    yield hub
    for process in hub.processes:
        await process.fanout.close()


class MemoryTransport:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.channels: set[str] = set()
        self.connected = False
        self.fanout: Fanout | None = None
        self.sent: list[Message] = []

    @property
    def is_connected(self) -> bool:
        return self.connected

    def start(self, fanout: Fanout) -> None:
        self.fanout = fanout
        self.channels.add(fanout.process_channel)
        self.reconnect()

    def reconnect(self) -> None:
        assert self.fanout is not None
        self.connected = True
        for channel in self.channels:
            self.hub.subscribers.setdefault(channel, set()).add(self)
        self.fanout.connected()

    def disconnect(self) -> None:
        assert self.fanout is not None
        self.connected = False
        for subscribers in self.hub.subscribers.values():
            subscribers.discard(self)
        self.fanout.disconnected("test")

    async def subscribe(self, channel: str) -> None:
        self.channels.add(channel)
        if self.connected:
            self.hub.subscribers.setdefault(channel, set()).add(self)

    async def unsubscribe(self, channel: str) -> None:
        self.channels.discard(channel)
        self.hub.subscribers.get(channel, set()).discard(self)

    async def publish(self, channel: str, data: bytes) -> int:
        if not self.connected:
            return 0
        self.sent.append(Message.decode(data))
        loop = asyncio.get_running_loop()
        receivers = list(self.hub.subscribers.get(channel, ()))
        for receiver in receivers:
            assert receiver.fanout is not None
            loop.call_soon(receiver.fanout.received, channel, data)
        return len(receivers)

    def publish_soon(self, channel: str, data: bytes) -> None:
        if self.connected:  # as Redis: what is published while down is lost
            asyncio.get_running_loop().create_task(self.publish(channel, data))

    async def ping(self) -> None:
        if not self.connected:
            raise ConnectionError("down")

    async def close(self) -> None:
        self.connected = False


class Process:
    """One collab process's fan-out and its open rooms."""

    def __init__(self, hub: Hub, stored: dict[str, bytes], **options: Any) -> None:
        self.transport = MemoryTransport(hub)
        self.stored = stored
        self.tombstones: set[str] = set()
        self.gone: list[list[str]] = []
        self.deleted: list[str] = []

        async def on_gone(rooms: list[Room]) -> None:
            self.gone.append([room.doc_id for room in rooms])

        async def find_deleted(doc_ids: list[str]) -> set[str]:
            return self.tombstones.intersection(doc_ids)

        self.fanout = Fanout(
            self.transport,
            on_process_gone=on_gone,
            on_deleted=self.deleted.append,
            find_deleted=find_deleted,
            **{"heartbeat_interval": 0.02, "process_timeout": 0.2, **options},
        )
        self.fanout.start()
        hub.processes.append(self)

    async def open(self, doc_id: str) -> Room:
        async def load(doc_id: str) -> Doc[Any]:
            doc: Doc[Any] = Doc()
            if doc_id in self.stored:
                doc.apply_update(self.stored[doc_id])
            return doc

        room = Room(doc_id, await self.fanout.load(doc_id, load))
        self.fanout.attach(room)
        return room


def text(room: Room) -> str:
    return str(room.doc.get("text", type=Text))


def edit(room: Room, content: str, *, at: int | None = None) -> None:
    """An edit made by a local peer: applied to the room as an update from it."""
    source: Doc[Any] = Doc()
    source.apply_update(room.doc.get_update())
    before = source.get_state()
    shared = source.get("text", type=Text)
    shared.insert(len(shared) if at is None else at, content)
    room.apply_update(source.get_update(before), Peer(FakeTransport()))


def delete(room: Room, start: int, end: int) -> None:
    source: Doc[Any] = Doc()
    source.apply_update(room.doc.get_update())
    before = source.get_state()
    del source.get("text", type=Text)[start:end]
    room.apply_update(source.get_update(before), Peer(FakeTransport()))


def test_messages_round_trip_and_malformed_ones_are_refused() -> None:
    message = Message(Kind.REPLY, "abc", "def", b"\x00\x00", b"")
    assert Message.decode(message.encode()) == message
    encoded = message.encode()
    for bad in (
        b"",
        encoded[:-1],
        encoded + b"\x00",
        b"\x02" + encoded[1:],
        b"\x01Z" + encoded[2:],
    ):
        with pytest.raises(ProtocolError):
            Message.decode(bad)


async def test_updates_cross_once_and_are_not_sent_back(hub: Hub) -> None:
    a, b = Process(hub, {}), Process(hub, {})
    room_a, room_b = await a.open("doc"), await b.open("doc")
    edit(room_a, "hello")
    await eventually(lambda: text(room_b) == "hello", 2, "B gets A's edit")
    await asyncio.sleep(0.05)
    assert [m.kind for m in b.transport.sent].count(Kind.UPDATE) == 0
    assert [m.kind for m in a.transport.sent].count(Kind.UPDATE) == 1


async def test_joining_waits_for_what_the_database_lacks(hub: Hub) -> None:
    stored: dict[str, bytes] = {}
    a = Process(hub, stored)
    room_a = await a.open("doc")
    edit(room_a, "unwritten")
    b = Process(hub, stored)
    room_b = await b.open("doc")  # nothing stored: only A has the edit
    assert text(room_b) == "unwritten"


async def test_joining_alone_does_not_wait(hub: Hub) -> None:
    a = Process(hub, {}, join_timeout=5)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await a.open("doc")
    assert loop.time() - started < 1


async def test_after_an_outage_both_sides_get_each_others_edits_and_deletes(hub: Hub) -> None:
    a, b = Process(hub, {}), Process(hub, {})
    room_a, room_b = await a.open("doc"), await b.open("doc")
    edit(room_a, "0123456789")
    await eventually(lambda: text(room_b) == "0123456789", 2, "first sync")
    a.transport.disconnect()
    edit(room_a, "A", at=0)
    delete(room_a, 5, 7)  # deletes of content both sides had: no state vector moves
    edit(room_b, "B")
    delete(room_b, 1, 2)
    assert text(room_a) != text(room_b)
    a.transport.reconnect()
    await eventually(lambda: text(room_a) == text(room_b), 2, "convergence after the outage")
    assert text(room_a) == "A0236789B"


async def test_a_silent_process_loses_its_presence_and_its_rooms_are_checked(hub: Hub) -> None:
    a, b = Process(hub, {}), Process(hub, {})
    room_a, room_b = await a.open("doc"), await b.open("doc")
    peer = Peer(FakeTransport())
    room_b.peers.add(peer)
    state = Presence()
    state.apply(b"\x01\x07\x01\x0b" + b'{"u":"bob"}', peer)
    update = state.encode_all()
    assert update is not None
    room_b.apply_awareness(update, peer)
    edit(room_b, "from B")
    await eventually(lambda: len(room_a.presence) == 1, 2, "B's presence reaches A")
    assert a.fanout.processes == 1
    b.transport.disconnect()  # B dies: it stops publishing, heartbeats included
    await eventually(lambda: len(room_a.presence) == 0, 2, "A drops B's presence")
    await eventually(lambda: a.gone == [["doc"]], 2, "A checks the room B changed")
    assert a.fanout.processes == 0


async def test_a_client_that_moves_here_owns_its_presence() -> None:
    presence = Presence()
    first = b"\x01\x07\x01\x02{}"
    presence.apply(first, relay("other"))
    peer = Peer(FakeTransport())
    presence.apply(b"\x01\x07\x02\x02{}", peer)
    assert presence.remove_owned_by(relay("other")) is None
    assert presence.remove_owned_by(peer) is not None


async def test_a_malformed_message_is_logged_and_changes_nothing(
    hub: Hub, caplog: pytest.LogCaptureFixture
) -> None:
    a = Process(hub, {})
    room = await a.open("doc")
    bad_update = Message(Kind.UPDATE, "intruder", "", b"\xff\xff\xff").encode()
    with caplog.at_level(logging.WARNING, "collab.fanout"):
        a.fanout.received(a.fanout.channel("doc"), b"garbage")
        a.fanout.received(a.fanout.channel("doc"), bad_update)
    assert "malformed bus message" in caplog.text
    assert "ignoring a UPDATE message" in caplog.text
    assert room.doc.get_update() == protocol.EMPTY_UPDATE


async def test_a_delete_elsewhere_closes_the_room_here(hub: Hub) -> None:
    a, b = Process(hub, {}), Process(hub, {})
    await a.open("doc")
    await b.open("doc")
    a.fanout.deleted("doc")
    await eventually(lambda: b.deleted == ["doc"], 2, "B told of the delete")
    await eventually(lambda: "doc" not in a.transport.channels, 2, "A unsubscribed")


async def test_rooms_changed_by_a_process_that_missed_heartbeats_are_named(hub: Hub) -> None:
    a, b = Process(hub, {}, process_timeout=30), Process(hub, {}, process_timeout=30)
    room_a, room_b = await a.open("doc"), await b.open("doc")
    await a.open("untouched")
    edit(room_b, "from B")
    await eventually(lambda: text(room_a) == "from B", 2, "B's edit reaches A")
    assert a.fanout.changed_by_silent() == []
    b.transport.disconnect()
    await eventually(lambda: a.fanout.changed_by_silent() == [room_a], 2, "B is silent")


def _presence_of(room: Room, name: str, clock: int = 1) -> Peer:
    """A local peer of ``room`` with a presence state."""
    peer = Peer(FakeTransport())
    room.peers.add(peer)
    state = f'{{"u":"{name}"}}'.encode()
    client = 100 + len(room.peers)
    room.apply_awareness(bytes((1, client, clock, len(state))) + state, peer)
    return peer


async def test_a_resync_removes_presence_that_left_during_the_outage(hub: Hub) -> None:
    a, b = Process(hub, {}), Process(hub, {})
    room_a, room_b = await a.open("doc"), await b.open("doc")
    _presence_of(room_b, "stays")
    leaver = _presence_of(room_b, "leaves")
    await eventually(lambda: len(room_a.presence) == 2, 2, "B's presence reaches A")
    b.transport.disconnect()
    room_b.leave(leaver)
    b.transport.reconnect()
    await eventually(lambda: len(room_a.presence) == 1, 2, "the leaver's presence goes")
    assert [s["u"] for s in room_a.presence.states().values()] == ["stays"]  # type: ignore[index]


async def test_a_stalled_process_that_comes_back_is_resynchronised(hub: Hub) -> None:
    a, b = Process(hub, {}), Process(hub, {})
    room_a, room_b = await a.open("doc"), await b.open("doc")
    _presence_of(room_b, "bob")
    await eventually(lambda: len(room_a.presence) == 1, 2, "B's presence reaches A")
    b.transport.disconnect()  # as a stalled process: A hears nothing from it
    await eventually(lambda: len(room_a.presence) == 0, 2, "A drops B's presence")
    b.transport.reconnect()
    await eventually(lambda: len(room_a.presence) == 1, 2, "B's presence comes back")


async def test_edits_handed_over_at_a_join_are_written_if_their_holder_dies(hub: Hub) -> None:
    a = Process(hub, {})
    edit(await a.open("doc"), "only in A's memory")
    b = Process(hub, {})
    room_b = await b.open("doc")
    assert text(room_b) == "only in A's memory"
    a.transport.disconnect()  # A dies
    await eventually(lambda: b.gone == [["doc"]], 2, "B checks the room A handed over")


async def test_a_delete_missed_during_an_outage_is_found_after_it(hub: Hub) -> None:
    a, b = Process(hub, {}), Process(hub, {})
    await a.open("doc")
    await b.open("doc")
    b.transport.disconnect()
    a.fanout.deleted("doc")
    b.tombstones.add("doc")
    await asyncio.sleep(0.05)
    assert b.deleted == []
    b.transport.reconnect()
    await eventually(lambda: b.deleted == ["doc"], 2, "B finds the delete")


def _published(process: Process, kind: Kind) -> int:
    return sum(1 for message in process.transport.sent if message.kind is kind)


async def test_a_room_no_other_process_has_open_publishes_nothing(hub: Hub) -> None:
    a = Process(hub, {})
    room_a = await a.open("doc")
    for i in range(5):
        edit(room_a, str(i))
    _presence_of(room_a, "alice")
    await asyncio.sleep(0.05)
    assert _published(a, Kind.UPDATE) == _published(a, Kind.AWARENESS) == 0
    b = Process(hub, {})
    room_b = await b.open("doc")  # the reply to B's query holds everything
    assert text(room_b) == "01234"
    assert len(room_b.presence) == 1
    edit(room_a, "5")
    edit(room_b, "6")
    await eventually(lambda: text(room_a) == text(room_b) and len(text(room_a)) == 7, 2, "both")
    assert sorted(text(room_a)) == list("0123456")


async def test_a_room_stops_publishing_when_the_other_process_leaves(hub: Hub) -> None:
    a, b = Process(hub, {}), Process(hub, {})
    room_a = await a.open("doc")
    await b.open("doc")
    edit(room_a, "shared")
    await asyncio.sleep(0.05)
    assert _published(a, Kind.UPDATE) == 1
    await b.fanout.detach("doc")
    await eventually(lambda: _published(a, Kind.PROBE) == 1, 2, "A probes")
    await asyncio.sleep(0.05)
    edit(room_a, " alone")
    await asyncio.sleep(0.05)
    assert _published(a, Kind.UPDATE) == 1


async def test_a_crafted_update_from_the_bus_is_checked_before_a_room_holds_it(
    hub: Hub, caplog: pytest.LogCaptureFixture
) -> None:
    a = Process(hub, {})

    async def load(doc_id: str) -> Doc[Any]:
        return Doc()

    doc = await a.fanout.load("doc", load)  # open, not yet attached to a room
    crafted = Message(Kind.UPDATE, "intruder", "", deep_any(26_000)).encode()
    with caplog.at_level(logging.WARNING, "collab.fanout"):
        a.fanout.received(a.fanout.channel("doc"), crafted)
    assert "nested deeper than" in caplog.text
    assert doc.get_update() == protocol.EMPTY_UPDATE


def _inserted(state: bytes, content: str, at: int | None = None) -> bytes:
    """An update inserting ``content`` into the text of a document in ``state`` (at its
    end by default), made by another process's client (not applied here)."""
    source: Doc[Any] = Doc()
    source.apply_update(state)
    before = source.get_state()
    shared = source.get("text", type=Text)
    shared.insert(len(shared) if at is None else at, content)
    return source.get_update(before)


async def test_a_large_update_from_the_bus_is_checked_in_a_thread_and_what_follows_waits(
    hub: Hub, inspect_gate: Gate, caplog: pytest.LogCaptureFixture
) -> None:
    workers = Workers()
    b = Process(hub, {}, workers=workers)
    try:
        room = await b.open("doc")
        other = await b.open("other")
        channel = b.fanout.channel("doc")
        edit(room, "start ")
        large = _inserted(room.doc.get_update(), BIG)
        small = _inserted(room.doc.get_update(), "> ", at=0)  # needs nothing of the large one
        b.fanout.received(channel, Message(Kind.UPDATE, "elsewhere", "", large).encode())
        b.fanout.received(channel, Message(Kind.UPDATE, "elsewhere", "", small).encode())
        await inspect_gate.wait_entered()
        # The loop is free: this test runs on it, and another room takes an edit.
        edit(other, "meanwhile")
        assert text(other) == "meanwhile"
        assert text(room) == "start "  # the small update waits behind the large one
        inspect_gate.open.set()
        await eventually(lambda: text(room) == "> start " + BIG, 10, "both")
        assert inspect_gate.large_threads == [WORKER]
        # A malformed large update is logged and dropped; what follows it is applied.
        with caplog.at_level(logging.WARNING, "collab.fanout"):
            malformed = large[: len(large) // 2]
            b.fanout.received(channel, Message(Kind.UPDATE, "elsewhere", "", malformed).encode())
            last = _inserted(room.doc.get_update(), "!")
            b.fanout.received(channel, Message(Kind.UPDATE, "elsewhere", "", last).encode())
            await eventually(lambda: text(room).endswith("!"), 10, "the update after it")
        assert "ignoring a UPDATE message for 'doc'" in caplog.text
        assert text(room) == "> start " + BIG + "!"
    finally:
        workers.close()


async def test_a_large_update_whose_check_in_a_thread_fails_is_checked_on_the_loop(
    hub: Hub, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    workers = Workers()
    b = Process(hub, {}, workers=workers)
    try:
        room = await b.open("doc")
        channel = b.fanout.channel("doc")

        async def fails(*args: object, **kwargs: object) -> None:
            raise RuntimeError("cannot schedule new futures after shutdown")

        monkeypatch.setattr(room, "prepare", fails)
        edit(room, "start ")
        large = _inserted(room.doc.get_update(), BIG)
        small = _inserted(room.doc.get_update(), "> ", at=0)
        with caplog.at_level(logging.ERROR, "collab.fanout"):
            b.fanout.received(channel, Message(Kind.UPDATE, "elsewhere", "", large).encode())
            b.fanout.received(channel, Message(Kind.UPDATE, "elsewhere", "", small).encode())
            await eventually(
                lambda: text(room) == "> start " + BIG, 10, "both, checked on the loop"
            )
        assert "in a worker thread failed" in caplog.text
    finally:
        workers.close()
