"""The bundled web editor, driven in real Chromium against a live `collab serve`.

Every test opens its own document (a fresh uuid) and waits on what the user would
see, never on time.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Locator,
    Page,
    ViewportSize,
    expect,
    sync_playwright,
)

from .conftest import Cluster

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-quic",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[1] / "test-output"
TIMEOUT_MS = 15_000
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}

ContextFactory = Callable[[], BrowserContext]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM}")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def new_context(browser: Browser) -> Iterator[ContextFactory]:
    """Factory for isolated browser profiles (own storage, own IndexedDB)."""
    contexts: list[BrowserContext] = []

    def make() -> BrowserContext:
        context = browser.new_context(viewport=VIEWPORT)
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()


def new_doc_id() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


def editor(page: Page) -> Locator:
    return page.locator("#editor .ProseMirror")


def status(page: Page) -> Locator:
    return page.locator("#status")


def open_editor(context: BrowserContext, base_url: str, doc_id: str, name: str) -> Page:
    """Opens /d/{doc_id}, answers the name dialog and waits until the document is live."""
    page = context.new_page()
    page.goto(f"{base_url}/d/{doc_id}")
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_label("Your name").fill(name)
    dialog.get_by_role("button", name="Start editing").click()
    expect(dialog).to_be_hidden()
    expect(status(page)).to_have_attribute("data-state", "connected")
    return page


def type_at_end(page: Page, text: str, *, new_paragraph: bool = False) -> None:
    """Types at the end of the document. Callers make sure no collaborator's caret
    sits there: Chromium can misplace the selection next to a caret widget."""
    # A click right of the last line: ProseMirror maps the coordinates itself, where
    # the End key goes through the DOM selection.
    last_block = editor(page).locator(":scope > *").last
    box = last_block.bounding_box()
    assert box is not None
    last_block.click(position={"x": box["width"] - 2, "y": box["height"] - 4})
    if new_paragraph:
        page.keyboard.press("Enter")
    page.keyboard.type(text)


def leave_editor(page: Page, *, seen_by: Page) -> None:
    """Blurs the editor, and waits until the other page no longer shows any caret."""
    page.locator("#doc-name").click()
    expect(seen_by.locator("#editor .collaboration-carets__caret")).to_have_count(0)


def caret_label(page: Page, name: str) -> Locator:
    return page.locator(f'#editor .collaboration-carets__label[data-name="{name}"]')


def expect_server_text(
    page: Page, doc_id: str, *texts: str, token: str = "", prefix: str = ""
) -> None:
    """Waits until the server's plain-text view of the document holds every text."""
    # One fetch in flight at a time; the predicate itself stays synchronous because
    # wait_for_function does not await a returned promise.
    page.wait_for_function(
        """([id, texts, token, prefix]) => {
            const probe = (window.__serverText ??= { body: "", pending: false })
            if (!probe.pending) {
                probe.pending = true
                const headers = token ? { Authorization: `Bearer ${token}` } : {}
                fetch(`${prefix}/api/documents/${encodeURIComponent(id)}/text`, { headers })
                    .then((response) => (response.ok ? response.text() : ""))
                    .catch(() => "")
                    .then((body) => { probe.body = body; probe.pending = false })
            }
            return texts.every((text) => probe.body.includes(text))
        }""",
        arg=[doc_id, list(texts), token, prefix],
        polling=250,
        timeout=TIMEOUT_MS,
    )


