"""The editor used from the keyboard alone, in real Chromium against a live
`collab serve`: the formatting toolbar is one Tab stop walked with the arrows, the
history drawer keeps focus where the user is, every control shows where focus is,
and axe-core finds nothing serious or critical on the list, the editor, the history
drawer or the link dialog."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Page, expect

from .support import CollabServer
from .test_editor_browser import (  # noqa: F401 (fixtures)
    SCREENSHOTS,
    ContextFactory,
    browser,
    editor,
    new_context,
    new_doc_id,
    open_editor,
    type_at_end,
)

AXE = Path(__file__).resolve().parent / "js" / "node_modules" / "axe-core" / "axe.min.js"

# What has focus, and whether it shows: an outline that is drawn, or the focus
# shadow (the accent colour) that inputs use instead. Transitions are let finish
# first, so that the style read is the one the user ends up seeing.
FOCUS_PROBE = """async () => {
    const el = document.activeElement
    if (!el || el === document.body) return null
    await Promise.all(el.getAnimations().map((animation) => animation.finished))
    const style = getComputedStyle(el)
    const transparent = (color) => color === 'transparent' || /, 0\\)$/.test(color)
    const outline =
        style.outlineStyle !== 'none' &&
        parseFloat(style.outlineWidth) > 0 &&
        !transparent(style.outlineColor)
    const shadow = style.boxShadow.includes('rgba(47, 91, 211')
    const name = el.getAttribute('aria-label') || el.textContent.trim().slice(0, 40)
    return {
        control: `${el.tagName.toLowerCase()}${el.id ? '#' + el.id : ''} "${name}"`,
        visible: outline || shadow,
        inToolbar: !!el.closest('#toolbar'),
        textbox: el.isContentEditable && el.getAttribute('role') === 'textbox',
        key: el,
    }
}"""


def focused(page: Page) -> dict[str, Any] | None:
    probe: dict[str, Any] | None = page.evaluate(
        "async (probe) => { const p = await eval(probe)(); if (p) delete p.key; return p }",
        FOCUS_PROBE,
    )
    return probe


def active_label(page: Page) -> str:
    label: str = page.evaluate(
        "() => document.activeElement.getAttribute('aria-label') ?? document.activeElement.id"
    )
    return label


def sweep_focus(page: Page, limit: int = 80) -> list[dict[str, Any]]:
    """Tabs through the page from its start until focus comes round again, and
    returns each control reached with whether its focus shows."""
    page.evaluate("() => { document.activeElement?.blur(); window.__seen = new Set() }")
    reached: list[dict[str, Any]] = []
    for _ in range(limit):
        page.keyboard.press("Tab")
        again = page.evaluate(
            "() => { const el = document.activeElement;"
            " const seen = window.__seen.has(el); window.__seen.add(el); return seen }"
        )
        probe = focused(page)
        if probe is None:
            continue
        if again:
            return reached
        reached.append(probe)
    raise AssertionError(f"focus never came round in {limit} Tabs: {reached}")


def invisible(reached: list[dict[str, Any]]) -> list[str]:
    """The controls whose focus does not show; the document itself is a text box
    where the caret shows it."""
    return [probe["control"] for probe in reached if not (probe["visible"] or probe["textbox"])]


def select(page: Page, start: int, end: int) -> None:
    """Selects from `start` to `end` in the document and puts focus there."""
    page.evaluate(
        "([from, to]) => document.querySelector('#editor .ProseMirror').editor"
        ".chain().focus().setTextSelection({ from, to }).run()",
        [start, end],
    )
    expect(editor(page)).to_be_focused()


def put_markdown(base_url: str, doc_id: str, markdown: str) -> None:
    httpx.post(f"{base_url}/api/documents", json={"id": doc_id}).raise_for_status()
    answer = httpx.put(
        f"{base_url}/api/documents/{doc_id}/content",
        json={"format": "markdown", "content": markdown, "mode": "replace"},
    )
    assert answer.status_code == 200, answer.text


RICH = """# Launch plan

