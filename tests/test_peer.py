"""One peer's queue and writer, with a fake transport."""

from __future__ import annotations

import asyncio

from collab.closecodes import CloseCode
from collab.peer import Departure, Peer, PeerState
from collab.stats import Stats

from .support import eventually


class FakeTransport:
    def __init__(self, *, blocked: bool = False) -> None:
        """`blocked`: the socket starts out taking no data (see `gate`)."""
        self.sent: list[bytes] = []
        self.batches: list[int] = []  # sizes of the multi-frame sends
        self.closed: tuple[int, str] | None = None
        self.aborted = False
        self.gate = asyncio.Event()  # cleared: the socket takes no more data
        if not blocked:
            self.gate.set()

    def write_now(self, frame: bytes) -> bool:
        if not self.gate.is_set():
            return False
        self.sent.append(frame)
        return True

    def write_parts(self, head: bytes, body: bytes) -> bool:
        return self.write_now(head + body)

    async def send(self, frame: bytes) -> None:
        await self.gate.wait()
        self.sent.append(frame)

    async def send_many(self, frames: list[bytes]) -> None:
        await self.gate.wait()
        self.sent.extend(frames)
        self.batches.append(len(frames))

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)

    def abort(self) -> None:
        self.aborted = True


async def test_frames_are_written_in_order() -> None:
    transport = FakeTransport()
    peer = Peer(transport)
    for i in range(100):
        peer.send(bytes([i]))
    peer.close(CloseCode.NORMAL)
    await peer.wait_closed()
    assert transport.sent == [bytes([i]) for i in range(100)][: len(transport.sent)]
    assert transport.closed == (CloseCode.NORMAL, "closed")


async def test_a_message_in_parts_keeps_its_place_behind_a_backlog() -> None:
    transport = FakeTransport(blocked=True)
    peer = Peer(transport)
    peer.send(b"first")  # queued: the socket takes nothing
    peer.send_parts(b"head:", b"body")
    assert peer.queued == 2
    transport.gate.set()
    await eventually(lambda: peer.queued == 0)
    peer.send_parts(b"head:", b"again")  # straight out, in parts
    assert transport.sent == [b"first", b"head:body", b"head:again"]
    assert peer.frames_sent == 3
    assert peer.bytes_sent == len(b"first") + len(b"head:body") + len(b"head:again")


async def test_overflow_closes_with_1013_instead_of_dropping() -> None:
    transport = FakeTransport(blocked=True)  # the socket stopped taking data
    peer = Peer(transport, max_messages=10)
    peer.send(b"first")
    await asyncio.sleep(0)  # the writer is now stuck sending it
    for _ in range(11):
        peer.send(b"x")
    assert peer.state is PeerState.CLOSING
    assert peer.close_code == CloseCode.TRY_AGAIN_LATER
    assert peer.queued == 0  # its queue is freed at once
    await peer.wait_closed()
    assert transport.aborted  # a stuck socket is dropped, not waited on
    peer.send(b"after")
    assert peer.queued == 0


async def test_byte_bound() -> None:
    transport = FakeTransport(blocked=True)
    peer = Peer(transport, max_bytes=8192)
    peer.send(b"a" * 3000)
    peer.send(b"b" * 3000)
    assert peer.state is PeerState.OPEN
    peer.send(b"c" * 3000)
    assert peer.close_code == CloseCode.TRY_AGAIN_LATER
    transport.gate.set()
    await peer.wait_closed()


async def test_queued_counts_taken_frames_until_they_are_written() -> None:
    transport = FakeTransport(blocked=True)
    peer = Peer(transport)
    peer.send(b"a")
    peer.send(b"b")
    await asyncio.sleep(0)  # the writer has taken both and is stuck writing them
    peer.send(b"c")
    assert peer.queued == 3
    transport.gate.set()
    for _ in range(10):
        await asyncio.sleep(0)
    assert transport.sent == [b"a", b"b", b"c"]
    assert peer.queued == 0
    assert peer.frames_sent == 3


