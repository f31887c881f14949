"""A document's title is its first line, stored with its writes: on SQLite and
PostgreSQL, from live edits and imported updates; hostile content gets none."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from pycrdt import Doc, Map, Text, XmlElement, XmlFragment, XmlText

from collab.plaintext import TITLE_DEPTH, TITLE_LENGTH, TITLE_SCAN, plain_text, title
from collab.sqlstore import SqlStore, create_engine

from .conftest import ServerFactory
from .support import CollabServer, eventually
from .yclient import YClient


def _doc(*blocks: XmlElement | XmlText) -> Doc[Any]:
    doc: Doc[Any] = Doc()
    fragment = doc.get("default", type=XmlFragment)
    for block in blocks:
        fragment.children.append(block)
    return doc


def _p(*children: XmlElement | XmlText | str, tag: str = "paragraph") -> XmlElement:
    return XmlElement(tag, {}, [XmlText(c) if isinstance(c, str) else c for c in children])


@pytest.mark.parametrize(
    ("blocks", "expected"),
    [
        ((), ""),
        ((_p(), _p("   "), _p("  Plans  ", tag="heading"), _p("body")), "Plans"),
        ((_p("first", XmlElement("hardBreak"), "second"),), "first"),
        ((_p(XmlElement("hardBreak"), "  after a break"),), "after a break"),
        ((XmlElement("bulletList", {}, [XmlElement("listItem", {}, [_p("item")])]),), "item"),
        ((_p("x" * 1000),), "x" * TITLE_LENGTH),
        ((_p("a" * (TITLE_LENGTH - 1) + " b"),), "a" * (TITLE_LENGTH - 1)),
    ],
)
def test_title_is_the_first_line_that_is_not_blank(
    blocks: tuple[XmlElement, ...], expected: str
) -> None:
    doc = _doc(*blocks)
    assert title(doc) == expected
    lines = [line.strip() for line in plain_text(doc.get_update()).split("\n")]
    assert expected == next((line for line in lines if line), "")[:TITLE_LENGTH].rstrip()


def test_formatted_runs_make_one_line() -> None:
    doc = _doc(_p("Hello "))
    paragraph = doc.get("default", type=XmlFragment).children[0]
    assert isinstance(paragraph, XmlElement)
    bold = paragraph.children.append(XmlText("bold"))
    bold.format(0, 4, {"bold": True})
    assert title(doc) == "Hello bold"


def test_title_reads_only_the_first_blocks() -> None:
    doc = _doc(_p("Heading"), *(_p(f"line {i} " * 10) for i in range(5000)))
    started = time.perf_counter()
    for _ in range(100):
        assert title(doc) == "Heading"
    assert (time.perf_counter() - started) / 100 < 0.002  # ~25 us here; all of it is ~100 ms


def test_blank_or_deep_beginnings_have_no_title() -> None:
    assert title(_doc(*(_p() for _ in range(TITLE_SCAN)), _p("too far"))) == ""
    deep = _p("too deep")
    for _ in range(TITLE_DEPTH):
        deep = XmlElement("blockquote", {}, [deep])
    assert title(_doc(deep)) == ""


@pytest.mark.parametrize("kind", [Text, Map])
def test_a_default_of_another_type_has_no_title(kind: type[Text] | type[Map[Any]]) -> None:
    written: Doc[Any] = Doc()
    root = written.get("default", type=kind)
    if isinstance(root, Text):
        root += "not xml"
    else:
        root["not"] = "xml"
    doc: Doc[Any] = Doc()
    doc.apply_update(written.get_update())
    assert title(doc) == ""


async def _title(http: httpx.AsyncClient, doc_id: str) -> str | None:
    response = await http.get(f"/api/documents/{doc_id}")
    return response.json()["title"] if response.status_code == 200 else None


async def test_titles_follow_edits_and_are_stored(
    start_server: ServerFactory, database_url: str
) -> None:
    server = start_server(database_url)
    async with httpx.AsyncClient(base_url=server.url) as http:
        async with YClient(server.ws_url("titled")) as client:
            fragment = client.xml()
            heading = XmlText("Draft")
            fragment.children.append(XmlElement("heading", {"level": 1}, [heading]))
            fragment.children.append(_p("body text"))
            await eventually(lambda: _is(_title(http, "titled"), "Draft"), what="the title")
            heading.insert(len(heading), " two")
            await eventually(lambda: _is(_title(http, "titled"), "Draft two"), what="a new title")
            listed = (await http.get("/api/documents")).json()["documents"]
            assert [(d["id"], d["title"]) for d in listed] == [("titled", "Draft two")]
        # Imported: a server-side edit titles the document it creates.
        source = _doc(_p(""), _p("  Imported notes "))
        response = await http.post("/api/documents/imported/update", content=source.get_update())
        assert response.status_code == 200
        await eventually(lambda: _is(_title(http, "imported"), "Imported notes"))
        # Deleted and created again: no title until it has content.
        assert (await http.delete("/api/documents/titled")).status_code == 204
        assert (await http.post("/api/documents", json={"id": "titled"})).json()["title"] == ""
    server.stop()
    # The list is read from the documents' rows alone: the title is stored there.
    store = SqlStore(create_engine(database_url))
    try:
        stored = {d.id: d.title for d in await store.list_documents(10, 0)}
    finally:
        await store.close()
    assert stored == {"imported": "Imported notes", "titled": ""}


async def test_hostile_content_gets_no_title_and_the_room_keeps_writing(
    server: CollabServer,
) -> None:
    hostile: Doc[Any] = Doc()
    hostile.get("default", type=Text).insert(0, "a text where the editor's XML goes")
    async with httpx.AsyncClient(base_url=server.url) as http:
        async with YClient(server.ws_url("hostile")) as client:
            client.doc.apply_update(hostile.get_update())
            await eventually(lambda: _size(http, "hostile"), what="the write")
            assert await _title(http, "hostile") == ""
            client.append("more")
            size = (await http.get("/api/documents/hostile")).json()["size_bytes"]
            await eventually(lambda: _grown(http, "hostile", size), what="the next write")
        assert (await http.get("/healthz")).status_code == 200
    assert "Traceback" not in server.log()


async def _is(value: Any, expected: str) -> bool:
    return bool(await value == expected)


async def _size(http: httpx.AsyncClient, doc_id: str) -> bool:
    response = await http.get(f"/api/documents/{doc_id}")
    return response.status_code == 200 and bool(response.json()["size_bytes"])


async def _grown(http: httpx.AsyncClient, doc_id: str, size: int) -> bool:
    return bool((await http.get(f"/api/documents/{doc_id}")).json()["size_bytes"] > size)


async def test_control_characters_in_a_title_store_and_list(
    start_server: ServerFactory, database_url: str
) -> None:
    # PostgreSQL's text holds no NUL: a title with one failed the write that carried it.
    server = start_server(database_url)
    async with httpx.AsyncClient(base_url=server.url) as http:
        async with YClient(server.ws_url("controls")) as client:
            heading = XmlText("Ti\x00t\x07le\u202e \x1b[31m")
            client.xml().children.append(XmlElement("heading", {"level": 1}, [heading]))
            await eventually(lambda: _is(_title(http, "controls"), "Title [31m"))
            heading.insert(len(heading), " more")
            await eventually(lambda: _is(_title(http, "controls"), "Title [31m more"))
        text = (await http.get("/api/documents/controls/text")).text
        assert text == "Ti\x00t\x07le\u202e \x1b[31m more"
    server.stop()
    assert "Traceback" not in server.log()
