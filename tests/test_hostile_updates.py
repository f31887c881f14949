"""Crafted updates, over a socket and through the API, against a real server: the
sender is refused, the process stays up, and no document, store or peer changes."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pycrdt import Doc, Text

from collab import protocol
from collab.closecodes import CloseCode
from collab.room import Room
from collab.settings import Settings
from collab.state import decode_state_vector
from collab.yupdate import MalformedUpdate

from .conftest import ServerFactory
from .corpus import (
    HALF_APPLIED_BASE,
    HALF_APPLIED_UPDATE,
    content,
    deep_any,
    deep_json_format,
    deletion,
    type_with_ref,
)
from .jsclient import JsClient
from .support import CollabServer, eventually
from .test_auth import SECRET, token
from .yclient import YClient

# The depth that killed the process with a segmentation fault (about 50 KB).
CRASHING_DEPTH = 26_000


async def _document(server: CollabServer, doc_id: str) -> bytes:
    async with httpx.AsyncClient(base_url=server.url) as http:
        response = await http.get(f"/api/documents/{doc_id}/update")
    assert response.status_code == 200
    return response.content


async def _all_written(server: CollabServer) -> bool:
    async with httpx.AsyncClient(base_url=server.url) as http:
        return (await http.get("/api/stats")).json()["unwritten_updates"] == 0


@pytest.mark.parametrize("make", [deep_any, deep_json_format])
async def test_deep_update_over_a_socket_closes_only_its_sender(
    shared_server: CollabServer, doc_id: str, make: Any
) -> None:
    server = shared_server
    async with (
        YClient(server.ws_url(doc_id)) as good,
        YClient(server.ws_url(doc_id)) as bad,
        YClient(server.ws_url(doc_id + "-elsewhere")) as elsewhere,
    ):
        good.append("kept")
        elsewhere.append("other room")
        await eventually(lambda: bad.content() == "kept")
        await bad.send_raw(protocol.sync_update(make(CRASHING_DEPTH)))
        await bad.wait_closed()
        assert bad.close_code == CloseCode.INVALID_PAYLOAD
        good.append(" and more")
        async with YClient(server.ws_url(doc_id)) as late:
            await eventually(lambda: late.content() == "kept and more")
            assert content(late.doc.get_update())["meta"] == {}
        assert not good.closed.is_set()
        assert not elsewhere.closed.is_set()
    assert server.process is not None
    assert server.process.poll() is None
    await eventually(lambda: "nested deeper than 128" in server.log(), what="a log line")


async def test_nesting_at_the_limit_opens_in_the_stock_js_client(
    shared_server: CollabServer, doc_id: str
) -> None:
    server = shared_server
    limit = Settings().max_update_depth
    async with YClient(server.ws_url(doc_id)) as writer:
        await writer.send_raw(protocol.sync_update(deep_any(limit)))
        writer.append("after the deep value")
        await eventually(lambda: writer.received > 0)
        async with JsClient(server.ws_base, doc_id) as js:
            await js.wait_synced()
            await eventually(lambda: js.text(), what="the JS client's text")
            assert content(await js.dump()) == content(await _document(server, doc_id))
            assert await js.text() == "after the deep value"


async def test_deep_update_through_the_api_needs_a_token_first(
    start_server: ServerFactory, doc_id: str
) -> None:
    server = start_server(auth_secret=SECRET)
    body = deep_any(CRASHING_DEPTH)
    headers = {"content-type": "application/octet-stream"}
    async with httpx.AsyncClient(base_url=server.url) as http:
        refused = await http.post(f"/api/documents/{doc_id}/update", content=body, headers=headers)
        assert refused.status_code == 401
        authorised = {**headers, "authorization": f"Bearer {token()}"}
        bad = await http.post(f"/api/documents/{doc_id}/update", content=body, headers=authorised)
        assert bad.status_code == 400
        assert bad.json()["error"] == "bad_update"
        # Nothing was created by the refused bodies.
        listed = await http.get("/api/documents", headers=authorised)
        assert doc_id not in [d["id"] for d in listed.json()["documents"]]
        assert (await http.get("/healthz")).status_code == 200


async def test_an_update_yrs_would_half_apply_is_refused_whole(
    shared_server: CollabServer, doc_id: str
) -> None:
    server = shared_server
    headers = {"content-type": "application/octet-stream"}
    url = f"/api/documents/{doc_id}/update"
    async with httpx.AsyncClient(base_url=server.url) as http:
        assert (await http.post(url, content=HALF_APPLIED_BASE, headers=headers)).status_code == 200
        before = await _document(server, doc_id)
        refused = await http.post(url, content=HALF_APPLIED_UPDATE, headers=headers)
        assert refused.status_code == 400
        assert refused.json()["error"] == "bad_update"
    async with YClient(server.ws_url(doc_id)) as bad:
        await bad.send_raw(protocol.sync_update(HALF_APPLIED_UPDATE))
        await bad.wait_closed()
        assert bad.close_code == CloseCode.INVALID_PAYLOAD
    assert await _document(server, doc_id) == before


async def test_a_type_yrs_cannot_read_closes_its_sender_not_the_room(
    shared_server: CollabServer, doc_id: str
) -> None:
    """A shared type whose ref is a varuint longer than yrs's one byte (14 bytes in
    all): the room took it for a document yrs had failed on and closed every peer with
    1012 to reload it, for as often as a writer sent it."""
    server = shared_server
    async with YClient(server.ws_url(doc_id)) as good, YClient(server.ws_url(doc_id)) as bad:
        good.append("kept")
        await eventually(lambda: bad.content() == "kept")
        await bad.send_raw(protocol.sync_update(type_with_ref(b"\x82\x00")))
        await bad.wait_closed()
        assert bad.close_code == CloseCode.INVALID_PAYLOAD
        good.append(" and more")
        async with YClient(server.ws_url(doc_id)) as late:
            await eventually(lambda: late.content() == "kept and more")
            assert 999 not in decode_state_vector(late.doc.get_state())
        assert not good.closed.is_set()
        before = await _document(server, doc_id)
        async with httpx.AsyncClient(base_url=server.url) as http:
            refused = await http.post(
                f"/api/documents/{doc_id}/update",
                content=type_with_ref(b"\x82\x00"),
                headers={"content-type": "application/octet-stream"},
            )
        assert refused.status_code == 400
        assert refused.json()["error"] == "bad_update"
        assert await _document(server, doc_id) == before
        assert not good.closed.is_set()
    assert server.process is not None
    assert server.process.poll() is None
    await eventually(lambda: "malformed message (unknown type)" in server.log(), what="a log line")


async def test_trailing_junk_is_refused_not_relayed_nor_stored(
    start_server: ServerFactory, doc_id: str
) -> None:
    server = start_server(max_message_size=str(2 * 1024 * 1024))
    junk = protocol.sync_update(protocol.EMPTY_UPDATE + b"\x07" * (1024 * 1024))
    async with YClient(server.ws_url(doc_id)) as good, YClient(server.ws_url(doc_id)) as bad:
        good.append("x")
        await eventually(lambda: bad.content() == "x")
        received = good.received
        await bad.send_raw(junk)
        await bad.wait_closed()
        assert bad.close_code == CloseCode.INVALID_PAYLOAD
        async with YClient(server.ws_url(doc_id)) as late:
            late.append("y")
            # Frames reach a peer in order: the junk would have come before this edit.
            await eventually(lambda: good.content() == "xy")
        assert good.received == received + 1
    await eventually(lambda: _all_written(server), what="the writes")
    async with httpx.AsyncClient(base_url=server.url) as http:
        info = (await http.get(f"/api/documents/{doc_id}")).json()
    assert info["size_bytes"] < 1024


@pytest.mark.parametrize(("clock", "length"), [(2, 1), (1, 1), (2, 3), (0, 2)])
def test_a_deletion_inside_an_emoji_is_refused(clock: int, length: int) -> None:
    """yrs splits an item where a deletion starts or ends; split inside a two-unit
    character, it encodes one unit short and the document no longer decodes."""
    writer: Doc[Any] = Doc(client_id=9)
    writer.get("text", type=Text).insert(0, "a😀bc")  # units: a, 😀 (1-2), b, c
    room = Room("emoji", Doc())
    room.apply_update(writer.get_update(), "peer")
    with pytest.raises(MalformedUpdate, match="splits a character"):
        room.apply_update(deletion(9, clock, length), "peer")
    again: Doc[Any] = Doc()
    again.apply_update(room.doc.get_update())
    assert str(again.get("text", type=Text)) == "a😀bc"


# pycrdt's Text counts UTF-8 bytes: a 0-1, 😀 1-5, b 5-6, c 6-7.
@pytest.mark.parametrize(("start", "end"), [(1, 5), (0, 5), (5, 7), (0, 7), (6, 7), (1, 6)])
def test_deletions_between_characters_are_taken(start: int, end: int) -> None:
    writer: Doc[Any] = Doc(client_id=9)
    text = writer.get("text", type=Text)
    text.insert(0, "a😀bc")
    room = Room("emoji", Doc())
    room.apply_update(writer.get_update(), "peer")
    before = writer.get_state()
    del text[start:end]
    room.apply_update(writer.get_update(before), "peer")
    again: Doc[Any] = Doc()
    again.apply_update(room.doc.get_update())
    assert str(again.get("text", type=Text)) == str(text)
