"""The document list's search, in real Chromium against a live `collab serve`: every
typed word is looked for in titles and ids, the count is announced, nothing matching
says so, Escape clears."""

from __future__ import annotations

import re
import uuid

import httpx
from playwright.sync_api import expect

from .support import CollabServer
from .test_editor_browser import (  # noqa: F401 (fixtures)
    SCREENSHOTS,
    ContextFactory,
    browser,
    new_context,
)


def make_document(base_url: str, doc_id: str, markdown: str) -> None:
    httpx.post(f"{base_url}/api/documents", json={"id": doc_id}).raise_for_status()
    answer = httpx.put(
        f"{base_url}/api/documents/{doc_id}/content",
        json={"format": "markdown", "content": markdown, "mode": "replace"},
    )
    assert answer.status_code == 200, answer.text


def test_search_filters_by_title_and_id(
    live_server: CollabServer,
    new_context: ContextFactory,  # noqa: F811 (the fixture)
) -> None:
    base_url = live_server.base_url
    tag = uuid.uuid4().hex[:8]
    documents = {
        f"budget-{tag}": f"# Quarterly budget {tag}\n\nNumbers.",
        f"roadmap-{tag}": f"# Product roadmap {tag}\n\nPlans.",
        f"review-{tag}": f"Budget review {tag}\n\nNotes.",
    }
    for doc_id, markdown in documents.items():
        make_document(base_url, doc_id, markdown)

    page = new_context().new_page()
    page.goto(f"{base_url}/")
    rows = page.locator(f'.doc-row[data-id$="-{tag}"]')
    expect(rows).to_have_count(3)
    expect(page.locator(f'.doc-row[data-id="budget-{tag}"]')).to_contain_text(
        f"Quarterly budget {tag}"
    )
    search = page.get_by_label("Filter documents by title or name")
    result = page.locator("#doc-search-result")
    expect(result).to_have_attribute("aria-live", "polite")
    expect(search).to_have_attribute("aria-describedby", "doc-search-result")

    # Every word, in any order and case, in the title or the id.
    search.fill(f"BUDGET {tag}")
    expect(rows).to_have_count(2)
    expect(page.locator(".doc-row")).to_have_count(2)
    expect(result).to_have_text(re.compile(r"^2 of \d+ documents match$"))
    search.fill(f"{tag} quarterly")
    expect(page.locator(".doc-row")).to_have_count(1)
    expect(page.locator(".doc-row")).to_have_attribute("data-id", f"budget-{tag}")
    search.fill(f"roadmap-{tag}")
    expect(page.locator(".doc-row")).to_have_count(1)
    expect(result).to_have_text(re.compile(r"^1 of \d+ documents match$"))

    search.fill(f"budget {tag}")
    expect(rows).to_have_count(2)
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "document-list-search.png"))

    # Nonsense, and words that would mean something to a regular expression.
    for nonsense in (f"zebra {tag}", ".*", "(", "x" * 2000):
        search.fill(nonsense)
        expect(page.locator(".doc-row")).to_have_count(0)
        expect(page.locator("#doc-list .empty")).to_have_text(f"No documents match “{nonsense}”.")
        expect(result).to_have_text(re.compile(r"^0 of \d+ documents match$"))

    # Escape clears the search: everything is back, and nothing is announced.
    search.press("Escape")
    expect(search).to_have_value("")
    expect(rows).to_have_count(3)
    expect(result).to_have_text("")
    expect(search).to_be_focused()
