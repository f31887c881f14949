"""Sharing, token renewal and export in the bundled editor, in real Chromium against a
real `collab serve` (with COLLAB_AUTH_SECRET where tokens matter)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect

from .test_auth import SECRET, token
from .test_editor_browser import (
    SCREENSHOTS,
    ContextFactory,
    browser,
    editor,
    expect_server_text,
    new_context,
    new_doc_id,
    open_editor,
    secured_server,
    status,
    type_at_end,
)

__all__ = ["browser", "new_context", "secured_server"]  # fixtures

# A token that expires during the test: the editor renews it a third of its time early.
TTL = 10


def _join_as_guest(context: Any, link: str, name: str) -> Page:
    page = context.new_page()
    page.goto(link)
    dialog = page.get_by_role("dialog", name="What should we call you?")
    expect(dialog).to_be_visible()  # a guest names themselves
    dialog.get_by_label("Your name").fill(name)
    dialog.get_by_role("button", name="Start editing").click()
    expect(status(page)).to_have_attribute("data-state", "connected")
    return page


def test_share_links_grant_the_access_chosen(
    secured_server: Any, new_context: ContextFactory
) -> None:
    base_url = secured_server.base_url
    doc_id = new_doc_id()
    owner = token(sub="olive", name="Olive", docs=[doc_id])
    page = new_context().new_page()
    page.goto(f"{base_url}/d/{doc_id}?token={owner}")
    expect(status(page)).to_have_attribute("data-state", "connected")
    type_at_end(page, "Plans for the spring.")
    expect_server_text(page, doc_id, "Plans for the spring.", token=owner)

    page.locator("#share").click()
    dialog = page.get_by_role("dialog", name="Share this document")
    expect(dialog).to_be_visible()
    SCREENSHOTS.mkdir(exist_ok=True)
    dialog.get_by_role("button", name="Create link").click()
    expect(dialog.locator(".share__meta")).to_contain_text("Can view")
    page.screenshot(path=str(SCREENSHOTS / "share-dialog.png"))
    view_link = dialog.get_by_label("Link to share").input_value()
    assert view_link.startswith(f"{base_url}/d/{doc_id}?token=")
    dialog.get_by_role("button", name="Close").click()

    viewer = _join_as_guest(new_context(), view_link, "Vera")
    expect(editor(viewer)).to_contain_text("Plans for the spring.")
    expect(viewer.locator("#readonly-badge")).to_be_visible()
    expect(editor(viewer)).not_to_be_editable()

    page.locator("#share").click()
    dialog.get_by_label("Can edit").check()
    dialog.get_by_role("button", name="Create link").click()
    expect(dialog.locator(".share__meta")).to_contain_text("Can edit")
    edit_link = dialog.get_by_label("Link to share").input_value()
    dialog.get_by_role("button", name="Close").click()
    editor_guest = _join_as_guest(new_context(), edit_link, "Ezra")
    expect(editor(editor_guest)).to_be_editable()
    type_at_end(editor_guest, " Ezra agrees.")
    expect_server_text(page, doc_id, "Ezra agrees.", token=owner)
    expect(editor(page)).to_contain_text("Ezra agrees.")
    expect(editor(viewer)).to_contain_text("Ezra agrees.")


def test_a_short_token_is_renewed_and_editing_goes_on(
    secured_server: Any, new_context: ContextFactory
) -> None:
    base_url = secured_server.base_url
    doc_id = new_doc_id()
    short = token(sub="rhea", name="Rhea", docs=[doc_id], ttl=TTL, iat=int(time.time()))
    expires = time.time() + TTL
    page = new_context().new_page()
    page.goto(f"{base_url}/d/{doc_id}?token={short}")
    expect(status(page)).to_have_attribute("data-state", "connected")
    type_at_end(page, "Before expiry.")
    # The address carries a new token before the old one runs out.
    page.wait_for_function(
        "old => new URLSearchParams(location.search).get('token') !== old",
        arg=short,
        timeout=25_000,
    )
    renewed = page.evaluate("new URLSearchParams(location.search).get('token')")
    # Past the old token's end (and the server's 5 s leeway): it no longer opens a socket.
    page.wait_for_function("end => Date.now() / 1000 > end", arg=expires + 6, timeout=30_000)
    expect(status(page)).to_have_attribute("data-state", "connected")
    expect(page.locator("#banner")).to_be_hidden()
    type_at_end(page, " After expiry.")
    expect_server_text(page, doc_id, "Before expiry.", "After expiry.", token=renewed)
    # "Back to documents" keeps the current token.
    back, current = page.evaluate(
        """() => [document.getElementById('back-link').getAttribute('href'),
                  new URLSearchParams(location.search).get('token')]"""
    )
    assert back.endswith(f"/?token={current}")


def test_export_downloads_markdown_and_html_and_prints_the_document_alone(
    live_server: Any, new_context: ContextFactory
) -> None:
    doc_id = new_doc_id()
    page = open_editor(new_context(), live_server.base_url, doc_id, "Petra")
    type_at_end(page, "# Quarterly plan")
    page.keyboard.press("Enter")
    page.keyboard.type("Ship the **export** menu.")
    expect_server_text(page, doc_id, "Quarterly plan", "Ship the export menu.")
    expect(page).to_have_title("Quarterly plan · collab")

    toggle = page.get_by_role("button", name="Export")
    for item, name, expected in (
        (
            "Download Markdown (.md)",
            "Quarterly plan.md",
            "# Quarterly plan\n\nShip the **export** menu.",
        ),
        ("Download HTML (.html)", "Quarterly plan.html", "<h1>Quarterly plan</h1>"),
    ):
        toggle.click()
        with page.expect_download() as download:
            page.get_by_role("button", name=item).click()
        assert download.value.suggested_filename == name
        body = Path(download.value.path()).read_text(encoding="utf-8")
        assert expected in body, body
    html = Path(download.value.path()).read_text(encoding="utf-8")
    assert "<title>Quarterly plan</title>" in html
    assert "<strong>export</strong>" in html

    # Print: only the document.
    page.emulate_media(media="print")
    for chrome in ("header.topbar", ".toolbar-wrap", "#presence", "#status"):
        expect(page.locator(chrome)).to_be_hidden()
    expect(editor(page)).to_be_visible()
    expect(editor(page)).to_contain_text("Quarterly plan")
    page.screenshot(path=str(SCREENSHOTS / "print-preview.png"), full_page=True)
    page.emulate_media(media="screen")
    expect(page.locator("header.topbar")).to_be_visible()


def test_a_host_refresh_url_renews_the_token(tmp_path: Path, new_context: ContextFactory) -> None:
    """With COLLAB_TOKEN_REFRESH_URL the page asks the host application (signed in by
    its own cookie) for a fresh token instead of collab."""
    from .support import HostServer, migrate

    url = f"sqlite+aiosqlite:///{tmp_path / 'collab.db'}"
    migrate(url)
    events = tmp_path / "events.jsonl"
    host = HostServer(
        url,
        {
            "COLLAB_AUTH_SECRET": SECRET,
            "COLLAB_TOKEN_REFRESH_URL": "/host/token",
            "HOST_EVENTS": str(events),
            "HOST_TOKEN_TTL": str(TTL),
        },
    ).start()
    try:
        doc_id = new_doc_id()
        short = token(sub="carol", name="Carol Danvers", docs=[doc_id], ttl=TTL)
        expires = time.time() + TTL
        context = new_context()
        context.add_cookies([{"name": "session", "value": "carol:rw", "url": host.url}])
        page = context.new_page()
        page.goto(f"{host.collab_url}/d/{doc_id}?token={short}")
        expect(status(page)).to_have_attribute("data-state", "connected")
        type_at_end(page, "Before expiry.")
        page.wait_for_function(
            "old => new URLSearchParams(location.search).get('token') !== old",
            arg=short,
            timeout=25_000,
        )
        assert any('"hook": "refresh"' in line for line in events.read_text().splitlines())
        renewed = page.evaluate("new URLSearchParams(location.search).get('token')")
        page.wait_for_function("end => Date.now() / 1000 > end", arg=expires + 6, timeout=30_000)
        expect(status(page)).to_have_attribute("data-state", "connected")
        type_at_end(page, " After expiry.")
        expect_server_text(
            page, doc_id, "Before expiry.", "After expiry.", token=renewed, prefix=host.PREFIX
        )
    finally:
        host.stop()