def test_two_users_see_each_others_text_and_carets(
    live_server: Any, new_context: ContextFactory
) -> None:
    base_url = live_server.base_url
    doc_id = new_doc_id()
    alice = open_editor(new_context(), base_url, doc_id, "Alice Liddell")
    bob = open_editor(new_context(), base_url, doc_id, "Bob Marley")

    type_at_end(alice, "Meeting notes")
    alice.keyboard.press("Control+Alt+1")
    alice.keyboard.press("Enter")
    alice.keyboard.type("Alice: the sync engine is ready for review.")
    expect(editor(bob)).to_contain_text("Alice: the sync engine is ready for review.")
    expect(bob.locator("#editor h1")).to_contain_text("Meeting notes")
    expect(caret_label(bob, "Alice Liddell")).to_be_visible()
    leave_editor(alice, seen_by=bob)

    type_at_end(bob, "Bob: I will test it offline this afternoon.", new_paragraph=True)
    expect(editor(alice)).to_contain_text("Bob: I will test it offline this afternoon.")

    # Each sees the other's caret with their name, and both faces in "who is here".
    expect(caret_label(alice, "Bob Marley")).to_be_visible()
    alice.locator("#editor p").first.click()
    expect(caret_label(bob, "Alice Liddell")).to_be_visible()
    expect(alice.locator('#presence .avatar[data-name="Bob Marley"]')).to_have_text("BM")
    expect(bob.locator('#presence .avatar[data-name="Alice Liddell"]')).to_have_text("AL")

    # Bob selects two words; Alice sees his selection in his colour.
    bob.keyboard.press("Control+Shift+ArrowLeft")
    bob.keyboard.press("Control+Shift+ArrowLeft")
    expect(alice.locator(".ProseMirror-yjs-selection")).not_to_have_count(0)

    SCREENSHOTS.mkdir(exist_ok=True)
    alice.screenshot(path=str(SCREENSHOTS / "two-users.png"))

    # Someone who arrives later gets the whole document from the server.
    carol = open_editor(new_context(), base_url, doc_id, "Carol")
    expect(editor(carol)).to_contain_text("Alice: the sync engine is ready for review.")
    expect(editor(carol)).to_contain_text("Bob: I will test it offline this afternoon.")
    expect(carol.locator("#presence .avatar")).to_have_count(3)

    # A reload keeps the text (and does not ask for the name again).
    bob.reload()
    expect(status(bob)).to_have_attribute("data-state", "connected")
    expect(bob.get_by_role("dialog")).to_be_hidden()
    expect(editor(bob)).to_contain_text("Alice: the sync engine is ready for review.")
    expect(editor(bob)).to_contain_text("Bob: I will test it offline this afternoon.")
    expect_server_text(bob, doc_id, "Meeting notes", "ready for review", "offline this afternoon")


def test_offline_edits_merge_on_reconnect(live_server: Any, new_context: ContextFactory) -> None:
    base_url = live_server.base_url
    doc_id = new_doc_id()
    alice_context = new_context()
    alice = open_editor(alice_context, base_url, doc_id, "Alice")
    bob = open_editor(new_context(), base_url, doc_id, "Bob")

    type_at_end(alice, "Shared first line.")
    expect(editor(bob)).to_contain_text("Shared first line.")
    leave_editor(alice, seen_by=bob)

    alice_context.set_offline(True)
    expect(status(alice)).to_have_attribute("data-state", "offline")
    type_at_end(alice, "Written by Alice while offline.", new_paragraph=True)
    alice.locator("#doc-name").click()
    type_at_end(bob, "Written by Bob while Alice was away.", new_paragraph=True)
    expect(editor(alice)).not_to_contain_text("Written by Bob")
    expect(editor(bob)).not_to_contain_text("Written by Alice")

    alice_context.set_offline(False)
    expect(status(alice)).to_have_attribute("data-state", "connected")
    for page in (alice, bob):
        expect(editor(page)).to_contain_text("Shared first line.")
        expect(editor(page)).to_contain_text("Written by Alice while offline.")
        expect(editor(page)).to_contain_text("Written by Bob while Alice was away.")
    expect_server_text(
        bob, doc_id, "Written by Alice while offline.", "Written by Bob while Alice was away."
    )


def test_document_list_shows_and_creates_documents(
    live_server: Any, new_context: ContextFactory
) -> None:
    base_url = live_server.base_url
    page = new_context().new_page()
    existing = new_doc_id()
    created = page.request.post(f"{base_url}/api/documents", data={"id": existing})
    assert created.status == 201, created.text()

    page.goto(f"{base_url}/")
    row = page.locator(f'.doc-row[data-id="{existing}"]')
    expect(row).to_be_visible()
    expect(row).to_contain_text("just now")

    # A name that is taken is reported, with a way to open it.
    page.get_by_label("New document name").fill(existing)
    page.get_by_role("button", name="New document").click()
    expect(page.locator("#create-message")).to_contain_text("already exists")
    expect(page.get_by_role("button", name="Open it")).to_be_visible()

    # A named document: the button creates it and opens the editor on it.
    named = new_doc_id()
    page.get_by_label("New document name").fill(named)
    page.get_by_role("button", name="New document").click()
    page.wait_for_url(f"{base_url}/d/{named}")
    expect(page.locator("#doc-name")).to_have_text(named)

    # Without a name the server picks one.
    page.goto(f"{base_url}/")
    page.get_by_role("button", name="New document").click()
    page.wait_for_url(f"{base_url}/d/**")
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Your name").fill("Dana")
    dialog.get_by_role("button", name="Start editing").click()
    expect(status(page)).to_have_attribute("data-state", "connected")
    expect(editor(page)).to_be_editable()


