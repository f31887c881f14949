"""The editor's document (the XmlFragment "default") as plain text, ProseMirror JSON,
HTML or Markdown, and any of the four parsed to checked ProseMirror JSON and written
back in one transaction."""

from __future__ import annotations

from typing import Any

from pycrdt import Doc

from ..plaintext import plain_text
from . import html, markdown, ydoc
from .schema import MAX_TEXT, InvalidContent, check

FORMATS = ("text", "json", "html", "markdown")
MODES = ("replace", "append")
MEDIA_TYPES = {
    "text": "text/plain; charset=utf-8",
    "json": "application/json",
    "html": "text/html; charset=utf-8",
    "markdown": "text/markdown; charset=utf-8",
}

__all__ = [
    "FORMATS",
    "MEDIA_TYPES",
    "MODES",
    "InvalidContent",
    "change",
    "parse",
    "to_html",
    "to_json",
    "to_markdown",
    "to_text",
    "write",
]


def to_json(doc: Doc[Any]) -> dict[str, Any]:
    return ydoc.read(doc)


def to_html(doc: Doc[Any]) -> str:
    return html.render(ydoc.read(doc))


def to_markdown(doc: Doc[Any]) -> str:
    return markdown.render(ydoc.read(doc))


def to_text(doc: Doc[Any]) -> str:
    return plain_text(doc.get_update())


def parse(format: str, content: object) -> dict[str, Any]:
    """Content in ``format`` as checked ProseMirror JSON; InvalidContent if it is not."""
    if format not in FORMATS:
        raise InvalidContent(f"format must be one of {', '.join(FORMATS)}")
    if format == "json":
        return check(content)
    if not isinstance(content, str):
        raise InvalidContent(f"{format} content must be a string")
    if len(content) > MAX_TEXT:
        raise InvalidContent(f"the content is longer than {MAX_TEXT} characters")
    if format == "text":
        parsed = _from_text(content)
    elif format == "html":
        parsed = html.parse(content)
    else:
        parsed = markdown.parse(content)
    return check(parsed)


def write(doc: Doc[Any], content: dict[str, Any], mode: str = "replace") -> None:
    """Writes ProseMirror JSON (from ``parse``) to the editor's fragment in one
    transaction: in place of its content, or after it (``mode="append"``)."""
    if mode not in MODES:
        raise InvalidContent(f"mode must be one of {', '.join(MODES)}")
    ydoc.write(doc, check(content), mode)


def change(state: bytes, format: str, content: object, mode: str) -> bytes:
    """The update that writes ``content`` to a document of ``state`` (``write`` on a
    copy): applied like any edit, it is one change, stored and sent."""
    parsed = parse(format, content)
    scratch: Doc[Any] = Doc()
    scratch.apply_update(state)
    before = scratch.get_state()
    write(scratch, parsed, mode)
    return scratch.get_update(before)


def _from_text(text: str) -> dict[str, Any]:
    # One paragraph a line, as /text gives it out.
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    blocks: list[dict[str, Any]] = [
        {"type": "paragraph", "content": [{"type": "text", "text": line}]}
        if line
        else {"type": "paragraph"}
        for line in lines
    ]
    return {"type": "doc", "content": blocks}
