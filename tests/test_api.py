"""The documents API, on SQLite and PostgreSQL."""

from __future__ import annotations

import httpx
import pytest
from pycrdt import Doc, Map, Text
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from collab.closecodes import CloseCode

from .conftest import ServerFactory
from .support import CollabServer, eventually
from .yclient import YClient


@pytest.fixture
def api_server(start_server: ServerFactory, database_url: str) -> CollabServer:
    return start_server(database_url)


async def test_create_list_get(api_server: CollabServer) -> None:
    async with httpx.AsyncClient(base_url=api_server.url) as http:
        created = await http.post("/api/documents", json={"id": "notes"})
        assert created.status_code == 201
        assert created.json()["id"] == "notes"
        generated = await http.post("/api/documents")
        assert generated.status_code == 201
        new_id = generated.json()["id"]
        assert (await http.post("/api/documents", json={"id": "notes"})).status_code == 409
        listed = (await http.get("/api/documents")).json()["documents"]
        assert [d["id"] for d in listed] == [new_id, "notes"]  # newest first
        page = (await http.get("/api/documents", params={"limit": 1})).json()
        assert len(page["documents"]) == 1
        assert page["next_offset"] == 1
        got = (await http.get("/api/documents/notes")).json()
        assert set(got) == {"id", "title", "created_at", "updated_at", "size_bytes"}
        assert got["title"] == ""
        missing = await http.get("/api/documents/nope")
        assert missing.status_code == 404
        assert missing.json()["error"] == "not_found"


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"{not json", "bad_json"),
        (b"[1, 2]", "bad_json"),
        (b'{"id": ".dot"}', "bad_doc_id"),
        (b'{"id": 42}', "bad_doc_id"),
        (b'{"id": "' + b"x" * 200 + b'"}', "bad_doc_id"),
    ],
)
async def test_bad_bodies_are_400(shared_server: CollabServer, body: bytes, error: str) -> None:
    async with httpx.AsyncClient(base_url=shared_server.url) as http:
        response = await http.post("/api/documents", content=body)
    assert response.status_code == 400
    assert response.json()["error"] == error


async def test_bad_paging_is_400(shared_server: CollabServer) -> None:
    async with httpx.AsyncClient(base_url=shared_server.url) as http:
        for params in ({"limit": "0"}, {"limit": "x"}, {"offset": "-1"}, {"limit": "100000"}):
            response = await http.get("/api/documents", params=params)
            assert response.status_code == 400, params


async def test_text_and_size_follow_edits(api_server: CollabServer) -> None:
    async with YClient(api_server.ws_url("rich")) as client:
        fragment = client.xml()
        from pycrdt import XmlElement, XmlText

        fragment.children.append(XmlElement("heading", {"level": 1}, [XmlText("Title")]))
        fragment.children.append(XmlElement("paragraph", {}, [XmlText("Hello world")]))
        async with httpx.AsyncClient(base_url=api_server.url) as http:

            async def text() -> str:
                return (await http.get("/api/documents/rich/text")).text

            await eventually(lambda: _equals(text(), "Title\nHello world"))
            await eventually(lambda: _size(http, "rich"), what="the size to be recorded")


async def test_delete_disconnects_refuses_and_recreates(api_server: CollabServer) -> None:
    async with YClient(api_server.ws_url("doomed")) as client:
        client.append("old content")
        async with httpx.AsyncClient(base_url=api_server.url) as http:
            await eventually(lambda: _size(http, "doomed"))
            assert (await http.delete("/api/documents/doomed")).status_code == 204
            await client.wait_closed()
            assert client.close_code == CloseCode.DOCUMENT_DELETED
            with pytest.raises(InvalidStatus) as refused:
                async with connect(api_server.ws_url("doomed")):
                    pass
            assert refused.value.response.status_code == 410
            assert (await http.get("/api/documents/doomed")).status_code == 404
            assert (await http.delete("/api/documents/doomed")).status_code == 404
            assert (await http.post("/api/documents", json={"id": "doomed"})).status_code == 201
    async with YClient(api_server.ws_url("doomed")) as fresh:
        assert fresh.content() == ""


async def _equals(value: object, expected: str) -> bool:
    return await value == expected  # type: ignore[misc]


async def _size(http: httpx.AsyncClient, doc_id: str) -> bool:
    """Whether the document is stored with some content (it is, once it is written)."""
    response = await http.get(f"/api/documents/{doc_id}")
    return response.status_code == 200 and bool(response.json()["size_bytes"])


async def test_export_import_round_trip(api_server: CollabServer) -> None:
    async with YClient(api_server.ws_url("source")) as client:
        client.append("exported text")
        client.doc.get("meta", type=Map)["title"] = "Notes"
        async with httpx.AsyncClient(base_url=api_server.url) as http:
            exported = await http.get("/api/documents/source/update")
            assert exported.status_code == 200
            assert exported.headers["content-type"] == "application/octet-stream"
            async with YClient(api_server.ws_url("target")) as live:
                imported = await http.post("/api/documents/target/update", content=exported.content)
                assert imported.status_code == 200
                await eventually(lambda: live.content() == "exported text")  # sent to live peers
                assert live.doc.get("meta", type=Map)["title"] == "Notes"
            again = (await http.get("/api/documents/target/update")).content
            copy: Doc = Doc()
            copy.apply_update(again)
            assert str(copy.get("text", type=Text)) == "exported text"
            assert copy.get("meta", type=Map).to_py() == {"title": "Notes"}
            assert (await http.get("/api/documents/never-made/update")).status_code == 404


async def test_bad_update_bodies_change_nothing(start_server: ServerFactory) -> None:
    server = start_server(max_message_size=str(64 * 1024))
    async with YClient(server.ws_url("guarded")) as client:
        client.append("intact")
        async with httpx.AsyncClient(base_url=server.url) as http:
            bad = await http.post("/api/documents/guarded/update", content=b"\x05not an update")
            assert bad.status_code == 400
            assert bad.json()["error"] == "bad_update"
            big = await http.post("/api/documents/guarded/update", content=b"\x00" * 70_000)
            assert big.status_code == 413
            assert (await http.get("/api/documents/guarded/text")).status_code == 200
        assert not client.closed.is_set()
        async with YClient(server.ws_url("guarded")) as late:
            assert late.content() == "intact"


async def test_deep_or_large_json_is_refused_and_the_server_answers(
    shared_server: CollabServer,
) -> None:
    deep = b'{"id": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    async with httpx.AsyncClient(base_url=shared_server.url) as http:
        for body in (deep[:60_000], b'{"label": ' + b"[" * 30_000 + b"]" * 30_000 + b"}"):
            nested = await http.post(
                "/api/documents", content=body, headers={"Content-Type": "application/json"}
            )
            assert nested.status_code == 400
            assert nested.json()["error"] == "bad_json"
        large = await http.post(
            "/api/documents", content=deep, headers={"Content-Type": "application/json"}
        )
        assert large.status_code == 413
        assert large.json()["error"] == "too_large"
        assert (await http.get("/healthz")).status_code == 200
        assert (await http.post("/api/documents", json={})).status_code == 201
    log = shared_server.log()
    assert log.count("400 bad_json: the request body is nested too deeply") == 2
    assert "Traceback" not in log
