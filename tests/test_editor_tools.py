"""The editor's tools in real Chromium against a live `collab serve`: links, task
lists, tables and images go through the server's formats intact and reach a second
user; addresses that could run script or smuggle data are refused in the dialogs."""

from __future__ import annotations

from typing import Any

import httpx
from playwright.sync_api import Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from .support import CollabServer, wait_until
from .test_editor_browser import (  # noqa: F401 (fixtures)
    SCREENSHOTS,
    TIMEOUT_MS,
    ContextFactory,
    browser,
    caret_label,
    editor,
    new_context,
    new_doc_id,
    open_editor,
    type_at_end,
)


def editor_json(page: Page) -> Any:
    return page.evaluate("() => document.querySelector('#editor .ProseMirror').editor.getJSON()")


def content(base_url: str, doc_id: str, format: str) -> Any:
    answer = httpx.get(f"{base_url}/api/documents/{doc_id}/content", params={"format": format})
    assert answer.status_code == 200, answer.text
    return answer.json() if format == "json" else answer.text


def expect_editor_json(page: Page, wanted: Any) -> None:
    """Waits until the editor's document (what the user sees, as JSON) is `wanted`."""
    wait_until(lambda: editor_json(page) == wanted, TIMEOUT_MS / 1000, "the editor's document")


def expect_served_json(page: Page, base_url: str, doc_id: str) -> Any:
    """Waits until the server's JSON is the editor's, and returns it."""
    wait_until(
        lambda: content(base_url, doc_id, "json") == editor_json(page),
        TIMEOUT_MS / 1000,
        "the server to hold the editor's document",
    )
    return content(base_url, doc_id, "json")


def tool(page: Page, name: str) -> Any:
    return page.locator("#toolbar").get_by_role("button", name=name, exact=True)


def nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
    found = [node]
    for child in node.get("content", []):
        found.extend(nodes(child))
    return found


def text_of(node: dict[str, Any]) -> str:
    return "".join(n.get("text", "") for n in nodes(node))


CARET_AT_END_OF = """(text) => {
    const { state } = document.querySelector('#editor .ProseMirror').editor
    const { $from, empty } = state.selection
    return empty && $from.parent.type.name === 'paragraph'
        && $from.parent.textContent.includes(text)
        && $from.parentOffset === $from.parent.content.size
}"""


def click_end_of(page: Page, text: str) -> None:
    """Puts the caret at the end of the paragraph holding `text`, the way a user
    does: a click right of its text and End. A click that lands while the layout is
    still moving (an image failing to load above it) goes elsewhere, so the editor's
    own selection is checked, and the click is made again if it missed."""
    paragraph = editor(page).locator("p", has_text=text).first
    for _ in range(5):
        box = paragraph.bounding_box()
        assert box is not None
        paragraph.click(position={"x": box["width"] - 2, "y": box["height"] / 2})
        page.keyboard.press("End")
        try:
            page.wait_for_function(CARET_AT_END_OF, arg=text, timeout=1000)
            return
        except PlaywrightTimeoutError:
            continue
    raise AssertionError(f"the caret did not reach the end of the paragraph holding {text!r}")