def test_deleting_a_document_disconnects_and_explains(
    live_server: Any, new_context: ContextFactory
) -> None:
    base_url = live_server.base_url
    doc_id = new_doc_id()
    page = open_editor(new_context(), base_url, doc_id, "Erin")
    type_at_end(page, "Soon to be gone.")
    expect_server_text(page, doc_id, "Soon to be gone.")

    # Deleted while open: the server closes the socket (4410) and the editor stops.
    assert page.request.delete(f"{base_url}/api/documents/{doc_id}").status == 204
    expect(page.locator("#banner")).to_contain_text("deleted")
    expect(status(page)).to_have_attribute("data-state", "closed")
    expect(editor(page)).not_to_be_editable()

    # Opened after the deletion: the upgrade is refused, and the page says why
    # instead of spinning.
    late = new_context().new_page()
    late.goto(f"{base_url}/d/{doc_id}")
    expect(late.locator("#banner")).to_contain_text("deleted")
    expect(status(late)).to_have_attribute("data-state", "closed")


@pytest.fixture(scope="module")
def secured_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from .support import CollabServer, migrate
    from .test_auth import SECRET

    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('secured') / 'collab.db'}"
    migrate(url)
    server = CollabServer(url, {"COLLAB_AUTH_SECRET": SECRET}).start()
    yield server
    server.stop()


def test_tokens_in_the_editor(secured_server: Any, new_context: ContextFactory) -> None:
    from .test_auth import token

    base_url = secured_server.base_url
    doc_id = new_doc_id()
    # The token names the user: the editor shows that name and asks for none.
    member = token(sub="wren", name="Wren Ashby")
    writer = new_context().new_page()
    writer.goto(f"{base_url}/d/{doc_id}?token={member}")
    expect(status(writer)).to_have_attribute("data-state", "connected")
    expect(writer.get_by_role("dialog")).to_be_hidden()
    expect(writer.locator("#presence .avatar--self")).to_have_attribute("data-name", "Wren Ashby")
    type_at_end(writer, "Only for members.")
    expect_server_text(writer, doc_id, "Only for members.", token=member)

    # A read-only link: the text arrives, typing is off and the page says so; the
    # writer sees the reader under the token's name (its sub: the token has no name).
    reader = new_context().new_page()
    reader.goto(f"{base_url}/d/{doc_id}?token={token(sub='reed', mode='ro')}")
    expect(editor(reader)).to_contain_text("Only for members.")
    expect(reader.get_by_role("dialog")).to_be_hidden()
    expect(reader.locator("#readonly-badge")).to_be_visible()
    expect(editor(reader)).not_to_be_editable()
    expect(editor(reader)).to_have_attribute("aria-readonly", "true")
    expect(writer.locator("#presence [data-name='reed']")).to_have_count(1)

    # Versions record who saved them.
    toggle = writer.get_by_role("button", name="History", exact=True)
    toggle.click()
    writer.locator("#history").get_by_label("Version name").fill("signed")
    writer.locator("#history").get_by_role("button", name="Save version").click()
    expect(writer.locator("#history .history__item--manual")).to_contain_text("by wren")

    # No token at all: a clear refusal instead of a spinner, and no text.
    stranger = new_context().new_page()
    stranger.goto(f"{base_url}/d/{doc_id}")
    expect(stranger.locator("#banner")).to_contain_text("access")
    expect(editor(stranger)).not_to_contain_text("Only for members.")


@pytest.fixture(scope="module")
def host_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from .support import HostServer, migrate

    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('host') / 'collab.db'}"
    migrate(url)
    server = HostServer(url).start()
    yield server
    server.stop()


