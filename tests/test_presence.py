"""Presence: joiners see who is here; a peer's entries go when its socket ends, in
any way, and only its own entries."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import jwt
import pytest
from pycrdt import write_var_uint

from collab import protocol
from collab.closecodes import CloseCode
from collab.presence import MAX_DEPTH, Presence, PresenceLimits, PresenceRefused
from collab.protocol import ProtocolError

from .conftest import ServerFactory
from .jsclient import JsClient, JsTabs
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


def _update(*entries: tuple[int, int, object]) -> bytes:
    """An awareness update of (client id, clock, state) entries; None removes."""
    parts = [write_var_uint(len(entries))]
    for client, clock, state in entries:
        encoded = (state if isinstance(state, str) else json.dumps(state)).encode()
        parts += [write_var_uint(client), write_var_uint(clock), write_var_uint(len(encoded))]
        parts.append(encoded)
    return b"".join(parts)


def _warnings(server: CollabServer, text: str) -> int:
    return sum(1 for line in server.log().splitlines() if " WARNING " in line and text in line)


# Presence belongs to its connection


@pytest.mark.parametrize("spoof", ["overwrite", "remove"])
async def test_a_peer_cannot_change_or_remove_anothers_presence(
    shared_server: CollabServer, doc_id: str, spoof: str
) -> None:
    url = shared_server.ws_url(doc_id)
    async with YClient(url) as alice, YClient(url) as watcher, YClient(url) as mallory:
        alice.set_presence({"user": {"name": "alice"}})
        await eventually(lambda: alice.client_id in watcher.awareness)
        forged = {"user": {"name": "not alice"}} if spoof == "overwrite" else None
        await mallory.send_raw(protocol.awareness(_update((alice.client_id, 100, forged))))
        mallory.append("after the spoof")  # the server handles mallory's frames in order
        await eventually(lambda: watcher.content() == "after the spoof")
        assert watcher.awareness[alice.client_id] == {"user": {"name": "alice"}}
        # Nor is Alice frozen out at a lower clock than the forged one.
        alice.set_presence({"user": {"name": "alice again"}})
        await eventually(
            lambda: watcher.awareness.get(alice.client_id) == {"user": {"name": "alice again"}}
        )
        assert not mallory.closed.is_set()
        async with YClient(url) as late:
            await eventually(lambda: late.awareness.get(alice.client_id) is not None)
            assert late.awareness[alice.client_id]["user"]["name"] == "alice again"
    assert _warnings(shared_server, f"tried to change client {alice.client_id}") == 1


async def test_a_reconnect_with_the_same_client_id_keeps_presence(
    server: CollabServer, doc_id: str
) -> None:
    """A y-websocket client reconnects with the same client id; its old socket may not
    be gone yet (a dropped network): the new one is not closed, and it shows its
    presence as soon as the old one goes."""
    url = server.ws_url(doc_id)
    async with YClient(url) as watcher:
        first = await YClient(url).connect()
        first.set_presence({"user": {"name": "ada"}})
        await eventually(lambda: first.client_id in watcher.awareness)
        await first.close()
        await eventually(lambda: first.client_id not in watcher.awareness, what="removal")
        second = YClient(url, client_id=first.client_id)
        await second.connect()
        second._clock = first._clock
        second.set_presence({"user": {"name": "ada, back"}})
        await eventually(lambda: watcher.awareness.get(first.client_id) is not None)
        assert watcher.awareness[first.client_id]["user"]["name"] == "ada, back"
        # Reconnecting again while the second socket lingers.
        third = YClient(url, client_id=first.client_id)
        await third.connect()
        third._clock = second._clock
        third.set_presence({"user": {"name": "ada, third"}})
        third.append("third is here")
        await eventually(lambda: watcher.content() == "third is here")
        assert watcher.awareness[first.client_id]["user"]["name"] == "ada, back"
        second.abort()
        await eventually(lambda: first.client_id not in watcher.awareness, what="removal")
        third.set_presence({"user": {"name": "ada, third"}})  # y-protocols renews every 15 s
        await eventually(lambda: watcher.awareness.get(first.client_id) is not None)
        assert watcher.awareness[first.client_id]["user"]["name"] == "ada, third"
        assert not third.closed.is_set()
        await third.close()
        await eventually(lambda: first.client_id not in watcher.awareness, what="removal")
        await second.wait_closed()


async def test_a_stock_client_echoing_presence_keeps_its_own(
    server: CollabServer, doc_id: str
) -> None:
    """y-websocket sends back every awareness change it receives, other clients'
    entries included: they are ignored without a warning, and its own presence works."""
    url = server.ws_url(doc_id)
    async with YClient(url) as alice, YClient(url) as bob:
        alice.set_presence({"user": {"name": "alice"}})
        bob.set_presence({"user": {"name": "bob"}})
        async with JsClient(server.ws_base, doc_id) as js:
            await js.wait_synced()
            await js.command("presence", state={"user": {"name": "Ada"}})

            async def js_sees_both() -> bool:
                seen = (await js.refresh())["awareness"]
                return str(alice.client_id) in seen and str(bob.client_id) in seen

            await eventually(js_sees_both, what="the Python peers in the JS client")
            await eventually(lambda: len(alice.awareness) == 2, what="Ada and bob on alice")
            alice.set_presence({"user": {"name": "alice", "moved": True}})
            await eventually(lambda: alice.client_id in bob.awareness)
            await eventually(lambda: bob.awareness[alice.client_id]["user"].get("moved") is True)
            assert not any(e["event"] == "close" for e in js.events)
        await eventually(lambda: len(alice.awareness) == 1, what="Ada's presence to go")
    assert "another's; ignored" not in server.log()
    assert "closing it" not in server.log()


async def test_tabs_of_one_browser_each_keep_their_own_presence(
    server: CollabServer, doc_id: str
) -> None:
    """Tabs of one browser share awareness over y-websocket's BroadcastChannel, and each
    sends the server the other tabs' entries: a new tab's, before the new tab's own
    socket is open. No tab is closed for it (more tabs than a connection's id limit),
    every tab's entry is its own, and it stays when a tab that relayed it goes."""
    count = 8  # twice COLLAB_MAX_AWARENESS_CLIENTS
    async with YClient(server.ws_url(doc_id)) as watcher, JsTabs(server.ws_base, doc_id) as browser:
        watcher.set_presence({"user": {"name": "watcher"}})
        for opened in range(1, count + 1):
            await browser.command("open")

            async def settled(opened: int = opened) -> bool:
                tabs = await browser.tabs()
                return len(tabs) == opened and all(
                    t["synced"] and len(t["seen"]) == opened + 1 for t in tabs
                )

            await eventually(settled, what=f"{opened} tabs to see each other and the watcher")
        ids = [tab["clientID"] for tab in await browser.tabs()]
        await eventually(lambda: set(ids) <= set(watcher.awareness), what="every tab")
        for i, client in enumerate(ids[:-1]):
            await browser.command("close", tab=i)
            await eventually(lambda c=client: c not in watcher.awareness, what=f"tab {i} to go")
            # The room removes what the tab's socket held when it closes, just after.
            await asyncio.sleep(0.3)
            left = set(ids[i + 1 :])
            assert left <= set(watcher.awareness), f"tab {i} took others' presence with it"
            moved = {"user": {"name": f"tab {count - 1}", "after": i}}
            await browser.command("presence", tab=count - 1, state=moved)
            await eventually(lambda m=moved: watcher.awareness.get(ids[-1]) == m, what="a move")
        assert [t["closes"] for t in await browser.tabs()] == [[]] * count
    assert "closing it" not in server.log()


# Bounds


def _read_only_token(secret: str) -> str:
    claims = {"sub": "reader", "docs": ["*"], "mode": "ro", "exp": int(time.time() + 600)}
    return jwt.encode(claims, secret, algorithm="HS256")


@pytest.mark.parametrize("mode", ["rw", "ro"])
async def test_awareness_ids_past_a_connections_bound_are_ignored(
    start_server: ServerFactory, doc_id: str, mode: str
) -> None:
    secret = "a-secret-that-is-long-enough-for-hs256"
    server = start_server(auth_secret=secret)
    query = f"?token={_read_only_token(secret) if mode == 'ro' else _token(secret)}"
    url = server.ws_url(doc_id) + query
    async with YClient(url) as good, YClient(url) as bad:
        good.set_presence({"user": {"name": "good"}})
        await eventually(lambda: good.client_id in bad.awareness)
        ids = [900_001 + i for i in range(6)]
        for client in ids[:4]:  # presence under four ids is allowed (the default)...
            await bad.send_raw(protocol.awareness(_update((client, 1, {"n": client}))))
        await eventually(lambda: all(c in good.awareness for c in ids[:4]), what="four ids")
        await bad.send_raw(protocol.awareness(_update((ids[4], 1, {"n": 5}))))  # ...not five
        await bad.send_raw(protocol.awareness(_update((ids[0], 2, {"n": 0}), (ids[5], 1, {}))))
        bad.append("after the fifth and sixth")  # the server handles bad's frames in order
        await eventually(lambda: good.content() == "after the fifth and sixth" or mode == "ro")
        await eventually(lambda: good.awareness.get(ids[0]) == {"n": 0}, what="a change of one")
        assert not {ids[4], ids[5]} & set(good.awareness)
        assert not bad.closed.is_set()
        await bad.close()
        await eventually(lambda: not set(ids) & set(good.awareness), what="bad's ids to go")
        async with YClient(url) as late:
            await eventually(lambda: good.client_id in late.awareness)
            assert set(late.awareness) == {good.client_id}
        assert not good.closed.is_set()
    assert _warnings(server, "went past 4 awareness client ids; client 900005 ignored") == 1
    assert _warnings(server, "900006 ignored") == 0  # once per connection, then at debug


def _token(secret: str) -> str:
    claims = {"sub": "writer", "docs": ["*"], "mode": "rw", "exp": int(time.time() + 600)}
    return jwt.encode(claims, secret, algorithm="HS256")


async def test_an_oversized_awareness_state_closes_the_socket(
    shared_server: CollabServer, doc_id: str
) -> None:
    url = shared_server.ws_url(doc_id)
    async with YClient(url) as good, YClient(url) as bad:
        good.set_presence({"user": {"name": "good"}})
        await eventually(lambda: good.client_id in bad.awareness)
        huge = json.dumps({"blob": "x" * (4 * 1024 * 1024)})
        await bad.send_raw(protocol.awareness(_update((bad.client_id, 1, huge))))
        await bad.wait_closed()
        assert bad.close_code == CloseCode.MESSAGE_TOO_BIG
        good.append("still here")
        async with YClient(url) as late:
            await eventually(lambda: late.content() == "still here")
            await eventually(lambda: good.client_id in late.awareness)
            assert set(late.awareness) == {good.client_id}
        assert bad.client_id not in good.awareness
    size = len(huge)
    assert _warnings(shared_server, f"a {size}-byte awareness state (the limit is 65536)") == 1


async def test_a_deeply_nested_awareness_state_closes_with_1007(
    start_server: ServerFactory, doc_id: str
) -> None:
    server = start_server(max_awareness_state=str(1024 * 1024))  # depth, not size, refuses it
    url = server.ws_url(doc_id)
    async with YClient(url) as good, YClient(url) as bad:
        good.set_presence({"user": {"name": "good"}})
        await eventually(lambda: good.client_id in bad.awareness)
        deep = "[" * 100_000 + "]" * 100_000
        await bad.send_raw(protocol.awareness(_update((bad.client_id, 1, deep))))
        await bad.wait_closed()
        assert bad.close_code == CloseCode.INVALID_PAYLOAD
        good.append("still here")
        async with YClient(url) as late:
            await eventually(lambda: late.content() == "still here")
            await eventually(lambda: good.client_id in late.awareness)
        assert not good.closed.is_set()
    assert _warnings(server, f"nested deeper than {MAX_DEPTH}") == 1
    assert "Traceback" not in server.log()


async def test_a_full_room_ignores_new_presence(start_server: ServerFactory, doc_id: str) -> None:
    server = start_server(max_room_awareness_clients="2")
    url = server.ws_url(doc_id)
    async with YClient(url) as alice, YClient(url) as bob, YClient(url) as carol:
        alice.set_presence({"user": {"name": "alice"}})
        bob.set_presence({"user": {"name": "bob"}})
        await eventually(lambda: {alice.client_id, bob.client_id} <= set(carol.awareness))
        carol.set_presence({"user": {"name": "carol"}})
        carol.append("carol edits")  # after her presence, on the same socket
        await eventually(lambda: alice.content() == "carol edits")
        assert carol.client_id not in alice.awareness
        assert not carol.closed.is_set()
        await bob.close()
        await eventually(lambda: bob.client_id not in alice.awareness, what="bob's removal")
        carol.set_presence({"user": {"name": "carol"}})  # room again: it shows
        await eventually(lambda: carol.client_id in alice.awareness, what="carol's presence")
    assert _warnings(server, "to a full presence; ignored") == 1


# Unit tests of the ownership rules


def test_presence_belongs_to_the_connection_that_introduced_it() -> None:
    presence = Presence()
    a, b = object(), object()
    assert presence.apply(_update((1, 1, {"n": 1})), a) is not None
    assert presence.apply(_update((1, 1, {"n": 1})), a) is None  # same clock: no change
    assert presence.apply(_update((1, 2, {"n": 2})), b) is None  # b may not change it
    assert presence.apply(_update((1, 3, None)), b) is None  # nor remove it
    assert presence.remove_owned_by(b) is None
    assert presence.apply(_update((2, 1, {"n": 3})), b) is not None
    assert presence.apply(_update((1, 2, None)), a) is not None  # a removes its own
    assert presence.apply(_update((1, 3, {"n": 4})), b) is None  # a still holds the id
    assert presence.states() == {2: {"n": 3}}
    assert presence.remove_owned_by(a) is None  # nothing of a's is shown
    removal = presence.remove_owned_by(b)
    assert removal == _update((2, 1, None))
    assert presence.states() == {}


def test_only_what_applied_is_passed_on() -> None:
    presence = Presence()
    alice, mallory = object(), object()
    presence.apply(_update((1, 1, {"u": "alice"})), alice)
    mixed = _update((1, 9, {"u": "forged"}), (2, 1, {"u": "mallory"}))
    assert presence.apply(mixed, mallory) == _update((2, 1, {"u": "mallory"}))
    whole = _update((2, 2, {"u": "m2"}))
    assert presence.apply(whole, mallory) is whole  # sent on as it came


def test_an_echo_of_a_removed_state_does_not_bring_it_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    presence = Presence()
    leaver, echoer = object(), object()
    presence.apply(_update((1, 5, {"u": "leaver"})), leaver)
    with caplog.at_level(logging.WARNING, "collab.presence"):
        presence.apply(_update((1, 5, {"u": "leaver"})), echoer)  # y-websocket echoes it
        assert presence.remove_owned_by(leaver) is not None
        assert presence.apply(_update((1, 5, {"u": "leaver"})), echoer) is None  # late echo
        assert presence.apply(_update((1, 5, None)), echoer) is None
    assert caplog.records == []
    assert presence.states() == {}


def test_a_relay_never_changes_a_connections_entry() -> None:
    presence = Presence()
    peer = object()
    presence.apply(_update((1, 1, {"u": "here"})), peer)
    assert presence.apply(_update((1, 5, {"u": "there"})), "bus/other") is None
    changed, removal = presence.replace_owned(_update((1, 6, None), (2, 1, {})), "bus/other")
    assert changed == _update((2, 1, {}))
    assert removal is None
    assert presence.states() == {1: {"u": "here"}, 2: {}}


def test_bounds_of_one_connection() -> None:
    presence = Presence(PresenceLimits(clients_per_peer=2, state_bytes=300, clients_per_room=3))
    a, b = object(), object()
    three = _update((1, 1, {}), (2, 1, {}), (3, 1, {}))
    assert presence.apply(three, a) == _update((1, 1, {}), (2, 1, {}))  # the third is left out
    assert presence.apply(_update((1, 2, None)), a) is not None
    assert presence.apply(_update((3, 1, {})), a) is None  # a removed id still counts
    with pytest.raises(PresenceRefused) as big:
        presence.apply(_update((4, 1, {"x": "y" * 300})), b)
    assert big.value.code == CloseCode.MESSAGE_TOO_BIG
    with pytest.raises(PresenceRefused) as many:  # more entries than a room holds, and a's
        presence.apply(_update(*((1, 1, {}),) * 6), b)
    assert many.value.code == CloseCode.POLICY_VIOLATION
    assert presence.states() == {2: {}}  # nothing of a refused update is applied
    assert presence.apply(_update((4, 1, {})), b) is not None  # the room's third id
    assert presence.apply(_update((5, 1, {})), b) is None  # the room is full
    # A relay's oversized state is dropped, not refused: other processes are trusted.
    assert presence.apply(_update((6, 1, {"x": "y" * 300})), "bus/other") is None


def test_a_connections_own_id_is_taken_from_a_tab_that_passed_it_on() -> None:
    presence = Presence(PresenceLimits(clients_per_peer=2))
    first, second, third = object(), object(), object()
    presence.apply(_update((1, 1, {"tab": 1})), first)
    assert presence.apply(_update((2, 1, {"tab": 2})), first) is not None  # passed on
    assert presence.apply(_update((3, 1, {"tab": 3})), first) is None  # past its bound
    # The second tab's own first update: an echo of what the first passed on.
    assert presence.apply(_update((2, 1, {"tab": 2})), second) is None
    assert presence.apply(_update((3, 1, {"tab": 3})), first) is not None  # room again
    assert presence.remove_owned_by(first) == _update((1, 1, None), (3, 1, None))
    assert presence.states() == {2: {"tab": 2}}
    # An id that is another connection's own is never taken, by the first update either.
    assert presence.apply(_update((2, 2, {"tab": "forged"})), third) is None
    assert presence.apply(_update((2, 3, {"tab": 2, "moved": True})), second) is not None
    assert presence.remove_owned_by(third) is None
    assert presence.states() == {2: {"tab": 2, "moved": True}}
    # What a first update shows is the connection's own, however many ids it lists.
    presence = Presence()
    fourth, fifth = object(), object()
    presence.apply(_update((4, 1, {}), (5, 1, {})), fourth)
    assert presence.apply(_update((5, 2, {"n": 5})), fifth) is None
    assert presence.remove_owned_by(fourth) == _update((4, 1, None), (5, 1, None))


@pytest.mark.parametrize(
    ("state", "refused"),
    [
        ("[" * MAX_DEPTH + "]" * MAX_DEPTH, False),
        ("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), True),
        ('{"a":' * (MAX_DEPTH + 1) + "1" + "}" * (MAX_DEPTH + 1), True),
        (json.dumps({"s": "[{" * 1000 + '\\"]'}), False),  # brackets in a string
        ("[" * 100_000 + "]" * 100_000, True),
        ("[" * 100_000, True),
        ('"' + "[" * 100_000, True),  # not JSON: an unterminated string
    ],
    ids=["at-limit", "over", "objects-over", "in-a-string", "100k", "unclosed", "unterminated"],
)
def test_deep_states_are_refused_without_recursion(state: str, refused: bool) -> None:
    presence = Presence(PresenceLimits(state_bytes=1 << 20))
    update = _update((1, 1, state))
    if refused:
        with pytest.raises(ProtocolError):
            presence.apply(update, object())
    else:
        assert presence.apply(update, object()) is not None
