"""Access control: tokens checked before the WebSocket is accepted, scopes, read-only
peers, expiry, origins and abuse limits, with real servers and real clients."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time

import httpx
import jwt
import pytest
from hypothesis import given
from hypothesis import strategies as st
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from collab import auth
from collab.closecodes import CloseCode

from .conftest import ServerFactory
from .jsclient import JsClient
from .support import BIN, CollabServer, eventually
from .yclient import YClient

SECRET = "test-secret-that-is-long-enough-for-hs256"


def token(
    sub: str = "alice",
    docs: list[str] | None = None,
    mode: str = "rw",
    ttl: float = 600,
    secret: str = SECRET,
    **extra: object,
) -> str:
    claims = {"sub": sub, "docs": docs or ["*"], "mode": mode, "exp": int(time.time() + ttl)}
    return jwt.encode({**claims, **extra}, secret, algorithm="HS256")


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> CollabServer:
    from .support import migrate

    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('auth') / 'collab.db'}"
    migrate(url)
    server = CollabServer(
        url, {"COLLAB_AUTH_SECRET": SECRET, "COLLAB_MAX_CONNECTIONS_PER_CLIENT": "40"}
    ).start()
    yield server  # type: ignore[misc]
    server.stop()


async def _refused(url: str, headers: dict[str, str] | None = None) -> int:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url, additional_headers=headers) as ws:
            await ws.recv()  # would be document data; must never come
    return refused.value.response.status_code


@pytest.mark.parametrize(
    ("credential", "status"),
    [
        (None, 401),
        ("garbage", 401),
        (token(secret="another-secret-that-is-also-long-enough"), 401),
        (token(ttl=-60), 401),
        (token(docs=["team-*"]), 403),
        (jwt.encode({"sub": "x", "exp": int(time.time()) + 60}, SECRET), 401),  # no docs/mode
    ],
    ids=["missing", "garbage", "bad-signature", "expired", "other-docs", "missing-claims"],
)
async def test_refusals_before_accept(
    secured: CollabServer, doc_id: str, credential: str | None, status: int
) -> None:
    async with YClient(secured.ws_url(doc_id) + f"?token={token()}") as owner:
        owner.append("secret content")
    url = secured.ws_url(doc_id) + (f"?token={credential}" if credential else "")
    assert await _refused(url) == status


async def test_token_in_header_or_cookie(secured: CollabServer, doc_id: str) -> None:
    for headers in ({"Authorization": f"Bearer {token()}"}, {"Cookie": f"collab_token={token()}"}):
        client = YClient(secured.ws_url(doc_id))
        await client.connect(additional_headers=headers)
        await asyncio.wait_for(client.synced.wait(), 10)
        await client.close()


async def test_stock_js_client_without_a_token_gets_nothing(
    secured: CollabServer, doc_id: str
) -> None:
    async with YClient(secured.ws_url(doc_id) + f"?token={token()}") as owner:
        owner.append("for the eyes of token holders")
        async with JsClient(secured.ws_base, doc_id) as intruder:
            await eventually(
                lambda: sum(e["event"] == "close" for e in intruder.events) >= 2, 15, "retries"
            )
            state = await intruder.refresh()
            assert state["text"] == ""
            assert not state["synced"]
        async with JsClient(secured.ws_base, doc_id, token(docs=[doc_id])) as member:
            await member.wait_synced()
            assert await member.text() == "for the eyes of token holders"


async def test_read_only_peer_reads_but_cannot_write(secured: CollabServer, doc_id: str) -> None:
    rw = secured.ws_url(doc_id) + f"?token={token()}"
    ro = secured.ws_url(doc_id) + f"?token={token(sub='reader', mode='ro')}"
    async with YClient(rw) as writer, YClient(ro) as reader:
        writer.append("original")
        await eventually(lambda: reader.content() == "original")
        reader.set_presence({"user": {"name": "reader"}})  # presence is allowed
        await eventually(lambda: reader.client_id in writer.awareness)
        reader.append(" vandalised")  # its own copy changes; the document must not
        await eventually(lambda: reader.denied == ["read-only"], what="permission denied")
        writer.append(" and more")
        await eventually(lambda: " and more" in reader.content())  # live updates still arrive
        async with YClient(rw) as fresh:
            assert fresh.content() == "original and more"
        assert writer.content() == "original and more"
    assert "tried to change" in secured.log()


async def test_expiry_closes_a_connected_peer(secured: CollabServer, doc_id: str) -> None:
    client = YClient(secured.ws_url(doc_id) + f"?token={token(ttl=1.5)}")
    await client.connect()
    await asyncio.wait_for(client.synced.wait(), 10)
    await client.wait_closed(timeout=15)  # the leeway is 5 s; the close is at exp
    assert client.close_code == CloseCode.UNAUTHORIZED


async def test_cross_origin_upgrade_is_refused(secured: CollabServer, doc_id: str) -> None:
    url = secured.ws_url(doc_id) + f"?token={token()}"
    assert await _refused(url, {"Origin": "http://evil.example"}) == 403
    same = YClient(url)
    await same.connect(origin=f"http://127.0.0.1:{secured.port}")  # type: ignore[arg-type]
    await asyncio.wait_for(same.synced.wait(), 10)
    await same.close()


async def test_allowed_origins_extend_the_servers_own(
    start_server: ServerFactory, doc_id: str
) -> None:
    server = start_server(
        auth_secret=SECRET, allowed_origins="https://App.example:443,http://localhost:5173"
    )
    url = server.ws_url(doc_id) + f"?token={token()}"
    for origin in (
        f"http://127.0.0.1:{server.port}",  # the bundled editor's own
        "https://app.example",
        "http://localhost:5173",
    ):
        peer = YClient(url)
        await peer.connect(origin=origin)  # type: ignore[arg-type]
        await asyncio.wait_for(peer.synced.wait(), 10)
        peer.append(origin)
        await peer.close()
    for origin in ("http://evil.example", "https://app.example:8443", "http://app.example"):
        assert await _refused(url, {"Origin": origin}) == 403, origin
    async with YClient(url) as reader:
        assert reader.content() == (
            f"http://127.0.0.1:{server.port}https://app.examplehttp://localhost:5173"
        )


async def test_connections_per_client_are_limited(start_server: ServerFactory, doc_id: str) -> None:
    server = start_server(max_connections_per_client="3")
    opened = [YClient(server.ws_url(doc_id)) for _ in range(3)]
    for client in opened:
        await client.connect()
    assert await _refused(server.ws_url(doc_id)) == 429
    await opened[0].close()
    await eventually(lambda: "close doc" in server.log())
    extra = YClient(server.ws_url(doc_id))
    await extra.connect()
    await asyncio.wait_for(extra.synced.wait(), 10)
    for client in [*opened[1:], extra]:
        await client.close()


@pytest.mark.parametrize("trusted", [True, False])
async def test_a_trusted_proxy_names_the_client(
    sqlite_url: str, doc_id: str, trusted: bool
) -> None:
    # uvicorn's FORWARDED_ALLOW_IPS (default 127.0.0.1): from a trusted proxy the
    # client is the one X-Forwarded-For names, for the per-client limit and the logs;
    # from anyone else the header is ignored.
    env = {"COLLAB_MAX_CONNECTIONS_PER_CLIENT": "1"}
    if not trusted:
        env["FORWARDED_ALLOW_IPS"] = "192.0.2.1"
    server = CollabServer(sqlite_url, env).start()
    try:
        first = {"X-Forwarded-For": "203.0.113.7"}
        async with connect(server.ws_url(doc_id), additional_headers=first) as ws:
            await ws.recv()
            other = {"X-Forwarded-For": "203.0.113.8"}
            if trusted:
                async with connect(server.ws_url(doc_id), additional_headers=other) as two:
                    await two.recv()
                assert await _refused(server.ws_url(doc_id), first) == 429
                await eventually(lambda: "client=203.0.113.8:0" in server.log())
                assert "client=203.0.113.7:0" in server.log()
            else:
                assert await _refused(server.ws_url(doc_id), other) == 429
                assert "203.0.113" not in server.log()
    finally:
        server.stop()


async def test_api_needs_tokens(secured: CollabServer) -> None:
    async with httpx.AsyncClient(base_url=secured.url) as http:
        assert (await http.get("/api/documents")).status_code == 401
        rw = {"Authorization": f"Bearer {token(docs=['team-*'])}"}
        ro = {"Authorization": f"Bearer {token(docs=['team-*'], mode='ro')}"}
        created = await http.post("/api/documents", json={"id": "team-a"}, headers=rw)
        assert created.status_code == 201
        assert (
            await http.post("/api/documents", json={"id": "other"}, headers=rw)
        ).status_code == 403
        refused = await http.post("/api/documents", json={"id": "team-b"}, headers=ro)
        assert refused.status_code == 403
        assert refused.json()["error"] == "read_only"
        assert (await http.get("/api/documents/team-a", headers=ro)).status_code == 200
        assert (await http.delete("/api/documents/team-a", headers=ro)).status_code == 403
        listed = (await http.get("/api/documents", headers=ro)).json()["documents"]
        assert {d["id"] for d in listed} == {"team-a"}
        assert (await http.get("/api/stats", headers=ro)).status_code == 403
        assert (await http.get("/healthz")).status_code == 200


def test_collab_token_is_accepted_by_the_verifier() -> None:
    printed = subprocess.run(
        [str(BIN / "collab"), "token", "--sub", "bob", "--doc", "team-*", "--read-only"],
        env={**os.environ, "COLLAB_AUTH_SECRET": SECRET},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    grant = auth.TokenVerifier(SECRET).verify(printed)
    assert grant.sub == "bob"
    assert grant.covers("team-x")
    assert not grant.covers("other")
    assert not grant.can_write


DOC_ID_CHARS = st.characters(codec="ascii", categories=["L", "N"], include_characters="._~-")
doc_ids = st.text(DOC_ID_CHARS, min_size=1, max_size=40)


@given(doc_ids, doc_ids)
def test_scope_patterns(doc_id: str, other: str) -> None:
    def grant(*patterns: str) -> auth.Grant:
        return auth.Grant("u", patterns, auth.Mode.READ_WRITE, None)

    assert grant("*").covers(doc_id)
    assert grant(doc_id).covers(doc_id)
    assert grant(doc_id).covers(other) == (doc_id == other)
    assert grant(doc_id[:1] + "*").covers(doc_id)
    assert grant(doc_id + "*").covers(doc_id + other)
    assert not grant().covers(doc_id)
    assert grant("nothing-matches", doc_id).covers(doc_id)
