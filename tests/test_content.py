"""The content API: the editor's document as text, ProseMirror JSON, HTML and Markdown,
in and out; unit round trips and hostile inputs, then a real server, the stock JS
client and the bundled editor in Chromium."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from pycrdt import Doc, XmlElement, XmlFragment, XmlText

from collab import content
from collab.content import InvalidContent
from collab.content.parsers import Busy, Parsers
from collab.content.schema import MAX_DEPTH, MAX_TEXT

from .conftest import ServerFactory
from .jsclient import JsClient
from .support import CollabServer, eventually
from .test_auth import SECRET, token
from .yclient import YClient


def t(text, *marks):
    n = {"type": "text", "text": text}
    if marks:
        n["marks"] = list(marks)
    return n


def p(*inline):
    return {"type": "paragraph", "content": list(inline)} if inline else {"type": "paragraph"}


LINK = {
    "type": "link",
    "attrs": {
        "href": "https://example.com/a?b=1&c=(2)",
        "target": "_blank",
        "rel": "noopener noreferrer nofollow",
        "class": None,
        "title": None,
    },
}
LINK2 = {
    "type": "link",
    "attrs": {"href": "/rel", "target": "_self", "rel": "nofollow", "class": "x", "title": 'T "q"'},
}


def cell(kind, text, **a):
    return {
        "type": kind,
        "attrs": {"colspan": 1, "rowspan": 1, "colwidth": None, **a},
        "content": [p(t(text))],
    }


EVERY = {
    "type": "doc",
    "content": [
        {"type": "heading", "attrs": {"level": 1}, "content": [t("Title # 1")]},
        {"type": "heading", "attrs": {"level": 6}, "content": [t("six")]},
        p(
            t("plain "),
            t("bold", {"type": "bold"}),
            t(" "),
            t("it", {"type": "italic"}),
            t(" "),
            t("st", {"type": "strike"}),
            t(" "),
            t("co`de", {"type": "code"}),
            t(" "),
            t("under", {"type": "underline"}),
            t(" "),
            t("link", LINK),
            t(" "),
            t("odd link", LINK2),
            t(" "),
            t("bi", {"type": "bold"}, {"type": "italic"}),
            {"type": "hardBreak"},
            t("after *break* _x_ [y] <z> & | ~ \\ # 1. - +"),
        ),
        p(t("1. not a list")),
        p(t("- not a bullet")),
        p(t("# not a heading")),
        p(),
        {
            "type": "blockquote",
            "content": [p(t("quoted")), {"type": "blockquote", "content": [p(t("deeper"))]}],
        },
        {
            "type": "bulletList",
            "content": [
                {"type": "listItem", "content": [p(t("one"))]},
                {
                    "type": "listItem",
                    "content": [
                        p(t("two")),
                        {
                            "type": "bulletList",
                            "content": [{"type": "listItem", "content": [p(t("nested"))]}],
                        },
                    ],
                },
            ],
        },
        {
            "type": "orderedList",
            "attrs": {"start": 3, "type": None},
            "content": [
                {"type": "listItem", "content": [p(t("three"))]},
                {"type": "listItem", "content": [p(t("four"))]},
            ],
        },
        {
            "type": "taskList",
            "content": [
                {"type": "taskItem", "attrs": {"checked": True}, "content": [p(t("done"))]},
                {"type": "taskItem", "attrs": {"checked": False}, "content": [p(t("todo"))]},
            ],
        },
        {
            "type": "codeBlock",
            "attrs": {"language": "python"},
            "content": [t("print('<a>')\n\n```\nx = 1")],
        },
        {"type": "codeBlock", "attrs": {"language": None}, "content": [t("plain code")]},
        {"type": "horizontalRule"},
        {
            "type": "image",
            "attrs": {"src": "https://example.com/i.png", "alt": "an image", "title": "Img"},
        },
        {
            "type": "table",
            "content": [
                {
                    "type": "tableRow",
                    "content": [cell("tableHeader", "h1"), cell("tableHeader", "h|2")],
                },
                {"type": "tableRow", "content": [cell("tableCell", "c1"), cell("tableCell", "c2")]},
            ],
        },
        {
            "type": "table",
            "content": [
                {
                    "type": "tableRow",
                    "content": [cell("tableCell", "wide", colspan=2, colwidth=[100, 200])],
                },
                {
                    "type": "tableRow",
                    "content": [cell("tableCell", "a"), cell("tableCell", "b", rowspan=1)],
                },
            ],
        },
        {
            "type": "callout",
            "attrs": {"kind": "warning", "n": 2},
            "content": [p(t("inside an unknown node"))],
        },
        p(
            t("an "),
            {"type": "mention", "attrs": {"id": "u1", "label": "Ann"}},
            t(" inline unknown, "),
            t("commented", {"type": "comment", "attrs": {"id": "c1"}}),
        ),
        p(t("last")),
    ],
}


def _written(doc_json: dict[str, Any]) -> Doc[Any]:
    doc: Doc[Any] = Doc()
    content.write(doc, content.parse("json", doc_json))
    return doc


# Round trips ----------------------------------------------------------------


def test_every_node_and_mark_survives_yjs() -> None:
    assert content.parse("json", EVERY) == EVERY
    assert content.to_json(_written(EVERY)) == EVERY


@pytest.mark.parametrize("format", ["html", "markdown"])
def test_every_node_and_mark_round_trips(format: str) -> None:
    doc = _written(EVERY)
    rendered = content.to_html(doc) if format == "html" else content.to_markdown(doc)
    back = content.parse(format, rendered)
    assert back["content"] == EVERY["content"]
    assert content.to_json(_written(back)) == EVERY


def test_unknown_nodes_and_marks_are_kept_as_data_elements() -> None:
    doc = _written(EVERY)
    html = content.to_html(doc)
    assert '<div data-pm-node="callout"' in html
    assert '<span data-pm-node="mention"' in html
    assert '<span data-pm-mark="comment"' in html
    assert '<div data-pm-node="callout"' in content.to_markdown(doc)


def test_markdown_escapes_what_would_be_syntax() -> None:
    markdown = content.to_markdown(_written(EVERY))
    assert "1\\. not a list" in markdown
    assert "\\- not a bullet" in markdown
    assert "\\# not a heading" in markdown
    assert "\\*break\\*" in markdown
    assert "``co`de``" in markdown


def test_text_is_one_paragraph_a_line() -> None:
    parsed = content.parse("text", "first\n\n<b>not bold</b> *nor this*\n")
    assert parsed == {
        "type": "doc",
        "content": [p(t("first")), p(), p(t("<b>not bold</b> *nor this*"))],
    }
    assert content.to_text(_written(parsed)) == "first\n\n<b>not bold</b> *nor this*"


def test_append_keeps_what_is_there() -> None:
    doc = _written({"type": "doc", "content": [p(t("one"))]})
    content.write(doc, content.parse("markdown", "two"), "append")
    assert content.to_json(doc)["content"] == [p(t("one")), p(t("two"))]
    content.write(doc, content.parse("markdown", "three"))
    assert content.to_json(doc)["content"] == [p(t("three"))]


def test_write_is_one_transaction() -> None:
    doc = _written({"type": "doc", "content": [p(t("old"))]})
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    content.write(doc, content.parse("markdown", "# new\n\n- a\n- b"))
    assert len(updates) == 1


def test_self_overlapping_marks_are_stored_the_y_prosemirror_way() -> None:
    twice = [{"type": "comment", "attrs": {"id": 1}}, {"type": "comment", "attrs": {"id": 2}}]
    doc = _written({"type": "doc", "content": [p(t("x", *twice))]})
    assert content.to_json(doc)["content"][0]["content"][0]["marks"] == twice


# Hostile input --------------------------------------------------------------


def _nested(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = p(t("bottom"))
    for _ in range(depth):
        node = {"type": "blockquote", "content": [node]}
    return {"type": "doc", "content": [node]}


@pytest.mark.parametrize(
    ("format", "value", "why"),
    [
        ("pdf", "x", "format must be"),
        ("json", "not an object", '"type": "doc"'),
        ("json", {"type": "paragraph"}, '"type": "doc"'),
        ("json", {"type": "doc", "content": "x"}, "must be a list"),
        ("json", {"type": "doc", "content": [None]}, "must be a node"),
        ("json", {"type": "doc", "content": [t("loose text")]}, "doc holds block nodes"),
        ("json", {"type": "doc", "content": [p(p())]}, "paragraph holds inline nodes"),
        (
            "json",
            {"type": "doc", "content": [{"type": "paragraph", "marks": [{"type": "bold"}]}]},
            "only text carries marks",
        ),
        (
            "json",
            {"type": "doc", "content": [{"type": "bulletList", "content": [p()]}]},
            "bulletList holds listItem",
        ),
        (
            "json",
            {"type": "doc", "content": [{"type": "heading", "attrs": {"level": 7}}]},
            "between 1 and 6",
        ),
        (
            "json",
            {"type": "doc", "content": [{"type": "heading", "attrs": {"level": "1"}}]},
            "an integer",
        ),
        (
            "json",
            {"type": "doc", "content": [{"type": "heading", "attrs": {"onclick": "x"}}]},
            "unknown attributes",
        ),
        ("json", {"type": "doc", "content": [{"type": "<script>"}]}, "node type name"),
        ("json", {"type": "doc", "content": [p({"type": "text", "text": ""})]}, "non-empty string"),
        ("json", {"type": "doc", "content": [p({"type": "text", "text": 5})]}, "non-empty string"),
        (
            "json",
            {"type": "doc", "content": [p(t("x", {"type": "bold"}, {"type": "bold"}))]},
            "twice",
        ),
        (
            "json",
            {
                "type": "doc",
                "content": [p(t("x", {"type": "link", "attrs": {"href": "javascript:alert(1)"}}))],
            },
            "href must be",
        ),
        (
            "json",
            {
                "type": "doc",
                "content": [
                    p(t("x", {"type": "link", "attrs": {"href": " jav\tascript:alert(1)"}}))
                ],
            },
            "href must be",
        ),
        (
            "json",
            {
                "type": "doc",
                "content": [{"type": "image", "attrs": {"src": "data:text/html,<script>"}}],
            },
            "src must be",
        ),
        (
            "json",
            {
                "type": "doc",
                "content": [{"type": "codeBlock", "content": [t("x", {"type": "bold"})]}],
            },
            "carries no marks",
        ),
        (
            "json",
            {"type": "doc", "content": [{"type": "x", "attrs": {"deep": [[[[[[[[[[1]]]]]]]]]]}}]},
            "nested too deeply",
        ),
        ("json", _nested(MAX_DEPTH + 1), "nested more than"),
        ("json", _nested(100_000), "nested more than"),
        ("html", b"<p>bytes</p>", "must be a string"),
        ("markdown", None, "must be a string"),
        ("html", "<div>" * 100_000, "nested more than"),
        ("text", "x" * (MAX_TEXT + 1), "longer than"),
        ("html", '<div data-pm-node="x" data-pm-attrs="{not json">', "not JSON"),
    ],
)
def test_invalid_content_is_refused_with_a_reason(format: str, value: object, why: str) -> None:
    with pytest.raises(InvalidContent, match=why):
        content.parse(format, value)


def test_huge_but_flat_content_is_bounded() -> None:
    many = {"type": "doc", "content": [p(t("x"))] * 250_000}
    with pytest.raises(InvalidContent, match="more than"):
        content.parse("json", many)


def test_deep_markdown_neither_recurses_nor_fails_badly() -> None:
    for deep in (">" * 100_000 + " x", "- " * 100_000 + "x"):
        with pytest.raises(InvalidContent, match="nested"):
            content.parse("markdown", deep)
    content.write(Doc(), content.parse("markdown", "*" * 100_000 + "x"))


def _everything_in(parsed: dict[str, Any]) -> str:
    return json.dumps(parsed)


@pytest.mark.parametrize(
    "hostile",
    [
        "<script>alert(1)</script><p>safe</p>",
        "<style>p{}</style><p>safe</p>",
        '<p onclick="alert(1)">safe</p>',
        '<p><a href="javascript:alert(1)">safe</a></p>',
        '<p><a href=" JaVaScRiPt:alert(1)">safe</a></p>',
        '<p><img src="x" onerror="alert(1)">safe</p>',
        '<p><img src="javascript:alert(1)">safe</p>',
        '<iframe src="https://evil.example"></iframe><p>safe</p>',
        "<svg><script>alert(1)</script></svg><p>safe</p>",
        "<p>safe<!-- <script>alert(1)</script> --></p>",
    ],
)
@pytest.mark.parametrize("format", ["html", "markdown"])
def test_script_never_reaches_the_document(hostile: str, format: str) -> None:
    parsed = content.parse(format, hostile)
    dumped = _everything_in(parsed).lower()
    for bad in ("script", "javascript", "onerror", "onclick", "iframe", "style", "alert"):
        assert bad not in dumped, (bad, parsed)
    assert "safe" in dumped
    rendered = content.to_html(_written(parsed)).lower()
    assert "script" not in rendered
    assert "onerror" not in rendered


def test_markdown_javascript_links_stay_text() -> None:
    parsed = content.parse("markdown", "[a](javascript:alert(1)) ![b](javascript:x)")
    assert "link" not in _everything_in(parsed)
    assert parsed["content"][0]["content"][0]["type"] == "text"


def test_unknown_node_attrs_render_escaped() -> None:
    evil = '"><script>alert(1)</script>'
    doc = _written(
        {"type": "doc", "content": [{"type": "x", "attrs": {"a": evil}, "content": [p(t(evil))]}]}
    )
    html = content.to_html(doc)
    assert "<script>" not in html
    assert content.parse("html", html)["content"][0]["attrs"] == {"a": evil}


def _hostile_peer_edit(fragment: XmlFragment) -> None:
    """What a co-editor can write straight into Yjs, past every check of the API."""
    heading = fragment.children.append(XmlElement("heading"))
    heading.attributes["level"] = "1><img src=x onerror=alert(1)><h1"
    link = heading.children.append(XmlText())
    link.insert(0, "click", {"link": {"href": "javascript:alert(2)"}, "bold": {}})
    image = fragment.children.append(XmlElement("image"))
    image.attributes["src"] = " javascript:alert(3)"
    image.attributes["alt"] = "kept"
    listed = fragment.children.append(XmlElement("orderedList"))
    listed.attributes["start"] = "99999999999999999999"
    listed.children.append(XmlElement("text"))  # no element has this name
    fragment.children.append(XmlElement("doc"))
    cell = fragment.children.append(XmlElement("tableCell"))
    cell.attributes["colspan"] = '2" onmouseover="alert(4)'


def test_what_a_peer_stored_is_typed_before_it_renders() -> None:
    doc: Doc[Any] = Doc()
    _hostile_peer_edit(doc.get("default", type=XmlFragment))
    html = content.to_html(doc)
    assert html == (
        '<h1><strong>click</strong></h1><img alt="kept"><ol></ol><td colspan="1" rowspan="1"></td>'
    )
    markdown = content.to_markdown(doc)
    assert markdown.startswith("# **click**\n\n![kept](<>)\n\n")
    assert "javascript" not in json.dumps(content.to_json(doc))
    assert content.to_json(doc)["content"][0] == {
        "type": "heading",
        "attrs": {"level": 1},
        "content": [t("click", {"type": "bold"})],
    }


# The API on a real server ---------------------------------------------------

MEDIA = {
    "text": "text/plain; charset=utf-8",
    "json": "application/json",
    "html": "text/html; charset=utf-8",
    "markdown": "text/markdown; charset=utf-8",
}


async def _get(http: httpx.AsyncClient, doc_id: str, format: str) -> Any:
    answer = await http.get(f"/api/documents/{doc_id}/content", params={"format": format})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == MEDIA[format]
    return answer.json() if format == "json" else answer.text


async def test_put_and_get_every_format(shared_server: CollabServer, doc_id: str) -> None:
    async with httpx.AsyncClient(base_url=shared_server.url) as http:
        assert (await http.post("/api/documents", json={"id": doc_id})).status_code == 201
        assert (await http.get(f"/api/documents/{doc_id}/content")).text == ""
        put = await http.put(
            f"/api/documents/{doc_id}/content", json={"format": "json", "content": EVERY}
        )
        assert put.status_code == 200, put.text
        assert await _get(http, doc_id, "json") == EVERY
        assert (await _get(http, doc_id, "text")).startswith("Title # 1\nsix\nplain bold")
        # What comes out goes back in with nothing changed, in every format.
        for format in ("html", "markdown", "json"):
            out = await _get(http, doc_id, format)
            again = await http.put(
                f"/api/documents/{doc_id}/content", json={"format": format, "content": out}
            )
            assert again.status_code == 200, again.text
            assert await _get(http, doc_id, "json") == EVERY, format
        listed = (await http.get(f"/api/documents/{doc_id}")).json()
        assert listed["id"] == doc_id


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"format": "pdf", "content": "x"}, 400, "bad_format"),
        ({"format": 1, "content": "x"}, 400, "bad_format"),
        ({"content": "x"}, 400, "bad_format"),
        ({"format": "text"}, 400, "bad_content"),
        ({"format": "markdown", "content": 5}, 400, "bad_content"),
        ({"format": "json", "content": {"type": "doc", "content": [t("x")]}}, 400, "bad_content"),
        ({"format": "html", "content": "<div>" * 10_000}, 400, "bad_content"),
        ({"format": "text", "content": "x", "mode": "prepend"}, 400, "bad_request"),
        ([1, 2], 400, "bad_json"),
    ],
)
async def test_bad_puts_change_nothing(
    shared_server: CollabServer, doc_id: str, body: object, status: int, error: str
) -> None:
    async with httpx.AsyncClient(base_url=shared_server.url) as http:
        await http.post("/api/documents", json={"id": doc_id})
        await http.put(
            f"/api/documents/{doc_id}/content", json={"format": "text", "content": "before"}
        )
        refused = await http.put(f"/api/documents/{doc_id}/content", json=body)
        assert refused.status_code == status
        assert refused.json()["error"] == error
        assert await _get(http, doc_id, "text") == "before"
        garbage = await http.put(
            f"/api/documents/{doc_id}/content",
            content=b"\xff{not json",
            headers={"content-type": "application/json"},
        )
        assert garbage.status_code == 400
        nested = await http.put(
            f"/api/documents/{doc_id}/content",
            content=b'{"format": "json", "content": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
            headers={"content-type": "application/json"},
        )
        assert nested.status_code in (400, 413)
        assert await _get(http, doc_id, "text") == "before"
        assert (await http.get("/healthz")).status_code == 200
    assert f"refused PUT /api/documents/{doc_id}/content" in shared_server.log()


async def test_unknown_documents_and_formats(shared_server: CollabServer) -> None:
    async with httpx.AsyncClient(base_url=shared_server.url) as http:
        assert (await http.get("/api/documents/nope-x/content")).status_code == 404
        put = await http.put(
            "/api/documents/nope-x/content", json={"format": "text", "content": "x"}
        )
        assert put.status_code == 404
        assert (await http.get("/api/documents/nope-x")).status_code == 404
        await http.post("/api/documents", json={"id": "formats-x"})
        bad = await http.get("/api/documents/formats-x/content", params={"format": "pdf"})
        assert (bad.status_code, bad.json()["error"]) == (400, "bad_format")


async def test_tokens_are_checked(start_server: ServerFactory, doc_id: str) -> None:
    server = start_server(auth_secret=SECRET)
    url = f"/api/documents/{doc_id}/content"
    body = {"format": "text", "content": "x"}
    rw = {"Authorization": f"Bearer {token()}"}
    ro = {"Authorization": f"Bearer {token(mode='ro')}"}
    other = {"Authorization": f"Bearer {token(docs=['other'])}"}
    async with httpx.AsyncClient(base_url=server.url) as http:
        assert (
            await http.post("/api/documents", json={"id": doc_id}, headers=rw)
        ).status_code == 201
        assert (await http.put(url, json=body)).status_code == 401
        assert (await http.get(url)).status_code == 401
        assert (await http.get(url, headers=other)).status_code == 403
        assert (await http.put(url, json=body, headers=ro)).status_code == 403
        assert (await http.get(url, headers=ro)).status_code == 200
        evil = {**rw, "Origin": "http://evil.example"}
        assert (await http.put(url, json=body, headers=evil)).status_code == 403
        assert (await http.get(url, headers=ro)).text == ""
        assert (await http.put(url, json=body, headers=rw)).status_code == 200
        assert (await http.get(url, headers=ro)).text == "x"


async def test_a_put_is_seen_live_by_the_stock_js_client(server: CollabServer, doc_id: str) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        await http.post("/api/documents", json={"id": doc_id})
        async with JsClient(server.ws_base, doc_id) as client:
            await client.wait_synced()
            put = await http.put(
                f"/api/documents/{doc_id}/content",
                json={"format": "markdown", "content": "# Live\n\n- from **the API**"},
            )
            assert put.status_code == 200
            expected = await _get(http, doc_id, "json")

            async def seen() -> bool:
                doc: Doc[Any] = Doc()
                doc.apply_update(await client.dump())
                return content.to_json(doc) == expected

            await eventually(seen, 15, "the JS client to hold the new content")
        assert expected["content"][0] == {
            "type": "heading",
            "attrs": {"level": 1},
            "content": [t("Live")],
        }


async def test_a_put_is_stored(start_server: ServerFactory, database_url: str, doc_id: str) -> None:
    first = start_server(database_url)
    async with httpx.AsyncClient(base_url=first.url) as http:
        await http.post("/api/documents", json={"id": doc_id})
        for format, value in (("json", EVERY), ("markdown", "appended *here*")):
            mode = "replace" if format == "json" else "append"
            put = await http.put(
                f"/api/documents/{doc_id}/content",
                json={"format": format, "content": value, "mode": mode},
            )
            assert put.status_code == 200
        before = await _get(http, doc_id, "json")
        versions = (await http.get(f"/api/documents/{doc_id}/versions")).json()
    first.stop()
    assert before["content"][:-1] == EVERY["content"]
    assert before["content"][-1] == p(t("appended "), t("here", {"type": "italic"}))
    second = start_server(database_url)
    async with httpx.AsyncClient(base_url=second.url) as http:
        assert await _get(http, doc_id, "json") == before
        assert (await http.get(f"/api/documents/{doc_id}/versions")).json() == versions


async def test_parse_runs_off_the_event_loop(shared_server: CollabServer, doc_id: str) -> None:
    async with httpx.AsyncClient(base_url=shared_server.url, timeout=60) as http:
        await http.post("/api/documents", json={"id": doc_id})
        slow = asyncio.create_task(
            http.put(
                f"/api/documents/{doc_id}/content",
                json={"format": "markdown", "content": "[" * 60_000},
            )
        )
        await asyncio.sleep(0.2)
        started = asyncio.get_running_loop().time()
        assert (await http.get("/healthz")).status_code == 200
        answered = asyncio.get_running_loop().time() - started
        assert (await slow).status_code == 200
        assert answered < 1.0


async def test_a_co_editors_markup_never_runs_on_collabs_origin(
    shared_server: CollabServer, doc_id: str
) -> None:
    async with httpx.AsyncClient(base_url=shared_server.url) as http:
        async with YClient(shared_server.ws_url(doc_id)) as peer:
            _hostile_peer_edit(peer.xml())
            await peer.flush()

            async def written() -> bool:
                return "click" in (await http.get(f"/api/documents/{doc_id}/text")).text

            await eventually(written, what="the peer's edit")
        answer = await http.get(f"/api/documents/{doc_id}/content", params={"format": "html"})
        assert answer.status_code == 200
        assert answer.text.startswith("<h1><strong>click</strong></h1><img alt=")
        for bad in ("onerror", "onmouseover", "javascript"):
            assert bad not in answer.text
        assert answer.headers["content-security-policy"].startswith("sandbox;")
        assert answer.headers["x-content-type-options"] == "nosniff"
        for format in ("markdown", "json", "text"):
            other = await http.get(f"/api/documents/{doc_id}/content", params={"format": format})
            assert other.status_code == 200, format
            assert "javascript" not in other.text


_SLOW = "[" * 30_000  # a second or two of markdown-it's time, well inside 64 KiB


async def test_a_parse_its_caller_gave_up_on_keeps_its_place_until_done() -> None:
    parsers = Parsers(threads=1, queue=0)
    try:
        first = asyncio.create_task(parsers.parse("markdown", _SLOW))
        await asyncio.sleep(0.05)
        first.cancel()  # the client hung up; its parse runs on in the thread
        await asyncio.gather(first, return_exceptions=True)
        with pytest.raises(Busy):
            await parsers.parse("text", "x")
        await eventually(lambda: _is_zero(parsers.taken), 60, "the abandoned parse to end")
        assert await parsers.parse("text", "x") == {"type": "doc", "content": [p(t("x"))]}
    finally:
        parsers.close()


async def _is_zero(value: int) -> bool:
    return value == 0


async def test_parses_beyond_the_queue_are_refused_busy(
    start_server: ServerFactory, doc_id: str
) -> None:
    server = start_server(content_parsers=1, content_queue=0)
    url = f"/api/documents/{doc_id}/content"
    async with httpx.AsyncClient(base_url=server.url, timeout=120) as http:
        await http.post("/api/documents", json={"id": doc_id})
        answers = await asyncio.gather(
            *(http.put(url, json={"format": "markdown", "content": _SLOW}) for _ in range(4))
        )
        statuses = sorted(a.status_code for a in answers)
        assert statuses[0] == 200, statuses
        assert statuses[-1] == 503, statuses
        assert {a.json()["error"] for a in answers if a.status_code == 503} == {"busy"}
        assert (await http.put(url, json={"format": "text", "content": "after"})).status_code == 200
        assert await _get(http, doc_id, "text") == "after"
    assert f"refused PUT {url}" in server.log()
    assert "503 busy" in server.log()


async def test_writing_many_paragraphs_runs_off_the_event_loop(
    start_server: ServerFactory, doc_id: str
) -> None:
    # 20 000 paragraphs: Yjs takes a second to write them (its inserts are linear each).
    server = start_server(max_json_body=200_000)
    many = "a\n" * 20_000
    async with httpx.AsyncClient(base_url=server.url, timeout=120) as http:
        await http.post("/api/documents", json={"id": doc_id})
        loop = asyncio.get_running_loop()
        started = loop.time()
        put = asyncio.create_task(
            http.put(f"/api/documents/{doc_id}/content", json={"format": "text", "content": many})
        )
        slowest = 0.0
        while not put.done():
            asked = loop.time()
            assert (await http.get("/healthz")).status_code == 200
            slowest = max(slowest, loop.time() - asked)
        assert (await put).status_code == 200
        took = loop.time() - started
        # The room's own checks of the update it applies (on the loop) take a part.
        assert slowest < 0.4 * took, (slowest, took)
        assert (await _get(http, doc_id, "text")) == many[:-1]
