"""The content API against the bundled editor in real Chromium: what it types comes out
as the editor's own ProseMirror JSON, goes back in unchanged in every format, and a
PUT appears in it live."""

from __future__ import annotations

from typing import Any

import httpx
from playwright.sync_api import expect

from collab import content

from .support import CollabServer, wait_until
from .test_editor_browser import (  # noqa: F401 (fixtures)
    ContextFactory,
    browser,
    editor,
    new_context,
    new_doc_id,
    open_editor,
    type_at_end,
)


def _editor_state(page: Any) -> dict[str, Any]:
    state: dict[str, Any] = page.evaluate(
        "() => document.querySelector('#editor .ProseMirror').editor.getJSON()"
    )
    return state


def _http_json(base_url: str, doc_id: str) -> dict[str, Any]:
    answer = httpx.get(f"{base_url}/api/documents/{doc_id}/content", params={"format": "json"})
    assert answer.status_code == 200
    result: dict[str, Any] = answer.json()
    return result


def test_the_editor_document_in_every_format(
    live_server: CollabServer,
    new_context: ContextFactory,  # noqa: F811 (the fixture)
) -> None:
    base_url = live_server.base_url
    doc_id = new_doc_id()
    page = open_editor(new_context(), base_url, doc_id, "Ed")
    keyboard = page.keyboard
    type_at_end(page, "# Notes")
    keyboard.press("Enter")
    keyboard.type("Some **bold** and *italic* and `code` text, see https://example.com ok")
    keyboard.press("Shift+Enter")
    keyboard.type("a second line")
    keyboard.press("Enter")
    keyboard.type("- first")
    keyboard.press("Enter")
    keyboard.type("second")
    keyboard.press("Enter")
    keyboard.press("Enter")
    keyboard.type("> a quote")
    keyboard.press("Enter")
    keyboard.press("Enter")
    keyboard.type("```js ")
    keyboard.type("let x = '<b>'")
    expect(editor(page).locator("pre")).to_contain_text("let x")
    wait_until(lambda: _http_json(base_url, doc_id) == _editor_state(page), 15, "the server")
    served = _http_json(base_url, doc_id)
    kinds = [block["type"] for block in served["content"]]
    assert kinds == ["heading", "paragraph", "bulletList", "blockquote", "codeBlock"]

    for format in ("markdown", "html", "json"):
        answer = httpx.get(f"{base_url}/api/documents/{doc_id}/content", params={"format": format})
        out = answer.json() if format == "json" else answer.text
        assert content.parse(format, out) == served, format
        put = httpx.put(
            f"{base_url}/api/documents/{doc_id}/content", json={"format": format, "content": out}
        )
        assert put.status_code == 200
        assert _http_json(base_url, doc_id) == served
    markdown = httpx.get(
        f"{base_url}/api/documents/{doc_id}/content", params={"format": "markdown"}
    ).text
    assert markdown.startswith("# Notes\n\nSome **bold** and *italic* and `code` text")
    assert "[https://example.com](https://example.com)" in markdown
    assert "```js\nlet x = '<b>'\n```" in markdown
    # The editor, after all those replacements, shows the same document.
    wait_until(lambda: _editor_state(page) == served, 15, "the editor")

    # An append through the API appears in the editor at once.
    put = httpx.put(
        f"{base_url}/api/documents/{doc_id}/content",
        json={"format": "markdown", "content": "Added **by the API**", "mode": "append"},
    )
    assert put.status_code == 200
    expect(editor(page).locator("p strong", has_text="by the API")).to_be_visible()
    wait_until(lambda: _editor_state(page) == _http_json(base_url, doc_id), 15, "the editor")