Read the [brief](https://example.com/brief) first.

- [x] Book the room
- [ ] Send the invitations

| Who | What |
| --- | --- |
| Ada | Slides |

![The venue](https://example.com/venue.png)
"""


def test_toolbar_is_one_tab_stop_walked_with_arrows(
    live_server: CollabServer,
    new_context: ContextFactory,  # noqa: F811 (the fixture)
) -> None:
    page = open_editor(new_context(), live_server.base_url, new_doc_id(), "Kim")
    keyboard = page.keyboard
    toolbar = page.locator("#toolbar")
    type_at_end(page, "Make this bold and this italic")
    expect(editor(page)).to_be_focused()

    # Backwards from the document to the list link: the toolbar is one stop.
    stops: list[dict[str, Any]] = []
    while active_label(page) != "All documents":
        keyboard.press("Shift+Tab")
        probe = focused(page)
        assert probe is not None
        stops.append(probe)
        assert len(stops) < 30, stops
    assert [stop["inToolbar"] for stop in stops].count(True) == 1, stops
    expect(toolbar.locator("button[tabindex='0']")).to_have_count(1)

    # Into the toolbar from the document: its remembered button, Undo to begin with.
    select(page, 25, 31)  # "italic"
    keyboard.press("Shift+Tab")
    expect(toolbar.get_by_role("button", name="Undo")).to_be_focused()
    keyboard.press("ArrowRight")
    # Unavailable buttons stay on the row, focusable, marked aria-disabled.
    expect(toolbar.get_by_role("button", name="Redo")).to_be_focused()
    expect(toolbar.get_by_role("button", name="Redo")).to_have_attribute("aria-disabled", "true")
    keyboard.press("End")
    expect(toolbar.get_by_role("button", name="Insert table")).to_be_focused()
    keyboard.press("ArrowRight")
    expect(toolbar.get_by_role("button", name="Undo")).to_be_focused()
    keyboard.press("ArrowLeft")
    expect(toolbar.get_by_role("button", name="Insert table")).to_be_focused()
    keyboard.press("Home")
    expect(toolbar.get_by_role("button", name="Undo")).to_be_focused()
    expect(toolbar.locator("button[tabindex='0']")).to_have_count(1)

    # Italic by Space: the selected word changes, and the button says it is on.
    for _ in range(6):
        keyboard.press("ArrowRight")
    italic = toolbar.get_by_role("button", name="Italic")
    expect(italic).to_be_focused()
    keyboard.press("Space")
    expect(editor(page).locator("em")).to_have_text("italic")
    expect(italic).to_have_attribute("aria-pressed", "true")

    # Back in the document (the tool gave focus back); the toolbar remembers Italic.
    expect(editor(page)).to_be_focused()
    keyboard.press("Shift+Tab")
    expect(italic).to_be_focused()
    select(page, 11, 15)  # "bold"
    keyboard.press("Shift+Tab")
    keyboard.press("ArrowLeft")
    bold = toolbar.get_by_role("button", name="Bold")
    expect(bold).to_be_focused()
    keyboard.press("Enter")
    expect(editor(page).locator("strong")).to_have_text("bold")
    expect(bold).to_have_attribute("aria-pressed", "true")

    # Ctrl+K from the document (where the tool gave focus back) opens the link dialog
    # on its address field.
    expect(editor(page)).to_be_focused()
    keyboard.press("Control+k")
    dialog = page.get_by_role("dialog", name="Add a link")
    expect(dialog.get_by_label("Address")).to_be_focused()
    keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(editor(page)).to_be_focused()


def test_history_by_keyboard_keeps_focus_on_the_version(
    live_server: CollabServer,
    new_context: ContextFactory,  # noqa: F811 (the fixture)
) -> None:
    page = open_editor(new_context(), live_server.base_url, new_doc_id(), "Lou")
    keyboard = page.keyboard
    history = page.locator("#history")
    toggle = page.get_by_role("button", name="History", exact=True)
    type_at_end(page, "Before the review.")

    # Backwards from the document to History, opened with Enter.
    for _ in range(30):
        if active_label(page) == "history-toggle":
            break
        keyboard.press("Shift+Tab")
    keyboard.press("Enter")
    expect(history).to_be_visible()
    label = history.get_by_label("Version name")
    expect(label).to_be_focused()
    keyboard.type("Reviewed")
    keyboard.press("Enter")
    version = history.locator(".history__item--manual button").filter(has_text="Reviewed")
    expect(version).to_have_count(1)
    expect(label).to_have_value("")

    # Tab to the version, open it with Enter: the list is drawn again (the buttons are
    # new), and focus is on the same version's new button, not on <body>.
    for _ in range(10):
        if version.evaluate("(b) => b === document.activeElement"):
            break
        keyboard.press("Tab")
    version.evaluate("(b) => { b.__drawn = 'before' }")
    keyboard.press("Enter")
    expect(page.locator("#preview-bar")).to_contain_text("Previewing “Reviewed”")
    expect(version).to_have_attribute("aria-current", "true")
    page.wait_for_function(
        """() => {
            const el = document.activeElement
            return el.matches('#history .history__item--manual button[aria-current="true"]')
                && el.__drawn === undefined
        }"""
    )
    expect(version).to_be_focused()
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "history-panel-open-by-keyboard.png"))

    # Arrow-free list: Shift+Tab reaches the live document's entry, Enter goes back.
    keyboard.press("Shift+Tab")
    live = history.locator(".history__item--live button")
    expect(live).to_be_focused()
    keyboard.press("Enter")
    expect(page.locator("#preview-bar")).to_be_hidden()
    expect(live).to_be_focused()

    # Escape closes the drawer and gives focus back to its button.
    keyboard.press("Escape")
    expect(history).to_be_hidden()
    expect(toggle).to_be_focused()
    expect(toggle).to_have_attribute("aria-expanded", "false")


def test_every_control_shows_its_focus(
    live_server: CollabServer,
    new_context: ContextFactory,  # noqa: F811 (the fixture)
) -> None:
    base_url = live_server.base_url
    doc_id = new_doc_id()
    put_markdown(base_url, doc_id, "Focus sweep\n\nPlain text only, so that Tab leaves it.\n")
    context = new_context()

    page = context.new_page()
    page.goto(f"{base_url}/")
    expect(page.locator(f'.doc-row[data-id="{doc_id}"]')).to_be_visible()
    reached = sweep_focus(page)
    assert len(reached) >= 6, reached
    assert invisible(reached) == []

    page = open_editor(context, base_url, doc_id, "Max")
    # The editor puts the caret in the document once it is ready: sweep after that.
    expect(editor(page)).to_be_focused()
    reached = sweep_focus(page)
    controls = [probe["control"] for probe in reached]
    assert any("History" in control for control in controls), controls
    assert any(probe["textbox"] for probe in reached), controls
    assert invisible(reached) == []
    # The toolbar's other buttons are reached with the arrows.
    page.locator("#toolbar button[tabindex='0']").focus()
    page.keyboard.press("Home")
    along: list[dict[str, Any]] = []
    for _ in range(page.locator("#toolbar button:visible").count()):
        probe = focused(page)
        assert probe is not None
        along.append(probe)
        page.keyboard.press("ArrowRight")
    assert len(along) >= 15, along
    assert invisible(along) == []

    # With the history drawer open and a version in it.
    page.get_by_role("button", name="History", exact=True).click()
    page.locator("#history").get_by_label("Version name").fill("swept")
    page.keyboard.press("Enter")
    expect(page.locator("#history .history__item--manual")).to_contain_text("swept")
    reached = sweep_focus(page)
    controls = [probe["control"] for probe in reached]
    assert any("swept" in control for control in controls), controls
    assert any("Close version history" in control for control in controls), controls
    assert invisible(reached) == []


def axe_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's serious and critical findings on the page as it is."""
    page.add_script_tag(path=str(AXE))
    found: list[dict[str, Any]] = page.evaluate(
        """async () => {
            const { violations } = await axe.run(document, { resultTypes: ['violations'] })
            return violations
                .filter((v) => v.impact === 'serious' || v.impact === 'critical')
                .map((v) => ({
                    id: v.id,
                    impact: v.impact,
                    help: v.help,
                    nodes: v.nodes.map((n) => n.target.join(' ')).slice(0, 5),
                }))
        }"""
    )
    return found


def test_axe_finds_nothing_serious(
    live_server: CollabServer,
    new_context: ContextFactory,  # noqa: F811 (the fixture)
) -> None:
    base_url = live_server.base_url
    doc_id = new_doc_id()
    put_markdown(base_url, doc_id, RICH)
    context = new_context()

    page = context.new_page()
    page.goto(f"{base_url}/")
    expect(page.locator(f'.doc-row[data-id="{doc_id}"]')).to_contain_text("Launch plan")
    assert axe_violations(page) == [], "the document list"

    page = open_editor(context, base_url, doc_id, "Noa")
    expect(editor(page).locator("table th")).to_have_count(2)
    expect(editor(page).locator('li[data-checked="true"]')).to_have_count(1)
    assert axe_violations(page) == [], "the editor"
    editor(page).locator("td", has_text="Slides").click()
    expect(page.get_by_role("button", name="Add row below")).to_be_visible()
    assert axe_violations(page) == [], "the editor, in a table"

    page.get_by_role("button", name="History", exact=True).click()
    page.locator("#history").get_by_label("Version name").fill("audited")
    page.keyboard.press("Enter")
    expect(page.locator("#history .history__item--manual")).to_contain_text("audited")
    assert axe_violations(page) == [], "the history drawer"
    page.keyboard.press("Escape")

    editor(page).locator("p", has_text="first").click()
    page.keyboard.press("Control+k")
    expect(page.get_by_role("dialog", name="Add a link")).to_be_visible()
    assert axe_violations(page) == [], "the link dialog"
