"""Presence: joiners see who is here; a peer's entries go when its socket ends, in
any way, and only its own entries."""

from __future__ import annotations

import asyncio

from collab.presence import Presence

from .conftest import ServerFactory
from .support import CollabServer, eventually
from .yclient import YClient


async def test_joiner_sees_current_presence(server: CollabServer, doc_id: str) -> None:
    async with YClient(server.ws_url(doc_id)) as alice:
        alice.set_presence({"user": {"name": "alice"}})
        async with YClient(server.ws_url(doc_id)) as bob:
            await eventually(
                lambda: bob.awareness.get(alice.client_id) == {"user": {"name": "alice"}}
            )


async def test_presence_removed_on_close(server: CollabServer, doc_id: str) -> None:
    async with YClient(server.ws_url(doc_id)) as watcher:
        leaver = YClient(server.ws_url(doc_id))
        await leaver.connect()
        leaver.set_presence({"user": {"name": "leaver"}})
        await eventually(lambda: leaver.client_id in watcher.awareness)
        await leaver.close()
        await eventually(lambda: leaver.client_id not in watcher.awareness, what="removal")


async def test_presence_removed_on_abrupt_drop(server: CollabServer, doc_id: str) -> None:
    async with YClient(server.ws_url(doc_id)) as watcher:
        dropper = YClient(server.ws_url(doc_id))
        await dropper.connect()
        dropper.set_presence({"user": {"name": "dropper"}})
        await eventually(lambda: dropper.client_id in watcher.awareness)
        dropper.abort()  # TCP connection dropped, no closing handshake
        await eventually(lambda: dropper.client_id not in watcher.awareness, what="removal")
        await dropper.wait_closed()


async def test_presence_removed_when_heartbeat_fails(
    start_server: ServerFactory, doc_id: str
) -> None:
    server = start_server(ping_interval="0.3", ping_timeout="0.5")
    async with YClient(server.ws_url(doc_id)) as watcher:
        frozen = YClient(server.ws_url(doc_id))
        await frozen.connect()
        frozen.set_presence({"user": {"name": "frozen"}})
        await eventually(lambda: frozen.client_id in watcher.awareness)
        assert frozen._ws is not None
        frozen._ws.transport.pause_reading()  # no pongs any more, as from a dead host
        await eventually(lambda: frozen.client_id not in watcher.awareness, 10, "removal")
        assert not watcher.closed.is_set()
        frozen.abort()


async def test_one_peer_clearing_anothers_state_does_not_wipe_it_later(
    server: CollabServer, doc_id: str
) -> None:
    async with YClient(server.ws_url(doc_id)) as alice, YClient(server.ws_url(doc_id)) as watcher:
        mallory = YClient(server.ws_url(doc_id))
        await mallory.connect()
        alice.set_presence({"user": {"name": "alice"}})
        await eventually(lambda: alice.client_id in watcher.awareness)
        # Mallory overwrites Alice's entry with a newer clock, then leaves.
        impostor = YClient(server.ws_url(doc_id), client_id=alice.client_id)
        impostor._ws = mallory._ws
        impostor._clock = 100
        impostor.set_presence({"user": {"name": "not alice"}})
        await eventually(lambda: watcher.awareness[alice.client_id]["user"]["name"] == "not alice")
        alice._clock = 200
        alice.set_presence({"user": {"name": "alice"}})
        await eventually(lambda: watcher.awareness[alice.client_id]["user"]["name"] == "alice")
        await mallory.close()
        await asyncio.sleep(0.3)  # give a wrong removal the chance to arrive
        assert watcher.awareness.get(alice.client_id) == {"user": {"name": "alice"}}


def test_presence_unit_ownership_and_removal() -> None:
    presence = Presence()
    a, b = object(), object()

    def entry(client: int, clock: int, state: str) -> bytes:
        from pycrdt import write_var_uint

        encoded = state.encode()
        return (
            write_var_uint(1)
            + write_var_uint(client)
            + write_var_uint(clock)
            + write_var_uint(len(encoded))
            + encoded
        )

    assert presence.apply(entry(1, 1, '{"n":1}'), a)
    assert not presence.apply(entry(1, 1, '{"n":1}'), a)  # same clock: no change
    assert presence.apply(entry(1, 2, '{"n":2}'), b)  # b updates a's entry
    assert presence.remove_owned_by(b) is None  # ...but a still owns it
    assert presence.apply(entry(2, 1, '{"n":3}'), b)
    removal = presence.remove_owned_by(a)
    assert removal is not None
    assert presence.states() == {2: {"n": 3}}
    assert presence.apply(entry(2, 1, "null"), a)  # removal at the same clock applies
    assert presence.states() == {}