def test_editor_mounted_under_a_prefix(host_server: Any, new_context: ContextFactory) -> None:
    """collab mounted at /collab in a FastAPI host with its own sign-in (a cookie):
    the editor's assets, API calls and socket all go under the prefix, and the name
    comes from the host's grant."""
    from .support import HostServer

    doc_id = new_doc_id()
    context = new_context()
    context.add_cookies([{"name": "session", "value": "carol:rw", "url": host_server.url}])
    page = context.new_page()
    failed: list[str] = []
    page.on("requestfailed", lambda request: failed.append(request.url))
    page.on(
        "response",
        lambda response: failed.append(response.url) if response.status >= 400 else None,
    )
    page.goto(f"{host_server.collab_url}/d/{doc_id}")
    expect(status(page)).to_have_attribute("data-state", "connected")
    expect(page.get_by_role("dialog")).to_be_hidden()
    expect(page.locator("#presence .avatar--self")).to_have_attribute("data-name", "Carol Danvers")
    type_at_end(page, "Typed under a prefix.")
    expect_server_text(page, doc_id, "Typed under a prefix.", prefix=HostServer.PREFIX)
    # "All documents" leads to the list under the prefix, which lists this one.
    page.locator("#back-link").click()
    expect(page).to_have_url(f"{host_server.collab_url}/")
    expect(page.get_by_text(doc_id)).to_be_visible()
    assert failed == []


def test_history_panel_saves_previews_and_restores(
    live_server: Any, new_context: ContextFactory
) -> None:
    base_url = live_server.base_url
    doc_id = new_doc_id()
    page = open_editor(new_context(), base_url, doc_id, "Hana")
    history = page.locator("#history")
    toggle = page.get_by_role("button", name="History", exact=True)

    type_at_end(page, "First draft.")
    expect_server_text(page, doc_id, "First draft.")

    # Save a named version from the drawer.
    toggle.click()
    expect(history).to_be_visible()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(history.get_by_label("Version name")).to_be_focused()
    history.get_by_label("Version name").fill("v1")
    history.get_by_role("button", name="Save version").click()
    v1 = history.locator(".history__item--manual").filter(has_text="v1")
    expect(v1).to_have_count(1)
    expect(v1).to_contain_text("just now")

    # Escape closes the drawer and gives focus back to its button.
    page.keyboard.press("Escape")
    expect(history).to_be_hidden()
    expect(toggle).to_be_focused()

    type_at_end(page, "Second thoughts.", new_paragraph=True)
    expect_server_text(page, doc_id, "First draft.", "Second thoughts.")

    # The saved version is listed; selecting it previews it in place of the editor.
    toggle.click()
    expect(v1).to_have_count(1)
    v1.get_by_role("button").click()
    preview = page.locator("#preview .ProseMirror")
    expect(page.locator("#preview-bar")).to_contain_text("Previewing “v1”")
    expect(preview).to_contain_text("First draft.")
    expect(preview).not_to_contain_text("Second thoughts.")
    expect(preview).not_to_be_editable()
    expect(editor(page)).to_be_hidden()

    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "history.png"))

    # Restoring changes the document for everyone, and keeps a backup version.
    other = open_editor(new_context(), base_url, doc_id, "Ivo")
    expect(editor(other)).to_contain_text("Second thoughts.")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Restore this version").click()
    expect(page.locator("#preview-bar")).to_be_hidden()
    expect(history.locator(".history__message")).to_contain_text("Restored “v1”")
    expect(history.locator(".history__item--restore")).to_have_count(1)
    for viewer in (page, other):
        expect(editor(viewer)).to_contain_text("First draft.")
        expect(editor(viewer)).not_to_contain_text("Second thoughts.")
    history.get_by_role("button", name="Close version history").click()
    expect(history).to_be_hidden()


def test_two_users_on_two_processes_edit_together(
    cluster: Cluster, new_context: ContextFactory
) -> None:
    a, b = cluster.start_many(2)
    doc_id = new_doc_id()
    alice = open_editor(new_context(), a.base_url, doc_id, "Alice Liddell")
    bob = open_editor(new_context(), b.base_url, doc_id, "Bob Marley")

    type_at_end(alice, "Written by Alice on process A.")
    expect(editor(bob)).to_contain_text("Written by Alice on process A.")
    expect(caret_label(bob, "Alice Liddell")).to_be_visible()
    leave_editor(alice, seen_by=bob)

    type_at_end(bob, "Written by Bob on process B.", new_paragraph=True)
    expect(editor(alice)).to_contain_text("Written by Bob on process B.")
    expect(alice.locator('#presence .avatar[data-name="Bob Marley"]')).to_have_text("BM")
    expect(bob.locator('#presence .avatar[data-name="Alice Liddell"]')).to_have_text("AL")

    # Bob closes his tab: Alice's "who is here" loses him, across processes.
    bob.close()
    expect(alice.locator('#presence .avatar[data-name="Bob Marley"]')).to_have_count(0)
