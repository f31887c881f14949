"""Share links and token renewal (collab/tokens.py, collab/web/sharing.py) against a
real server: what a link grants, what renewal keeps, and every hostile request
refused with a clear error, one log line and nothing signed."""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from collab.web.openapi import SPEC

from .support import CollabServer, migrate
from .test_auth import SECRET, token
from .test_openapi import Checked, _closed

MAX_TTL = 3600
MAX_LIFETIME = 7200
SHARE = "/api/documents/{doc_id}/share"


@pytest.fixture(scope="module")
def signer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CollabServer]:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('share') / 'collab.db'}"
    migrate(url)
    server = CollabServer(
        url,
        {
            "COLLAB_AUTH_SECRET": SECRET,
            "COLLAB_SHARE_MAX_TTL": str(MAX_TTL),
            "COLLAB_TOKEN_MAX_LIFETIME": str(MAX_LIFETIME),
        },
    ).start()
    yield server
    server.stop()


def _bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def _claims(value: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(value, SECRET, algorithms=["HS256"])
    return claims


async def _create(http: httpx.AsyncClient, doc_id: str, text: str = "Shared words") -> None:
    owner = _bearer(token(docs=[doc_id]))
    assert (
        await http.post("/api/documents", json={"id": doc_id}, headers=owner)
    ).status_code == 201
    body = {"format": "text", "content": text}
    put = await http.put(f"/api/documents/{doc_id}/content", json=body, headers=owner)
    assert put.status_code == 200, put.text


async def test_a_read_only_link_reads_that_document_alone(signer: CollabServer) -> None:
    async with httpx.AsyncClient(base_url=signer.url) as http:
        await _create(http, "share-ro")
        await _create(http, "share-other")
        call = Checked(http, _closed(copy.deepcopy(SPEC)))
        owner = _bearer(token(sub="olive", docs=["share-*"]))
        answer = await call(
            "POST", SHARE, 201, path="/api/documents/share-ro/share",
            json={"mode": "ro", "ttl": 600}, headers=owner,
        )  # fmt: skip
        link = answer.json()
        assert link["mode"] == "ro"
        assert link["url"] == f"{signer.url}/d/share-ro?token={link['token']}"
        claims = _claims(link["token"])
        assert claims["docs"] == ["share-ro"]
        assert claims["mode"] == "ro"
        assert claims["anonymous"] is True
        assert claims["exp"] == link["expires_at"]
        assert 590 <= link["expires_at"] - time.time() <= 601

        guest = _bearer(link["token"])
        text = await http.get("/api/documents/share-ro/text", headers=guest)
        assert text.status_code == 200
        assert "Shared words" in text.text
        session = (await http.get("/api/session?doc=share-ro", headers=guest)).json()
        assert session["anonymous"] is True
        assert session["mode"] == "ro"
        body = {"format": "text", "content": "defaced"}
        put = await http.put("/api/documents/share-ro/content", json=body, headers=guest)
        assert put.status_code == 403
        other = await http.get("/api/documents/share-other/text", headers=guest)
        assert other.status_code == 403
        assert "defaced" not in (await http.get("/api/documents/share-ro/text", headers=guest)).text


async def test_a_read_write_link_writes_and_ends_with_the_sharers_access(
    signer: CollabServer,
) -> None:
    async with httpx.AsyncClient(base_url=signer.url) as http:
        await _create(http, "share-rw")
        own = token(sub="olive", docs=["share-rw"], ttl=120)
        answer = await http.post(
            "/api/documents/share-rw/share", json={"mode": "rw"}, headers=_bearer(own)
        )
        assert answer.status_code == 201, answer.text
        link = answer.json()
        # No ttl: the longest allowed, cut at the sharer's own expiry.
        assert link["expires_at"] <= _claims(own)["exp"]
        guest = _bearer(link["token"])
        body = {"format": "text", "content": "from the guest", "mode": "append"}
        put = await http.put("/api/documents/share-rw/content", json=body, headers=guest)
        assert put.status_code == 200, put.text
        text = await http.get("/api/documents/share-rw/text", headers=guest)
        assert "from the guest" in text.text


HOSTILE: list[tuple[str, dict[str, str], Any, int, str]] = [
    ("no token", {}, {"mode": "ro"}, 401, "unauthorized"),
    ("a read-only caller", _bearer(token(mode="ro")), {"mode": "ro"}, 403, "read_only"),
    (
        "a token for another doc",
        _bearer(token(docs=["elsewhere"])),
        {"mode": "ro"},
        403,
        "forbidden",
    ),
    ("an expired token", _bearer(token(ttl=-60)), {"mode": "ro"}, 401, "unauthorized"),
    ("a badly signed token", _bearer(token(secret="x" * 40)), {"mode": "ro"}, 401, "unauthorized"),
    ("mode admin", _bearer(token()), {"mode": "admin"}, 400, "bad_mode"),
    ("mode a number", _bearer(token()), {"mode": 1}, 400, "bad_mode"),
    ("mode a list", _bearer(token()), {"mode": ["rw"]}, 400, "bad_mode"),
    ("ttl a string", _bearer(token()), {"mode": "ro", "ttl": "60"}, 400, "bad_ttl"),
    ("ttl true", _bearer(token()), {"mode": "ro", "ttl": True}, 400, "bad_ttl"),
    ("ttl zero", _bearer(token()), {"mode": "ro", "ttl": 0}, 400, "bad_ttl"),
    ("ttl negative", _bearer(token()), {"mode": "ro", "ttl": -5}, 400, "bad_ttl"),
    ("ttl past the maximum", _bearer(token()), {"mode": "ro", "ttl": MAX_TTL + 1}, 400, "bad_ttl"),
    ("ttl huge", _bearer(token()), {"mode": "ro", "ttl": 10**400}, 400, "bad_ttl"),
    ("ttl an object", _bearer(token()), {"mode": "ro", "ttl": {"s": 1}}, 400, "bad_ttl"),
    ("a list body", _bearer(token()), ["ro"], 400, "bad_json"),
    (
        "deep nesting",
        _bearer(token()),
        '{"mode": ' + "[" * 30_000 + "]" * 30_000 + "}",
        400,
        "bad_json",
    ),
    ("a huge body", _bearer(token()), '{"mode": "' + "r" * 100_000 + '"}', 413, "too_large"),
    ("garbage", _bearer(token()), "\x00{not json", 400, "bad_json"),
    ("truncated", _bearer(token()), '{"mode": "r', 400, "bad_json"),
]


@pytest.mark.parametrize(
    ("case", "headers", "body", "status", "error"), HOSTILE, ids=[h[0] for h in HOSTILE]
)
async def test_hostile_share_requests_are_refused(
    signer: CollabServer,
    case: str,
    headers: dict[str, str],
    body: Any,
    status: int,
    error: str,
) -> None:
    async with httpx.AsyncClient(base_url=signer.url) as http:
        path = "/api/documents/share-hostile/share"
        before = signer.log().count("shared 'share-hostile'")
        refusals = signer.log().count(f"refused POST {path}")
        if isinstance(body, str):
            sent = await http.post(
                path, content=body, headers={**headers, "Content-Type": "application/json"}
            )
        else:
            sent = await http.post(path, json=body, headers=headers)
        assert sent.status_code == status, (case, sent.text)
        assert sent.json()["error"] == error
        assert "token" not in sent.json()
        log = signer.log()
        assert log.count(f"refused POST {path}") == refusals + 1, case
        assert log.count("shared 'share-hostile'") == before
        assert (await http.get("/healthz")).status_code == 200


async def test_the_cookie_from_another_site_shares_nothing(signer: CollabServer) -> None:
    async with httpx.AsyncClient(base_url=signer.url) as http:
        http.cookies.set("collab_token", token())
        path = "/api/documents/share-cookie/share"
        for headers in ({"Origin": "http://evil.example"}, {}):
            sent = await http.post(path, json={"mode": "rw"}, headers=headers)
            assert sent.status_code == 403, sent.text
            assert sent.json()["error"] == "origin_refused"
        own = {"Origin": signer.url}
        assert (await http.post(path, json={"mode": "rw"}, headers=own)).status_code == 201
        assert signer.log().count("shared 'share-cookie'") == 1


async def test_renewal_keeps_the_claims_and_stops_at_the_maximum_lifetime(
    signer: CollabServer,
) -> None:
    async with httpx.AsyncClient(base_url=signer.url) as http:
        now = int(time.time())
        old = token(sub="rhea", docs=["a-*"], mode="ro", ttl=30, name="Rhea", iat=now - 10)
        answer = await http.post("/api/token/renew", headers=_bearer(old))
        assert answer.status_code == 200, answer.text
        renewed = _claims(answer.json()["token"])
        assert {k: renewed[k] for k in ("sub", "docs", "mode", "name")} == {
            "sub": "rhea", "docs": ["a-*"], "mode": "ro", "name": "Rhea",
        }  # fmt: skip
        assert renewed["auth_time"] == now - 10
        # As long a lifetime as the old one had (40 s), from now.
        assert now + 35 <= renewed["exp"] == answer.json()["expires_at"] <= now + 42
        assert renewed["exp"] > _claims(old)["exp"]

        # A chain renewed near its maximum lifetime ends at it, and then stops.
        first = now - MAX_LIFETIME + 20
        late = token(ttl=30, iat=now - 5, auth_time=first)
        answer = await http.post("/api/token/renew", headers=_bearer(late))
        assert answer.status_code == 200, answer.text
        assert answer.json()["expires_at"] <= first + MAX_LIFETIME
        over = token(ttl=30, iat=now - 5, auth_time=now - MAX_LIFETIME - 1)
        refused = await http.post("/api/token/renew", headers=_bearer(over))
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"] == "renewal_refused"


async def test_a_share_link_is_never_renewed_past_its_end(signer: CollabServer) -> None:
    async with httpx.AsyncClient(base_url=signer.url) as http:
        await _create(http, "share-end")
        own = token(sub="olive", docs=["share-end"], ttl=600)
        made = await http.post(
            "/api/documents/share-end/share", json={"mode": "ro", "ttl": 60}, headers=_bearer(own)
        )
        assert made.status_code == 201, made.text
        link = made.json()
        renewed = await http.post("/api/token/renew", headers=_bearer(link["token"]))
        assert renewed.status_code == 200, renewed.text
        assert renewed.json()["expires_at"] <= link["expires_at"]
        # Renewing the renewed one gets no further either.
        again = await http.post("/api/token/renew", headers=_bearer(renewed.json()["token"]))
        assert again.status_code == 200, again.text
        assert again.json()["expires_at"] <= link["expires_at"]
        # A link at its end renews no more.
        ending = token(
            sub="link:olive", docs=["share-end"], ttl=30, iat=int(time.time()) - 30,
            renew_until=int(time.time()) + 1,
        )  # fmt: skip
        refused = await http.post("/api/token/renew", headers=_bearer(ending))
        assert refused.status_code == 403, refused.text


async def test_with_a_host_refresh_url_collab_renews_nothing(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'collab.db'}"
    migrate(url)
    server = CollabServer(
        url, {"COLLAB_AUTH_SECRET": SECRET, "COLLAB_TOKEN_REFRESH_URL": "/auth/token"}
    ).start()
    try:
        async with httpx.AsyncClient(base_url=server.url) as http:
            refused = await http.post("/api/token/renew", headers=_bearer(token()))
            assert refused.status_code == 409
            assert refused.json()["error"] == "renewed_elsewhere"
            me = await http.get("/api/session", headers=_bearer(token()))
            assert me.json()["refresh_url"] == "/auth/token"
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("case", "headers", "status"),
    [
        ("no token", {}, 401),
        ("expired", _bearer(token(ttl=-60)), 401),
        ("badly signed", _bearer(token(secret="y" * 40)), 401),
        ("garbage", _bearer("not.a.jwt"), 401),
        ("foreign origin", {**_bearer(token()), "Origin": "http://evil.example"}, 403),
    ],
)
async def test_hostile_renewals_are_refused(
    signer: CollabServer, case: str, headers: dict[str, str], status: int
) -> None:
    async with httpx.AsyncClient(base_url=signer.url) as http:
        renewed = signer.log().count("renewed the token")
        sent = await http.post("/api/token/renew", headers=headers)
        assert sent.status_code == status, (case, sent.text)
        assert "token" not in sent.json()
        assert signer.log().count("renewed the token") == renewed


async def test_a_server_without_a_secret_signs_nothing(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'collab.db'}"
    migrate(url)
    server = CollabServer(url).start()
    try:
        async with httpx.AsyncClient(base_url=server.url) as http:
            await http.post("/api/documents", json={"id": "open"})
            shared = await http.post("/api/documents/open/share", json={"mode": "ro"})
            assert shared.status_code == 409
            assert shared.json()["error"] == "no_secret"
            assert "COLLAB_AUTH_SECRET" in shared.json()["detail"]
            assert (await http.post("/api/token/renew")).status_code == 409
    finally:
        server.stop()
