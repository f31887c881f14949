"""Shared types nested inside each other thousands deep, sent by a peer with write
access: yrs deletes (and prints) a type recursively, so deleting such a tree takes the
process down with a segmentation fault. The server refuses them at the door."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pycrdt import Doc, XmlElement, XmlFragment, XmlText, merge_updates, write_var_uint

from collab import protocol
from collab.closecodes import CloseCode
from collab.settings import Settings, SettingsError

from .support import CollabServer, eventually
from .yclient import YClient

# About 1 MB: one WebSocket message; deleting it overflowed yrs's stack.
CRASHING_DEPTH = 40_000


def _nest(fragment: XmlFragment | XmlElement, depth: int, tag: str = "blockquote") -> XmlElement:
    node = fragment.children.append(XmlElement(tag))
    for _ in range(depth - 1):
        node = node.children.append(XmlElement(tag))
    return node


def _nested_then_deleted(depth: int) -> bytes:
    """One update that builds the nest and deletes it (encoded by hand: deleting it
    here would crash the test too)."""
    doc: Doc[Any] = Doc()
    with doc.transaction():
        _nest(doc.get("default", type=XmlFragment), depth)
    # The delete set alone: no structs, one client, one range, from the top element on.
    client = write_var_uint(doc.client_id)
    deletion = b"\x00\x01" + client + b"\x01" + write_var_uint(0) + write_var_uint(depth)
    return merge_updates(doc.get_update(), deletion)


async def _text(server: CollabServer, doc_id: str) -> str:
    async with httpx.AsyncClient(base_url=server.url) as http:
        response = await http.get(f"/api/documents/{doc_id}/text")
    assert response.status_code == 200
    return response.text


def _alive(server: CollabServer) -> bool:
    return server.process is not None and server.process.poll() is None


async def test_a_deep_nest_deleted_in_one_update_is_refused(
    shared_server: CollabServer, doc_id: str
) -> None:
    server = shared_server
    async with YClient(server.ws_url(doc_id)) as good, YClient(server.ws_url(doc_id)) as bad:
        good.xml().children.append(XmlElement("paragraph", contents=[XmlText("kept")]))
        await eventually(lambda: str(bad.xml()) != "")
        await bad.send_raw(protocol.sync_update(_nested_then_deleted(CRASHING_DEPTH)))
        await bad.wait_closed(timeout=30)
        assert bad.close_code == CloseCode.INVALID_PAYLOAD
        assert _alive(server)
        assert await _text(server, doc_id) == "kept"
        assert not good.closed.is_set()
    await eventually(lambda: "shared types nested deeper than" in server.log(), what="a log line")


async def test_nesting_built_over_many_updates_stops_at_the_limit(
    shared_server: CollabServer, doc_id: str
) -> None:
    server = shared_server
    limit = Settings().max_update_depth
    async with YClient(server.ws_url(doc_id)) as bad:
        with bad.doc.transaction():  # one update: the deepest the limit allows
            node = _nest(bad.xml(), limit)
        await bad.flush()
        node = node.children.append(XmlElement("blockquote"))  # a level deeper: refused
        await bad.wait_closed(timeout=30)
        assert bad.close_code == CloseCode.INVALID_PAYLOAD
    assert _alive(server)
    async with YClient(server.ws_url(doc_id)) as late:
        await eventually(lambda: str(late.xml()) != "")
        # The refused level never arrived: deleting what is there is harmless.
        del late.xml().children[0]
        late.xml().children.append(XmlElement("paragraph", contents=[XmlText("after")]))
        await eventually(lambda: "after" in str(late.xml()))
    assert await _text(server, doc_id) == "after"
    assert _alive(server)


async def test_the_limit_counts_levels_made_one_by_one(
    shared_server: CollabServer, doc_id: str
) -> None:
    server = shared_server
    limit = Settings().max_update_depth
    async with YClient(server.ws_url(doc_id)) as bad:
        node: XmlFragment | XmlElement = bad.xml()
        for _ in range(limit):
            node = node.children.append(XmlElement("blockquote"))
        await bad.flush()
        await eventually(lambda: _alive(server))
        assert not bad.closed.is_set()
        node.children.append(XmlElement("blockquote"))
        await bad.wait_closed(timeout=30)
        assert bad.close_code == CloseCode.INVALID_PAYLOAD
    assert _alive(server)


async def test_types_held_back_count_when_they_are_placed(
    shared_server: CollabServer, doc_id: str
) -> None:
    # Types whose left neighbour has not come wait in yrs, counted from nothing; the
    # update that brings the neighbour places them, deeper than either alone.
    server = shared_server
    limit = Settings().max_update_depth
    source: Doc[Any] = Doc()
    fragment = source.get("default", type=XmlFragment)
    with source.transaction():
        deepest = _nest(fragment, limit // 2 + 6)
        deepest.children.append(XmlElement("paragraph"))
    first, head = source.get_state(), source.get_update()
    with source.transaction():
        beside = deepest.children.append(XmlElement("blockquote"))  # after the paragraph
        _nest(beside, limit // 2)
    async with YClient(server.ws_url(doc_id)) as bad:
        await bad.send_raw(protocol.sync_update(source.get_update(first)))  # waits
        await bad.send_raw(protocol.sync_update(head))  # places it: too deep
        await bad.wait_closed(timeout=30)
        assert bad.close_code == CloseCode.INVALID_PAYLOAD
    async with YClient(server.ws_url(doc_id)) as good:
        good.xml().children.append(XmlElement("paragraph", contents=[XmlText("fine")]))
        await good.flush()
        await eventually(lambda: "fine" in str(good.xml()))
    assert _alive(server)
    assert await _text(server, doc_id) == "fine"


async def test_every_reader_serves_a_document_at_the_deepest_setting(
    start_server: Any, doc_id: str
) -> None:
    deepest = 200  # COLLAB_MAX_UPDATE_DEPTH's maximum
    server = start_server(max_update_depth=str(deepest))
    async with YClient(server.ws_url(doc_id)) as writer:
        leaf = _nest(writer.xml(), deepest - 1, tag="blockquote")
        leaf.children.append(XmlText("at the bottom"))
        await writer.flush()
    async with httpx.AsyncClient(base_url=server.url) as http:
        await eventually(
            lambda: _served(http, doc_id), what="the deep document through every reader"
        )


async def _served(http: httpx.AsyncClient, doc_id: str) -> bool:
    text = await http.get(f"/api/documents/{doc_id}/text")
    if text.status_code != 200 or "at the bottom" not in text.text:
        return False
    for form in ("json", "html", "markdown"):
        answer = await http.get(f"/api/documents/{doc_id}/content", params={"format": form})
        assert answer.status_code == 200, (form, answer.text[:200])
        assert "at the bottom" in answer.text
    return True


def test_the_depth_setting_stops_where_the_readers_do() -> None:
    with pytest.raises(SettingsError, match="COLLAB_MAX_UPDATE_DEPTH"):
        Settings.from_env({"COLLAB_MAX_UPDATE_DEPTH": "201"})
