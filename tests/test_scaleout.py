"""Scale-out: several ``collab serve`` processes share one PostgreSQL database and one
Redis, and their peers edit together as if they were on one process.

Real processes only: PostgreSQL, redis-server, collab servers, pycrdt and stock JS
clients. The intervals are short (see ``SCALEOUT_SETTINGS`` in conftest), so a dead
process or a Redis outage is noticed in about a second.
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from typing import Any

import httpx
import pytest
import websockets
from pycrdt import Doc, Text
from sqlalchemy import select

from collab import state, yupdate
from collab.closecodes import CloseCode
from collab.protocol import EMPTY_UPDATE
from collab.schema import updates
from collab.sqlstore import SqlStore, create_engine

from .conftest import Cluster
from .jsclient import JsClient
from .support import CollabServer, PostgresServer, RedisServer, eventually
from .yclient import YClient

pytestmark = pytest.mark.timeout(90)

# Settings that keep compaction and automatic versions out of a test's way.
NO_COMPACTION = {
    "snapshot_threshold": "100000",
    "snapshot_interval": "3600",
    "room_release_delay": "3600",
    "version_quiet": "3600",
}


async def _edit_on_all(
    alice: YClient, bob: YClient, js: JsClient, *, pause: float
) -> dict[str, list[str]]:
    """Ten rounds of edits from each of three clients; what each inserted."""
    made: dict[str, list[str]] = {"a": [], "b": [], "j": []}
    for i in range(10):
        for name in made:
            made[name].append(f"<{name}{i}>")
        alice.append(made["a"][-1])
        bob.append(made["b"][-1])
        await js.command("insert", text=made["j"][-1], index=0)
        await asyncio.sleep(pause)
    return made


async def test_clients_on_three_processes_converge(
    cluster: Cluster, postgres_url: str, doc_id: str
) -> None:
    a, b, c = cluster.start_many(3)
    async with (
        JsClient(a.ws_base, doc_id) as js_a,
        JsClient(b.ws_base, doc_id) as js_b,
        YClient(a.ws_url(doc_id)) as py_a,
        YClient(b.ws_url(doc_id)) as py_b,
        YClient(c.ws_url(doc_id)) as py_c,
    ):
        await js_a.wait_synced()
        await js_b.wait_synced()
        tokens: dict[str, list[str]] = {n: [] for n in ("js_a", "js_b", "py_a", "py_b", "py_c")}
        for i in range(20):
            for name in tokens:
                tokens[name].append(f"<{name}-{i}>")
            # Every process takes edits at the same time, at both ends of the text.
            await js_a.command("insert", text=tokens["js_a"][-1], index=0)
            await js_b.command("insert", text=tokens["js_b"][-1])
            py_a.text().insert(0, tokens["py_a"][-1])
            py_b.append(tokens["py_b"][-1])
            py_c.text().insert(0, tokens["py_c"][-1])
            await asyncio.sleep(0.005)
        everything = [t for ts in tokens.values() for t in ts]
        expected = sum(len(t) for t in everything)

        async def converged() -> bool:
            texts = [await js_a.text(), await js_b.text()] + [
                p.content() for p in (py_a, py_b, py_c)
            ]
            return all(len(t) == expected for t in texts) and len(set(texts)) == 1

        await eventually(converged, 20, "clients on three processes to converge")
        final = py_a.content()
        assert all(t in final for t in everything)
        await eventually(
            lambda: _stored_text(postgres_url, doc_id, final), 10, "the text to be in the database"
        )


async def test_presence_crosses_processes_and_goes_with_its_peer(
    cluster: Cluster, doc_id: str
) -> None:
    a, b = cluster.start_many(2)
    async with YClient(a.ws_url(doc_id)) as alice:
        alice.set_presence({"user": {"name": "alice"}})
        async with JsClient(b.ws_base, doc_id) as js:
            await js.wait_synced()
            await js.command("presence", state={"user": {"name": "Ada"}})
            await eventually(lambda: "Ada" in _names(alice), what="B's JS peer's presence on A")

            async def js_sees_alice() -> bool:
                return str(alice.client_id) in (await js.refresh())["awareness"]

            await eventually(js_sees_alice, what="A's peer's presence in the JS client on B")
            # A joiner on B, where the room is open, sees who is on A.
            async with YClient(b.ws_url(doc_id)) as carol:
                await eventually(
                    lambda: carol.awareness.get(alice.client_id) == {"user": {"name": "alice"}},
                    what="a joiner on B to see the presence of a peer on A",
                )
        await eventually(lambda: "Ada" not in _names(alice), what="the JS peer's presence to go")

        # A process that dies says nothing: its peers' presence goes after the timeout.
        bob = YClient(b.ws_url(doc_id))
        await bob.connect()
        await asyncio.wait_for(bob.synced.wait(), 10)
        bob.set_presence({"user": {"name": "bob"}})
        await eventually(lambda: bob.client_id in alice.awareness, what="bob's presence on A")
        b.kill()
        await bob.wait_closed()
        await eventually(
            lambda: bob.client_id not in alice.awareness, 10, "a dead process's presence to go"
        )
        assert not alice.closed.is_set()
        assert alice.awareness == {}


async def test_presence_follows_peers_who_come_and_go_during_a_redis_outage(
    cluster: Cluster, redis: RedisServer, doc_id: str
) -> None:
    a, b = cluster.start_many(2)
    async with YClient(a.ws_url(doc_id)) as alice:
        alice.set_presence({"user": {"name": "alice"}})
        leaver = YClient(b.ws_url(doc_id))
        await leaver.connect()
        await asyncio.wait_for(leaver.synced.wait(), 10)
        leaver.set_presence({"user": {"name": "leaver"}})
        await eventually(lambda: leaver.client_id in alice.awareness, what="B's peer on A")

        redis.stop()
        await eventually(lambda: _both(a, b, "/readyz", 503), 15, "readyz 503 on both")
        await leaver.close()
        async with YClient(b.ws_url(doc_id)) as comer:
            comer.set_presence({"user": {"name": "comer"}})
            await comer.flush()
            redis.start()
            await eventually(lambda: _both(a, b, "/readyz", 200), 15, "readyz 200 on both")
            await eventually(
                lambda: comer.client_id in alice.awareness,
                5,
                "the presence of a peer who came during the outage",
            )
            await eventually(
                lambda: leaver.client_id not in alice.awareness,
                5,
                "the presence of a peer who left during the outage to go",
            )


async def test_a_stalled_process_that_comes_back_shares_presence_again(
    cluster: Cluster, doc_id: str
) -> None:
    a, b = cluster.start_many(2)
    async with YClient(a.ws_url(doc_id)) as alice, YClient(b.ws_url(doc_id)) as bob:
        alice.set_presence({"user": {"name": "alice"}})
        bob.set_presence({"user": {"name": "bob"}})
        await eventually(
            lambda: bob.client_id in alice.awareness and alice.client_id in bob.awareness,
            what="presence both ways",
        )
        # A long pause (a stuck host, a VM migrated): longer than the process timeout.
        b.signal(signal.SIGSTOP)
        try:
            await eventually(
                lambda: bob.client_id not in alice.awareness, 10, "A to give B up for gone"
            )
            alice.append("<while B stalled>")
            await alice.flush()
        finally:
            b.signal(signal.SIGCONT)
        await eventually(lambda: bob.content() == "<while B stalled>", 10, "the edit on B")
        bob.append("<back>")
        await eventually(lambda: alice.content().endswith("<back>"), what="B's edits on A")
        # Both peers are still connected: each must see the other again.
        await eventually(
            lambda: bob.client_id in alice.awareness and alice.client_id in bob.awareness,
            5,
            "presence both ways after B came back",
        )


async def test_joiner_on_a_fresh_process_sees_presence(cluster: Cluster, doc_id: str) -> None:
    a, b = cluster.start_many(2)
    async with YClient(a.ws_url(doc_id)) as alice:
        alice.set_presence({"user": {"name": "alice"}})
        await eventually(lambda: _stats_rooms(a) == 1, what="A to have the room open")
        # B has never had the room open: its joiner must still see who is on A.
        async with YClient(b.ws_url(doc_id)) as bob:
            await eventually(
                lambda: bob.awareness.get(alice.client_id) == {"user": {"name": "alice"}},
                what="a joiner on a process that opens the room to see presence on A",
            )


async def test_joiner_on_another_process_gets_unflushed_edits_in_its_first_sync(
    cluster: Cluster, postgres_url: str, doc_id: str
) -> None:
    a = cluster.start(flush_interval="30", max_write_lag="60")  # A holds its edits in memory
    b = cluster.start()
    async with YClient(a.ws_url(doc_id)) as alice:
        for i in range(20):
            alice.append(f"<a{i}>")
        await alice.flush()
        expected = "".join(f"<a{i}>" for i in range(20))
        await eventually(lambda: _unwritten(a) >= 20, what="A to accept the edits")
        assert await _stored(postgres_url, doc_id) == ""
        async with YClient(b.ws_url(doc_id)) as bob:
            # No waiting: B's first answer already holds what only A had.
            assert bob.content() == expected
            bob.append("<b>")
            await eventually(lambda: alice.content() == expected + "<b>", what="bob's edit on A")
        # A third process joins while A is stalled (still subscribed, not answering):
        # it waits no longer than the join timeout (1 s) and gets A's edits from B (in
        # its first answer when B's reply came within that second, else right after:
        # on a loaded machine it may not).
        c = cluster.start()
        a.signal(signal.SIGSTOP)
        try:
            started = time.monotonic()
            async with YClient(c.ws_url(doc_id)) as carol:
                assert time.monotonic() - started < 4
                await eventually(
                    lambda: carol.content() == expected + "<b>", 5, "A's edits from B on C"
                )
        finally:
            a.signal(signal.SIGCONT)
    _graceful_stop(a)
    _graceful_stop(b)
    _graceful_stop(c)
    assert await _stored(postgres_url, doc_id) == expected + "<b>"


async def test_editing_goes_on_through_a_redis_outage(
    cluster: Cluster, redis: RedisServer, postgres_url: str, doc_id: str
) -> None:
    a, b = cluster.start_many(2, **NO_COMPACTION)
    async with (
        YClient(a.ws_url(doc_id)) as alice,
        YClient(a.ws_url(doc_id)) as alice2,
        YClient(b.ws_url(doc_id)) as bob,
        JsClient(b.ws_base, doc_id) as js,
    ):
        await js.wait_synced()
        alice.append("<before>")
        await eventually(lambda: bob.content() == "<before>", what="an edit from A on B")
        assert await _status(a, "/readyz") == 200
        assert await _status(b, "/readyz") == 200

        redis.stop()
        await eventually(lambda: _both(a, b, "/readyz", 503), 15, "readyz 503 on both")
        made = await _edit_on_all(alice, bob, js, pause=0.02)
        # Each process keeps serving its own peers.
        await eventually(
            lambda: all(t in alice2.content() for t in made["a"]), what="A to serve its peers"
        )
        await eventually(
            lambda: all(t in bob.content() for t in made["j"]), what="B to serve its peers"
        )

        redis.start()
        await eventually(lambda: _both(a, b, "/readyz", 200), 15, "readyz 200 on both")
        everything = ["<before>"] + [t for ts in made.values() for t in ts]
        expected = sum(len(t) for t in everything)

        async def converged() -> bool:
            texts = [alice.content(), alice2.content(), bob.content(), await js.text()]
            return all(len(t) == expected for t in texts) and len(set(texts)) == 1

        await eventually(converged, 20, "both processes to converge after the outage")
        assert all(t in alice.content() for t in everything)

        bob.append("<after>")
        await eventually(lambda: alice.content().endswith("<after>"), what="live edits again")
        final = alice.content()
        await eventually(
            lambda: _stored_text(postgres_url, doc_id, final), 10, "everything to be written"
        )
        await eventually(
            lambda: _unwritten(a) == 0 and _unwritten(b) == 0, what="both processes to flush"
        )
        # What crossed at the resync was logged by the process that accepted it, only:
        # each character once, whatever rows group commit merged it into.
        _assert_logged_once(await _log(postgres_url, doc_id), len(final))


async def test_a_killed_process_loses_no_edit(
    cluster: Cluster, postgres_url: str, doc_id: str
) -> None:
    a = cluster.start(flush_interval="30", max_write_lag="60")  # A writes nothing before it dies
    b = cluster.start()
    async with YClient(b.ws_url(doc_id)) as bob, JsClient(a.ws_base, doc_id) as js:
        await js.wait_synced()
        alice = YClient(a.ws_url(doc_id))
        await alice.connect()
        await asyncio.wait_for(alice.synced.wait(), 10)
        made = await _edit_on_all(alice, bob, js, pause=0.01)
        await eventually(
            lambda: all(t in bob.content() for t in made["a"] + made["j"]), what="A's edits on B"
        )
        stored = await _stored(postgres_url, doc_id)
        assert not any(t in stored for t in made["a"] + made["j"]), "A wrote before it died"

        # A load balancer sends the JS client's reconnection to B; alice is gone for
        # good, so her edits now live only in B's memory.
        await js.command("server", url=b.ws_base)
        a.kill()
        await alice.wait_closed()

        async def js_back_on_b() -> bool:
            state = await js.refresh()
            return state["status"] == "connected" and state["connections"] == 2

        await eventually(js_back_on_b, 15, "the JS client to reconnect to B")
        for i in range(10, 15):
            for name in ("b", "j"):
                made[name].append(f"<{name}{i}>")
            bob.append(made["b"][-1])
            await js.command("insert", text=made["j"][-1], index=0)
        everything = [t for ts in made.values() for t in ts]
        expected = sum(len(t) for t in everything)

        async def converged() -> bool:
            texts = [bob.content(), await js.text()]
            return all(len(t) == expected for t in texts) and len(set(texts)) == 1

        await eventually(converged, 15, "B's peers to converge")
        final = bob.content()
        assert all(t in final for t in everything)
        await eventually(
            lambda: _stored_text(postgres_url, doc_id, final),
            15,
            "B to write the edits A had accepted but not written",
        )
    _graceful_stop(b)
    later = cluster.start()
    assert await _document_text(later, doc_id) == final


async def test_edits_a_killed_process_handed_over_at_a_join_are_not_lost(
    cluster: Cluster, postgres_url: str, doc_id: str
) -> None:
    a = cluster.start(flush_interval="30", max_write_lag="60")  # A writes nothing before it dies
    b = cluster.start()
    async with YClient(a.ws_url(doc_id)) as alice:
        alice.append("<only in memory>")
        await eventually(lambda: _unwritten(a) >= 1, what="A to accept the edit")
        # B gets A's unwritten edit when it opens the room, not as a live update.
        async with YClient(b.ws_url(doc_id)) as bob:
            assert bob.content() == "<only in memory>"
            a.kill()
            await alice.wait_closed()
            await eventually(
                lambda: _stored_text(postgres_url, doc_id, "<only in memory>"),
                10,
                "B to write the edit only it still holds",
            )


async def test_a_process_started_later_loads_and_joins(
    cluster: Cluster, postgres_url: str, doc_id: str
) -> None:
    a, b = cluster.start_many(2)
    async with YClient(a.ws_url(doc_id)) as alice, YClient(b.ws_url(doc_id)) as bob:
        alice.append("<a0>")
        bob.append("<b0>")
        await eventually(
            lambda: alice.content() == bob.content() and len(bob.content()) == 8,
            what="A and B to converge",
        )
        start = alice.content()
        await eventually(lambda: _stored_text(postgres_url, doc_id, start), what="a flush")
        c = cluster.start()
        async with YClient(c.ws_url(doc_id)) as carol, JsClient(c.ws_base, doc_id) as js:
            assert carol.content() == start
            await js.wait_synced()
            made: list[str] = []
            for i in range(1, 11):
                made += [f"<a{i}>", f"<b{i}>", f"<c{i}>", f"<j{i}>"]
                alice.append(made[-4])
                bob.text().insert(0, made[-3])
                carol.append(made[-2])
                await js.command("insert", text=made[-1], index=0)
                await asyncio.sleep(0.01)
            expected = len(start) + sum(len(t) for t in made)

            async def converged() -> bool:
                texts = [alice.content(), bob.content(), carol.content(), await js.text()]
                return all(len(t) == expected for t in texts) and len(set(texts)) == 1

            await eventually(converged, 20, "three processes to converge")
            assert all(t in carol.content() for t in made)


async def test_delete_on_one_process_closes_peers_on_every_process(
    cluster: Cluster, doc_id: str
) -> None:
    a, b = cluster.start_many(2)
    async with JsClient(b.ws_base, doc_id) as js:
        await js.wait_synced()
        alice = YClient(a.ws_url(doc_id))
        bob = YClient(b.ws_url(doc_id))
        for client in (alice, bob):
            await client.connect()
            await asyncio.wait_for(client.synced.wait(), 10)
        alice.append("doomed")
        await eventually(lambda: bob.content() == "doomed", what="the edit on B")
        async with httpx.AsyncClient() as http:
            response = await http.delete(f"{a.url}/api/documents/{doc_id}")
        assert response.status_code == 204
        await alice.wait_closed()
        await bob.wait_closed()
        assert alice.close_code == CloseCode.DOCUMENT_DELETED
        assert bob.close_code == CloseCode.DOCUMENT_DELETED
        await eventually(
            lambda: any(
                e["event"] == "close" and e["code"] == CloseCode.DOCUMENT_DELETED for e in js.events
            ),
            what="the JS client on B to be closed with 4410",
        )
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(b.ws_url(doc_id))
    assert refused.value.response.status_code == 410


async def test_a_delete_during_a_redis_outage_closes_peers_on_every_process_after_it(
    cluster: Cluster, redis: RedisServer, doc_id: str
) -> None:
    a, b = cluster.start_many(2)
    async with YClient(a.ws_url(doc_id)) as alice:
        bob = YClient(b.ws_url(doc_id))
        await bob.connect()
        await asyncio.wait_for(bob.synced.wait(), 10)
        alice.append("doomed")
        await eventually(lambda: bob.content() == "doomed", what="the edit on B")
        redis.stop()
        await eventually(lambda: _both(a, b, "/readyz", 503), 15, "readyz 503 on both")
        async with httpx.AsyncClient() as http:
            response = await http.delete(f"{a.url}/api/documents/{doc_id}")
        assert response.status_code == 204
        await alice.wait_closed()
        redis.start()
        await eventually(lambda: _both(a, b, "/readyz", 200), 15, "readyz 200 on both")
        await bob.wait_closed(5)
        assert bob.close_code == CloseCode.DOCUMENT_DELETED


async def test_an_update_posted_to_one_process_reaches_peers_on_another(
    cluster: Cluster, doc_id: str
) -> None:
    a, b = cluster.start_many(2)
    async with YClient(b.ws_url(doc_id)) as bob, JsClient(b.ws_base, doc_id) as js:
        await js.wait_synced()
        source: Doc[Any] = Doc()
        source.get("text", type=Text).insert(0, "from the API")
        async with httpx.AsyncClient() as http:
            response = await http.post(
                f"{a.url}/api/documents/{doc_id}/update", content=source.get_update()
            )
        assert response.status_code == 200
        await eventually(lambda: bob.content() == "from the API", what="the update on B")

        async def js_has_it() -> bool:
            return await js.text() == "from the API"

        await eventually(js_has_it, what="the update in the JS client on B")

        # A version saved on B and restored on A: B's peers get the restored content.
        async with httpx.AsyncClient() as http:
            saved = await http.post(f"{b.url}/api/documents/{doc_id}/versions", json={})
            assert saved.status_code == 201
            bob.append(", changed later")
            await eventually(
                lambda: _served_text(a, doc_id, "from the API, changed later"),
                what="bob's change on A",
            )
            restored = await http.post(
                f"{a.url}/api/documents/{doc_id}/versions/{saved.json()['id']}/restore"
            )
            assert restored.status_code == 200, restored.text
        await eventually(lambda: bob.content() == "from the API", what="the restore on B")
        await eventually(js_has_it, what="the restore in the JS client on B")


def _assert_logged_once(rows: list[bytes], characters: int) -> None:
    """Each character of an insert-only text is logged once, whatever rows group commit
    merged the edits into."""
    structs = [
        (client, clock, length)
        for row in rows
        if row != EMPTY_UPDATE
        for client, spans in yupdate.split(row)[0].items()
        for clock, length, encoded in spans
        if encoded[:1] != b"\x0a"  # a skip struct: a gap in a merged row
    ]
    assert len({(client, clock) for client, clock, _ in structs}) == len(structs)
    assert sum(length for _, _, length in structs) == characters


async def test_each_update_is_logged_once(cluster: Cluster, postgres_url: str, doc_id: str) -> None:
    a, b = cluster.start_many(2, **NO_COMPACTION)
    async with (
        YClient(a.ws_url(doc_id)) as alice,
        YClient(b.ws_url(doc_id)) as bob,
        YClient(b.ws_url(doc_id)) as bob2,
    ):
        for i in range(30):
            alice.append(f"<a{i}>")
            bob.append(f"<b{i}>")
            await asyncio.sleep(0.01)
        expected = sum(len(f"<a{i}><b{i}>") for i in range(30))
        await eventually(
            lambda: (
                all(len(c.content()) == expected for c in (alice, bob, bob2))
                and alice.content() == bob.content() == bob2.content()
            ),
            what="convergence",
        )
        final = alice.content()
        await eventually(
            lambda: _unwritten(a) == 0 and _unwritten(b) == 0, what="both processes to flush"
        )
        # Each edit a client made, once, on whichever process took it.
        _assert_logged_once(await _log(postgres_url, doc_id), len(final))
    _graceful_stop(a)
    _graceful_stop(b)
    later = cluster.start()
    assert await _document_text(later, doc_id) == final


async def test_the_prefix_separates_deployments_on_one_redis(
    cluster: Cluster,
    postgres: PostgresServer,
    postgres_template: str,
    redis: RedisServer,
    doc_id: str,
) -> None:
    other_url = postgres.create_database("other_" + uuid.uuid4().hex[:16], postgres_template)
    elsewhere = Cluster(other_url, redis)
    try:
        a, b = cluster.start_many(2)
        (other,) = elsewhere.start_many(1, redis_prefix="other")
        async with (
            YClient(other.ws_url(doc_id)) as stranger,
            YClient(a.ws_url(doc_id)) as alice,
            YClient(b.ws_url(doc_id)) as bob,
        ):
            stranger.append("<elsewhere>")
            alice.append("<here>")
            await eventually(lambda: bob.content() == "<here>", what="the edit on B")
            bob.append("<too>")
            await eventually(lambda: alice.content() == "<here><too>", what="bob's edit on A")
            assert stranger.content() == "<elsewhere>"
    finally:
        elsewhere.stop()


# Helpers


def _names(client: YClient) -> set[str]:
    return {s.get("user", {}).get("name") for s in client.awareness.values() if s}


async def _status(server: CollabServer, path: str) -> int:
    try:
        async with httpx.AsyncClient(timeout=5) as http:
            return (await http.get(server.url + path)).status_code
    except httpx.HTTPError:
        return 0


async def _both(a: CollabServer, b: CollabServer, path: str, status: int) -> bool:
    return await _status(a, path) == status and await _status(b, path) == status


def _stats(server: CollabServer) -> dict[str, Any]:
    response = httpx.get(server.url + "/api/stats", timeout=5)
    response.raise_for_status()
    stats: dict[str, Any] = response.json()
    return stats


def _unwritten(server: CollabServer) -> int:
    return int(_stats(server)["unwritten_updates"])


def _stats_rooms(server: CollabServer) -> int:
    return int(_stats(server)["rooms"])


async def _document_text(server: CollabServer, doc_id: str) -> str:
    """The Y.Text "text" of the document as the process serves it."""
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(f"{server.url}/api/documents/{doc_id}/update")
    response.raise_for_status()
    doc: Doc[Any] = Doc()
    doc.apply_update(response.content)
    return str(doc.get("text", type=Text))


async def _served_text(server: CollabServer, doc_id: str, expected: str) -> bool:
    return await _document_text(server, doc_id) == expected


async def _stored(database_url: str, doc_id: str) -> str:
    """The Y.Text "text" of the document as PostgreSQL holds it, read directly."""
    store = SqlStore(create_engine(database_url))
    try:
        stored = await store.load(doc_id)
    finally:
        await store.close()
    return str(state.build_doc(stored.snapshot, stored.updates).get("text", type=Text))


async def _stored_text(database_url: str, doc_id: str, expected: str) -> bool:
    return await _stored(database_url, doc_id) == expected


async def _log(database_url: str, doc_id: str) -> list[bytes]:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            rows = await conn.scalars(
                select(updates.c.data).where(updates.c.doc_id == doc_id).order_by(updates.c.seq)
            )
            return list(rows)
    finally:
        await engine.dispose()


def _graceful_stop(server: CollabServer) -> None:
    # uvicorn ends a graceful shutdown by re-raising the signal it caught.
    assert server.stop() in (0, -signal.SIGTERM)
    assert "rooms written" in server.log()
    assert "(incomplete)" not in server.log()
