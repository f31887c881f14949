"""collab embedded in a host application (tests/hostapp.py): FastAPI on a real uvicorn,
collab mounted under /collab with its lifespan the host's, the host's own sign-in and
hooks, server-side edits; the stock JS client and pycrdt against it."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pycrdt import Doc, Text, XmlFragment

from .conftest import SCALEOUT_SETTINGS, Cluster
from .jsclient import JsClient
from .support import (
    BIN,
    ROOT,
    CollabServer,
    HostServer,
    eventually,
    free_port,
    wait_until,
)
from .yclient import YClient

CAROL = {"Cookie": "session=carol:rw"}  # the host's sign-in
DAVE = {"Cookie": "session=dave:ro"}


@pytest.fixture
def events_path(tmp_path: Path) -> Path:
    return tmp_path / "events.jsonl"


@pytest.fixture
def host(database_url: str, events_path: Path) -> Iterator[HostServer]:
    server = HostServer(database_url, {"HOST_EVENTS": str(events_path)}).start()
    yield server
    server.stop()


def events(path: Path, hook: str | None = None) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    lines = [json.loads(line) for line in path.read_text().splitlines() if line]
    return [e for e in lines if hook is None or e["hook"] == hook]


def paragraphs(update: bytes) -> list[str]:
    doc: Doc[Any] = Doc()
    doc.apply_update(update)
    return [str(child) for child in doc.get("default", type=XmlFragment).children]


async def test_everything_lives_under_the_prefix(host: HostServer, doc_id: str) -> None:
    base = host.collab_url
    # A browser's request: the cookie, and the page's Origin (the cookie is ambient).
    origin = {"Origin": host.url}
    async with httpx.AsyncClient(base_url=base, headers={**CAROL, **origin}) as http:
        assert (await http.get("/healthz")).status_code == 200
        assert (await http.get("/readyz")).json() == {"status": "ready"}
        created = await http.post("/api/documents", json={"id": doc_id})
        assert created.status_code == 201, created.text
        assert (await http.get(f"/api/documents/{doc_id}")).json()["id"] == doc_id
        # The editor's pages name the prefix; their assets are found under it.
        page = (await http.get(f"/d/{doc_id}")).text
        assert '<base href="/collab/">' in page
        assert '<meta name="collab-base" content="/collab">' in page
        script = page.split('src="./', 1)[1].split('"', 1)[0]
        asset = await http.get(f"/{script}")
        assert asset.status_code == 200
        assert "javascript" in asset.headers["content-type"]
    # Outside the prefix, collab answers nothing.
    async with httpx.AsyncClient(base_url=host.url) as http:
        assert (await http.get("/api/documents")).status_code == 404


async def test_host_sign_in_decides_who_opens_what(host: HostServer, doc_id: str) -> None:
    async with httpx.AsyncClient(base_url=host.collab_url) as http:
        # No sign-in: refused by the hook returning None.
        assert (await http.get("/api/documents")).status_code == 401
        assert (await http.get("/api/session")).status_code == 401
        # The grant names the user: the editor shows the name and asks for none.
        me = (await http.get("/api/session", headers=CAROL, params={"doc": doc_id})).json()
        assert me == {
            "user": "carol",
            "name": "Carol Danvers",
            "mode": "rw",
            "anonymous": False,
            "expires_at": None,
            "refresh_url": None,
        }
        # A read-only grant cannot write through the API...
        origin = {"Origin": host.url}
        refused = await http.post("/api/documents", json={"id": doc_id}, headers={**DAVE, **origin})
        assert refused.status_code == 403
        assert refused.json()["error"] == "read_only"
        # ...and the cookie is the host's ambient credential: a cross-site page may
        # not use it.
        forged = await http.post(
            "/api/documents",
            json={"id": doc_id},
            headers={**CAROL, "Origin": "https://evil.example"},
        )
        assert forged.status_code == 403
        # Nor may a request that names a token collab does not read (no secret): its
        # credential is still the cookie.
        posed = await http.post(
            "/api/documents", params={"token": "x"}, json={"id": doc_id}, headers=CAROL
        )
        assert (posed.status_code, posed.json()["error"]) == (403, "origin_refused")
        assert (await http.get(f"/api/documents/{doc_id}", headers=CAROL)).status_code == 404
        # A hook that raises, or hangs past COLLAB_HOOK_TIMEOUT, refuses with 503
        # and breaks nothing else.
        boom = await http.get("/api/documents", headers={"Cookie": "session=boom:rw"})
        assert boom.status_code == 503
        assert boom.json()["error"] == "auth_unavailable"
        assert (await http.get("/api/documents", headers=CAROL)).status_code == 200
    assert "hook authenticate raised RuntimeError" in host.log()


async def test_slow_sign_in_is_bounded(database_url: str, doc_id: str) -> None:
    server = HostServer(database_url, {"COLLAB_HOOK_TIMEOUT": "0.5"}).start()
    try:
        async with httpx.AsyncClient(base_url=server.collab_url, timeout=10) as http:
            slow = await http.get("/api/documents", headers={"Cookie": "session=slow:rw"})
            assert slow.status_code == 503
            assert (await http.get("/api/documents", headers=CAROL)).status_code == 200
        assert "hook authenticate ran past 0.5 s" in server.log()
    finally:
        server.stop()


async def test_stock_client_edits_through_the_mount(
    host: HostServer, doc_id: str, events_path: Path
) -> None:
    async with JsClient(host.ws_base, doc_id, "carol:rw") as carol:
        await carol.wait_synced()
        await carol.command("insert", text="typed through the mount")
        await eventually(lambda: bool(events(events_path, "on_store")), what="on_store")
        # A read-only grant's client gets the document; what it sends changes nothing.
        async with JsClient(host.ws_base, doc_id, "dave:ro") as dave:
            await dave.wait_synced()
            assert await dave.text() == "typed through the mount"
            await dave.command("insert", text="NOT ALLOWED ")
            await asyncio.sleep(0.5)
            assert await carol.text() == "typed through the mount"
        # No sign-in: refused before the socket opens.
        async with JsClient(host.ws_base, doc_id) as stranger:
            await eventually(
                lambda: any(e["event"] == "close" for e in stranger.events), what="refusal"
            )
            assert not any(e["event"] == "synced" and e["synced"] for e in stranger.events)
    await eventually(lambda: len(events(events_path, "on_disconnect")) >= 2, what="disconnects")
    connects = events(events_path, "on_connect")
    assert {(e["user"], e["read_only"]) for e in connects} == {("carol", False), ("dave", True)}
    changes = events(events_path, "on_change")
    assert changes
    assert changes[0]["doc_id"] == doc_id
    assert "carol" in changes[0]["origins"]
    assert all("dave" not in e["origins"] for e in changes)
    assert [e["doc_id"] for e in events(events_path, "on_load")] == [doc_id]
    # It was stored: it outlives the host process.
    host.stop()
    host.start()
    async with JsClient(host.ws_base, doc_id, "carol:rw") as again:
        await again.wait_synced()
        assert await again.text() == "typed through the mount"


async def test_server_side_edit_reaches_live_peers_and_the_store(
    host: HostServer, doc_id: str, events_path: Path
) -> None:
    # The room is not open: the edit opens it, and it is stored.
    async with httpx.AsyncClient(base_url=host.url) as http:
        added = await http.post(f"/host/notes/{doc_id}", content="first note")
        assert added.json() == {"blocks": 1}
    async with YClient(f"{host.ws_base}/{doc_id}?token=carol:rw") as peer:
        assert paragraphs(peer.doc.get_update()) == ["<paragraph>first note</paragraph>"]
        # With a peer live, the edit reaches it as it happens.
        async with httpx.AsyncClient(base_url=host.url) as http:
            await http.post(f"/host/notes/{doc_id}", content="second note")
        await eventually(lambda: len(paragraphs(peer.doc.get_update())) == 2, what="the live edit")
    await eventually(
        lambda: any("host-notes" in e["origins"] for e in events(events_path, "on_change")),
        what="on_change naming the edit's origin",
    )
    host.stop()
    host.start()
    async with httpx.AsyncClient(base_url=host.collab_url, headers=CAROL) as http:
        state = (await http.get(f"/api/documents/{doc_id}/update")).content
    assert paragraphs(state) == [
        "<paragraph>first note</paragraph>",
        "<paragraph>second note</paragraph>",
    ]


@pytest.mark.parametrize("misbehaving", ["raise", "hang"])
async def test_failing_change_hooks_break_nothing(
    database_url: str, events_path: Path, misbehaving: str
) -> None:
    server = HostServer(
        database_url, {"HOST_EVENTS": str(events_path), "COLLAB_HOOK_TIMEOUT": "0.5"}
    ).start()
    doc_id = f"{misbehaving}-doc"
    try:
        async with JsClient(server.ws_base, doc_id, "carol:rw") as carol:
            await carol.wait_synced()
            for word in ("one ", "two ", "three "):
                await carol.command("insert", text=word)
                await eventually(lambda: bool(events(events_path, "on_change")), what="on_change")
            async with JsClient(server.ws_base, doc_id, "carol:rw") as other:
                await other.wait_synced()
                assert sorted((await other.text()).split()) == ["one", "three", "two"]
        expected = "raised RuntimeError" if misbehaving == "raise" else "ran past 0.5 s"
        wait_until(lambda: f"hook on_change {expected}" in server.log(), what="the hook's log")
        wait_until(lambda: f"hook on_store {expected}" in server.log(), what="the hook's log")
    finally:
        server.stop()  # the host is uvicorn itself: its exit status is its own
    # Every edit was stored, whatever the hooks did.
    again = HostServer(database_url).start()
    try:
        async with JsClient(again.ws_base, doc_id, "carol:rw") as reader:
            await reader.wait_synced()
            assert sorted((await reader.text()).split()) == ["one", "three", "two"]
    finally:
        again.stop()


async def test_a_mount_without_its_lifespan_refuses_everything(
    database_url: str, doc_id: str
) -> None:
    server = HostServer(database_url, app="forgetful").start()
    try:
        async with httpx.AsyncClient(base_url=server.collab_url) as http:
            for method, path in [
                ("GET", "/readyz"),
                ("GET", "/api/documents"),
                ("POST", f"/api/documents/{doc_id}/update"),
            ]:
                answer = await http.request(method, path)
                assert answer.status_code == 503, (path, answer.text)
                assert answer.json()["error"] == "not_started"
        async with JsClient(server.ws_base, doc_id) as client:
            await eventually(
                lambda: any(e["event"] == "close" and e["code"] == 1011 for e in client.events),
                what="close 1011",
            )
            await client.command("insert", text="lost?")
        assert "lifespan=collab.lifespan" in server.log()
    finally:
        server.stop()
    # Nothing was accepted, so nothing was lost: the document does not exist.
    proper = HostServer(database_url).start()
    try:
        async with httpx.AsyncClient(base_url=proper.collab_url, headers=CAROL) as http:
            assert (await http.get(f"/api/documents/{doc_id}")).status_code == 404
    finally:
        proper.stop()


async def test_server_side_edit_on_another_process(
    cluster: Cluster, doc_id: str, events_path: Path
) -> None:
    """With Redis, a host process edits a document whose peers are on another
    process: they see it live, and it is stored once. The host's on_change reports
    the changes it accepted, not those relayed from the other process."""
    node = cluster.start()
    settings = {**SCALEOUT_SETTINGS, "redis_url": cluster.redis.url}
    host = HostServer(
        cluster.database_url,
        {f"COLLAB_{k.upper()}": v for k, v in settings.items()} | {"HOST_EVENTS": str(events_path)},
    ).start()
    try:
        async with (
            YClient(node.ws_url(doc_id)) as peer,
            httpx.AsyncClient(base_url=host.url, headers=CAROL) as http,
        ):
            added = await http.post(f"/host/notes/{doc_id}", content="from the host")
            assert added.status_code == 200, added.text
            await eventually(
                lambda: (
                    paragraphs(peer.doc.get_update()) == ["<paragraph>from the host</paragraph>"]
                ),
                what="the host's edit on the other process",
            )
            # The peer's edit reaches the host's room through Redis...
            peer.append("from the peer")

            async def host_has_it() -> bool:
                state = (await http.get(f"/collab/api/documents/{doc_id}/update")).content
                doc: Doc[Any] = Doc()
                doc.apply_update(state)
                return "from the peer" in str(doc.get("text", type=Text))

            await eventually(host_has_it, what="the peer's edit on the host")
            await http.post(f"/host/notes/{doc_id}", content="again")
            await eventually(
                lambda: sum(e["updates"] for e in events(events_path, "on_change")) >= 2,
                what="the host's on_change",
            )
        # ...but only the host's own edits are its changes to report.
        assert {o for e in events(events_path, "on_change") for o in e["origins"]} == {"host-notes"}
    finally:
        host.stop()
    node.stop()
    again = cluster.start()
    async with YClient(again.ws_url(doc_id)) as reader:
        assert paragraphs(reader.doc.get_update()) == [
            "<paragraph>from the host</paragraph>",
            "<paragraph>again</paragraph>",
        ]


async def test_collab_serve_installs_hooks_from_a_module(
    sqlite_url: str, doc_id: str, events_path: Path
) -> None:
    server = CollabServer(sqlite_url, {"HOST_EVENTS": str(events_path)})
    server.args = ["--hooks", "tests.hostapp:hooks"]
    server.start()
    try:
        async with JsClient(server.ws_base, doc_id, "carol:rw") as carol:
            await carol.wait_synced()
        await eventually(lambda: bool(events(events_path, "on_connect")), what="on_connect")
        assert events(events_path, "on_connect")[0]["user"] == "carol"
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("spec", "complaint"),
    [
        ("tests.hostapp", "is not MODULE:NAME"),
        ("no_such_module:hooks", "cannot import 'no_such_module'"),
        ("tests.hostapp:app", "is FastAPI, not a collab.Hooks"),
        ("tests.hostapp:nothing", "is NoneType, not a collab.Hooks"),
    ],
)
def test_collab_serve_refuses_bad_hooks(sqlite_url: str, spec: str, complaint: str) -> None:
    served = subprocess.run(
        [str(BIN / "collab"), "serve", "--port", str(free_port()), "--hooks", spec],
        env={**os.environ, "COLLAB_DATABASE_URL": sqlite_url},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert served.returncode == 2
    assert complaint in served.stderr
    assert "Traceback" not in served.stderr