def test_links_tasks_tables_and_images_round_trip(
    live_server: CollabServer,
    new_context: ContextFactory,  # noqa: F811 (the fixture)
) -> None:
    base_url = live_server.base_url
    doc_id = new_doc_id()
    page = open_editor(new_context(), base_url, doc_id, "Tess")
    keyboard = page.keyboard

    # A task list, nested, with the first task checked.
    type_at_end(page, "Tasks")
    keyboard.press("Enter")
    tool(page, "Task list").click()
    keyboard.type("Buy milk")
    keyboard.press("Enter")
    keyboard.press("Tab")
    keyboard.type("Nested task")
    keyboard.press("Enter")
    keyboard.press("Shift+Tab")
    keyboard.type("Write tests")
    keyboard.press("Enter")
    keyboard.press("Enter")
    keyboard.type("Table")
    editor(page).get_by_role("checkbox", name="Done: Buy milk").check()
    expect(editor(page).locator('li[data-checked="true"]')).to_have_count(1)
    nested = editor(page).locator("ul[data-type=taskList] ul[data-type=taskList] li p")
    expect(nested).to_have_text("Nested task")

    # A table: insert, fill the header row and a cell, add a row and a column,
    # remove the column again.
    click_end_of(page, "Table")
    keyboard.press("Enter")
    tool(page, "Insert table").click()
    expect(editor(page).locator("table tr")).to_have_count(3)
    headers = editor(page).locator("table th")
    keyboard.type("Name")
    expect(headers.nth(0)).to_have_text("Name")
    keyboard.press("Tab")
    # Tab selects the next cell; type only once the caret is in it.
    page.wait_for_function(
        """() => {
            const { state } = document.querySelector('#editor .ProseMirror').editor
            const $from = state.selection.$from
            for (let d = $from.depth; d > 0; d--) {
                const node = $from.node(d)
                if (node.type.name === 'tableHeader') return $from.index(d - 1) === 1
            }
            return false
        }"""
    )
    keyboard.type("Role")
    expect(headers.nth(1)).to_have_text("Role")
    keyboard.press("Tab")
    keyboard.type("Since")
    keyboard.press("Tab")
    keyboard.type("Ada")
    expect(editor(page).locator("table td").first).to_have_text("Ada")
    tool(page, "Add row below").click()
    expect(editor(page).locator("table tr")).to_have_count(4)
    tool(page, "Add column right").click()
    expect(editor(page).locator("table tr").first.locator("th")).to_have_count(4)
    # The new column is right of the caret's: Tab goes into it, and it goes again.
    keyboard.press("Tab")
    tool(page, "Delete column").click()
    expect(headers).to_have_text(["Name", "Role", "Since"])
    expect(editor(page).locator("table tr").first.locator("th")).to_have_count(3)
    # The table tools are shown only inside a table.
    click_end_of(page, "Tasks")
    expect(tool(page, "Add row below")).to_be_hidden()
    expect(tool(page, "Insert table")).to_have_attribute("aria-disabled", "false")

    # An image by address, with its description; data: and javascript: are refused.
    keyboard.press("Enter")
    image_dialog = page.get_by_role("dialog", name="Insert an image")
    before = editor_json(page)
    for hostile in ("data:image/png;base64,AAAA", "javascript:alert(1)", "https://"):
        tool(page, "Image").click()
        image_dialog.get_by_label("Image address").fill(hostile)
        image_dialog.get_by_role("button", name="Insert image").click()
        expect(image_dialog).to_contain_text("Use a full address starting with http:// or https://")
        expect(image_dialog.get_by_label("Image address")).to_have_attribute("aria-invalid", "true")
        image_dialog.get_by_role("button", name="Cancel").click()
        expect(image_dialog).to_be_hidden()
    assert editor_json(page) == before
    expect(editor(page).locator("img")).to_have_count(0)
    tool(page, "Image").click()
    image_dialog.get_by_label("Image address").fill("https://example.com/cat.png")
    image_dialog.get_by_label("Description").fill("A cat")
    image_dialog.get_by_role("button", name="Insert image").click()
    expect(image_dialog).to_be_hidden()
    expect(editor(page).locator('img[src="https://example.com/cat.png"]')).to_have_attribute(
        "alt", "A cat"
    )

    # A link from the toolbar's button over selected words; a script URL is refused.
    expect(tool(page, "Link")).to_have_attribute("title", "Link (Ctrl+K)")
    expect(tool(page, "Link")).to_have_attribute("aria-keyshortcuts", "Control+K")
    click_end_of(page, "Tasks")
    keyboard.type(" and notes")
    keyboard.press("Control+Shift+ArrowLeft")
    tool(page, "Link").click()
    link_dialog = page.get_by_role("dialog", name="Add a link")
    for hostile in ("javascript:alert(1)", "data:text/html,<script>alert(1)</script>", "ftp://x"):
        link_dialog.get_by_label("Address").fill(hostile)
        link_dialog.get_by_role("button", name="Add link").click()
        expect(link_dialog).to_contain_text("Use a full address starting with http://")
        expect(link_dialog).to_be_visible()
    link_dialog.get_by_label("Address").fill("https://example.com/notes")
    link_dialog.get_by_role("button", name="Add link").click()
    expect(link_dialog).to_be_hidden()
    expect(editor(page).locator('a[href="https://example.com/notes"]')).to_have_text("notes")

    # Ctrl+K with nothing selected: the address becomes the link's text.
    click_end_of(page, "Table")
    keyboard.type(" read ")
    keyboard.press("Control+k")
    expect(link_dialog).to_be_visible()
    expect(link_dialog.get_by_label("Address")).to_be_focused()
    keyboard.type("https://example.com/docs")
    keyboard.press("Enter")
    expect(link_dialog).to_be_hidden()
    expect(editor(page).locator('a[href="https://example.com/docs"]')).to_have_text(
        "https://example.com/docs"
    )
    # Inside the link, Ctrl+K edits it: the dialog knows the address.
    keyboard.press("ArrowLeft")
    keyboard.press("Control+k")
    edit_dialog = page.get_by_role("dialog", name="Edit link")
    expect(edit_dialog.get_by_label("Address")).to_have_value("https://example.com/docs")
    edit_dialog.get_by_label("Address").fill("javascript:void(0)")
    edit_dialog.get_by_role("button", name="Update link").click()
    expect(edit_dialog).to_contain_text("Use a full address starting with http://")
    edit_dialog.get_by_label("Address").fill("https://example.org/guide")
    edit_dialog.get_by_role("button", name="Update link").click()
    expect(edit_dialog).to_be_hidden()
    expect(editor(page).locator('a[href="https://example.org/guide"]')).to_have_count(1)
    expect(editor(page).locator('a[href^="javascript"], a[href^="data"]')).to_have_count(0)

    # The server holds all of it, with the attributes.
    served = expect_served_json(page, base_url, doc_id)
    found = nodes(served)
    kinds = [n["type"] for n in found]
    assert kinds.count("taskList") == 2
    assert kinds.count("taskItem") == 3
    tasks = [
        (text_of(n["content"][0]), n["attrs"]["checked"]) for n in found if n["type"] == "taskItem"
    ]
    assert tasks == [("Buy milk", True), ("Nested task", False), ("Write tests", False)]
    table = next(n for n in found if n["type"] == "table")
    rows = [[(cell["type"], text_of(cell)) for cell in row["content"]] for row in table["content"]]
    assert rows[0] == [("tableHeader", "Name"), ("tableHeader", "Role"), ("tableHeader", "Since")]
    assert rows[1] == [("tableCell", "Ada"), ("tableCell", ""), ("tableCell", "")]
    assert len(rows) == 4
    assert all(len(row) == 3 for row in rows)
    image = next(n for n in found if n["type"] == "image")
    assert image["attrs"]["src"] == "https://example.com/cat.png"
    assert image["attrs"]["alt"] == "A cat"
    links = [
        (n["text"], m["attrs"]["href"])
        for n in found
        for m in n.get("marks", [])
        if m["type"] == "link"
    ]
    assert links == [
        ("notes", "https://example.com/notes"),
        ("https://example.com/docs", "https://example.org/guide"),
    ]

    # Markdown keeps them: put back in place of the document, the JSON is unchanged
    # and the editor shows the same document.
    markdown = content(base_url, doc_id, "markdown")
    assert "- [x] Buy milk" in markdown
    assert "  - [ ] Nested task" in markdown
    assert "| Name | Role | Since |" in markdown
    assert "![A cat](https://example.com/cat.png)" in markdown
    assert "[notes](https://example.com/notes)" in markdown
    put = httpx.put(
        f"{base_url}/api/documents/{doc_id}/content",
        json={"format": "markdown", "content": markdown, "mode": "replace"},
    )
    assert put.status_code == 200, put.text
    assert content(base_url, doc_id, "json") == served
    assert content(base_url, doc_id, "markdown") == markdown
    expect_editor_json(page, served)

    # A second user gets it all.
    other = open_editor(new_context(), base_url, doc_id, "Uma")
    expect_editor_json(other, served)
    expect(editor(other).locator('li[data-checked="true"]')).to_have_count(1)
    expect(editor(other).locator("table th", has_text="Role")).to_be_visible()
    expect(editor(other).locator('img[alt="A cat"]')).to_have_count(1)
    expect(editor(other).locator('a[href="https://example.org/guide"]')).to_have_count(1)
    click_end_of(page, "Table")
    expect(caret_label(other, "Tess")).to_be_visible()
    expect(other.locator('#presence .avatar[data-name="Tess"]')).to_have_text("TE")
    SCREENSHOTS.mkdir(exist_ok=True)
    other.screenshot(path=str(SCREENSHOTS / "editor-tools-two-users.png"), full_page=True)
