"""The connection banner's wording in real Chromium against a `collab serve` of the
test's own, stopped and started again on the same port: a restart is called a
restart for as long as it lasts, never a network problem; offline is called offline."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from .support import CollabServer, migrate
from .test_editor_browser import (  # noqa: F401 (fixtures)
    ContextFactory,
    browser,
    editor,
    new_context,
    new_doc_id,
    open_editor,
    status,
    type_at_end,
)

# How long the restart wording must hold: well past the moment the old banner gave way.
HOLDS_FOR_S = 6.0


@pytest.fixture
def restartable(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CollabServer]:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('restart') / 'collab.db'}"
    migrate(url)
    server = CollabServer(url).start()
    yield server
    server.stop()


def test_banner_says_restarting_not_network(
    restartable: CollabServer,
    new_context: ContextFactory,  # noqa: F811 (the fixture)
) -> None:
    context = new_context()
    doc_id = new_doc_id()
    page = open_editor(context, restartable.base_url, doc_id, "Ola")
    banner = page.locator("#banner")
    type_at_end(page, "Kept across the restart.")
    expect(banner).to_be_hidden()
    # Everything the banner ever says, as it says it.
    page.evaluate(
        """() => {
            const banner = document.getElementById('banner')
            window.__said = []
            new MutationObserver(() => {
                if (!banner.hidden) window.__said.push(banner.textContent)
            }).observe(banner, { childList: true, subtree: true, characterData: true,
                                 attributes: true })
        }"""
    )

    restartable.stop()  # SIGTERM: the server closes its sockets with 1012
    expect(banner).to_contain_text("restarting")
    expect(status(page)).to_have_attribute("data-state", "reconnecting")
    deadline = time.monotonic() + HOLDS_FOR_S
    while time.monotonic() < deadline:
        shown = banner.text_content() or ""
        assert "restarting" in shown, shown
        assert "network" not in shown.lower(), shown
        page.wait_for_timeout(250)
    said: list[str] = page.evaluate("() => window.__said")
    assert said, "the banner never changed"
    assert all("network" not in text.lower() for text in said), said
    assert all("restarting" in text for text in said), said

    # Back on the same port: the editor reconnects by itself and the banner goes.
    restartable.start()
    expect(status(page)).to_have_attribute("data-state", "connected", timeout=30_000)
    expect(banner).to_be_hidden()
    type_at_end(page, " And after it.")
    expect(editor(page)).to_contain_text("Kept across the restart. And after it.")

    # Offline is said to be offline, and passes when the network is back.
    context.set_offline(True)
    expect(banner).to_contain_text("You\u2019re offline")
    expect(status(page)).to_have_attribute("data-state", "offline")
    context.set_offline(False)
    expect(status(page)).to_have_attribute("data-state", "connected", timeout=30_000)
    expect(banner).to_be_hidden()
