"""Cross-site requests: a page of another site cannot make a browser change documents
with the cookie it holds, and a request from another origin changes nothing."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from .conftest import ServerFactory
from .support import CollabServer, eventually, migrate
from .test_auth import SECRET, token
from .yclient import YClient

EVIL = "http://evil.example"


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CollabServer]:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('csrf') / 'collab.db'}"
    migrate(url)
    server = CollabServer(url, {"COLLAB_AUTH_SECRET": SECRET}).start()
    yield server
    server.stop()


def _cookie() -> dict[str, str]:
    return {"Cookie": f"collab_token={token()}"}


def _bearer() -> dict[str, str]:
    return {"Authorization": f"Bearer {token()}"}


def _same_origin(server: CollabServer) -> str:
    return f"http://127.0.0.1:{server.port}"


async def _exists(http: httpx.AsyncClient, doc_id: str) -> bool:
    response = await http.get(f"/api/documents/{doc_id}", headers=_bearer())
    assert response.status_code in (200, 404)
    return response.status_code == 200


async def test_cross_site_cookie_requests_change_nothing(
    secured: CollabServer, doc_id: str
) -> None:
    async with YClient(secured.ws_url(doc_id) + f"?token={token()}") as owner:
        owner.append("untouched")
    async with httpx.AsyncClient(base_url=secured.url) as http:
        await eventually(lambda: _exists(http, doc_id), what="the document to be written")
        # What a form or a no-cors fetch on another site sends: text/plain, the cookie.
        forged = {**_cookie(), "Origin": EVIL, "Content-Type": "text/plain"}
        for path, body in [
            ("/api/documents", b'{"id": "planted"}'),
            (f"/api/documents/{doc_id}/update", b"\x00\x00"),
            (f"/api/documents/{doc_id}/versions", b'{"label": "x"}'),
        ]:
            refused = await http.post(path, content=body, headers=forged)
            assert refused.status_code == 403, path
            assert refused.json()["error"] == "origin_refused"
        deleted = await http.delete(
            f"/api/documents/{doc_id}", headers={**_cookie(), "Origin": EVIL}
        )
        assert deleted.status_code == 403
        # Same host, but text/plain with the cookie, or no Origin at all: refused too.
        plain = {**_cookie(), "Origin": _same_origin(secured), "Content-Type": "text/plain"}
        wrong_type = await http.post("/api/documents", content=b'{"id": "planted"}', headers=plain)
        assert wrong_type.status_code == 415
        assert wrong_type.json()["error"] == "unsupported_media_type"
        no_origin = await http.post("/api/documents", json={"id": "planted"}, headers=_cookie())
        assert no_origin.status_code == 403
        assert not await _exists(http, "planted")
        assert await _exists(http, doc_id)
        versions = await http.get(f"/api/documents/{doc_id}/versions", headers=_bearer())
        assert versions.json()["versions"] == []
    async with YClient(secured.ws_url(doc_id) + f"?token={token()}") as reader:
        assert reader.content() == "untouched"
    assert "refused POST /api/documents from" in secured.log()


async def test_a_foreign_origin_is_refused_whatever_the_credential(
    secured: CollabServer, doc_id: str
) -> None:
    async with httpx.AsyncClient(base_url=secured.url) as http:
        for credential in (_bearer(), {}):
            refused = await http.post(
                "/api/documents", json={"id": doc_id}, headers={**credential, "Origin": EVIL}
            )
            assert refused.status_code == 403
            assert refused.json()["error"] == "origin_refused"
        refused = await http.post(
            "/api/documents",
            params={"token": token()},
            json={"id": doc_id},
            headers={"Origin": EVIL},
        )
        assert refused.status_code == 403
        assert not await _exists(http, doc_id)


async def test_same_origin_json_and_scripts_are_accepted(
    secured: CollabServer, doc_id: str
) -> None:
    async with httpx.AsyncClient(base_url=secured.url) as http:
        page = {**_cookie(), "Origin": _same_origin(secured)}
        created = await http.post("/api/documents", json={"id": doc_id}, headers=page)
        assert created.status_code == 201
        labelled = await http.post(
            f"/api/documents/{doc_id}/versions", json={"label": "v1"}, headers=page
        )
        assert labelled.status_code == 201
        imported = await http.post(
            f"/api/documents/{doc_id}/update",
            content=b"\x00\x00",
            headers={**page, "Content-Type": "application/octet-stream"},
        )
        assert imported.status_code == 200
        # A script with a bearer token and no Origin; a body without a type is the route's.
        script = await http.post(
            "/api/documents", content=b'{"id": "%s-2"}' % doc_id.encode(), headers=_bearer()
        )
        assert script.status_code == 201
        # Whatever the credential, a body of another type than the route takes is 415.
        mistyped = await http.post(
            f"/api/documents/{doc_id}/update",
            json={"not": "an update"},
            headers=_bearer(),
        )
        assert mistyped.status_code == 415
        assert (await http.delete(f"/api/documents/{doc_id}", headers=page)).status_code == 204


async def test_allowed_origins_extend_the_servers_own(
    start_server: ServerFactory, doc_id: str
) -> None:
    server = start_server(auth_secret=SECRET, allowed_origins="https://app.example")
    async with httpx.AsyncClient(base_url=server.url) as http:
        for n, origin in enumerate(("https://app.example", _same_origin(server))):
            created = await http.post(
                "/api/documents",
                json={"id": f"{doc_id}-{n}"},
                headers={**_cookie(), "Origin": origin},
            )
            assert created.status_code == 201, origin
        for origin in (EVIL, "https://app.example.evil.example", "http://app.example"):
            refused = await http.post(
                "/api/documents",
                json={"id": f"{doc_id}-x"},
                headers={**_cookie(), "Origin": origin},
            )
            assert refused.status_code == 403, origin
            assert refused.json()["error"] == "origin_refused"
        assert await _exists(http, f"{doc_id}-0")
        assert await _exists(http, f"{doc_id}-1")
        assert not await _exists(http, f"{doc_id}-x")