async def test_frames_queued_while_a_write_is_pending_go_out_in_one_send() -> None:
    transport = FakeTransport(blocked=True)
    peer = Peer(transport)
    peer.send(b"first")
    await asyncio.sleep(0)  # the writer takes it and waits on the socket
    for i in range(5):
        peer.send(bytes([i]))
    transport.gate.set()
    await eventually(lambda: len(transport.sent) == 6, 2, "all frames written")
    assert transport.sent == [b"first", *(bytes([i]) for i in range(5))]
    assert transport.batches == [5]
    assert peer.frames_sent == 6
    assert peer.queued == 0
    peer.close(CloseCode.NORMAL)
    await peer.wait_closed()


async def test_frames_go_straight_out_with_no_writer_task() -> None:
    transport = FakeTransport()
    peer = Peer(transport)
    for i in range(3):
        peer.send(bytes([i]))
    assert transport.sent == [b"\x00", b"\x01", b"\x02"]  # written before any await
    assert peer._writer is None
    assert peer.frames_sent == 3


async def test_a_backlog_keeps_order_then_frames_go_straight_out_again() -> None:
    transport = FakeTransport(blocked=True)
    peer = Peer(transport)
    peer.send(b"a")
    peer.send(b"b")
    transport.gate.set()  # the socket drains, but the backlog is not written yet
    peer.send(b"c")  # so this one must wait behind it
    assert transport.sent == []
    await eventually(lambda: peer._writer is None, 2, "the writer to finish the backlog")
    assert transport.sent == [b"a", b"b", b"c"]
    peer.send(b"d")
    assert transport.sent[-1] == b"d"
    assert peer.queued == 0
    peer.close(CloseCode.NORMAL)
    await peer.wait_closed()
    assert transport.closed == (CloseCode.NORMAL, "closed")


async def test_a_peer_closed_by_its_client_needs_no_writer() -> None:
    peer = Peer(FakeTransport())
    peer.send(b"x")
    peer.disconnected(CloseCode.GOING_AWAY)
    await peer.wait_closed()
    assert peer.state is PeerState.CLOSED
    assert (peer.departure, peer.close_reason) == (Departure.CLIENT, "closed by client")


async def test_who_closed_a_peer_is_what_it_is_counted_as() -> None:
    stats = Stats()
    by_client, by_server, by_shutdown, timed_out, by_peer = (Peer(FakeTransport()) for _ in "12345")
    # A client may send any code: it is still the client that left.
    by_client.disconnected(CloseCode.INTERNAL_ERROR)
    by_server.disconnected(CloseCode.MESSAGE_TOO_BIG, "", Departure.SERVER)
    by_shutdown.disconnected(CloseCode.SERVICE_RESTART, "", Departure.SERVER)
    timed_out.disconnected(CloseCode.INTERNAL_ERROR, "keepalive ping timeout", Departure.TIMEOUT)
    by_peer.close(CloseCode.SERVICE_RESTART)
    by_peer.disconnected(CloseCode.NORMAL)  # the client's answer changes nothing
    peers = [by_client, by_server, by_shutdown, timed_out, by_peer]
    for peer in peers:
        await peer.wait_closed()
        stats.peer_closed(peer)
    assert [(p.departure, p.close_code, p.close_reason) for p in peers] == [
        (Departure.CLIENT, CloseCode.INTERNAL_ERROR, "closed by client"),
        (Departure.SERVER, CloseCode.MESSAGE_TOO_BIG, "message too big"),
        (Departure.SERVER, CloseCode.SERVICE_RESTART, "server restarting"),
        (Departure.TIMEOUT, CloseCode.INTERNAL_ERROR, "keepalive ping timeout"),
        (Departure.SERVER, CloseCode.SERVICE_RESTART, "server restarting"),
    ]
    assert stats.peers_closed == {"client": 1, "too_big": 1, "restart": 2, "ping_timeout": 1}
