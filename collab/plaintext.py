"""The editor's content as plain text: the Tiptap/ProseMirror XmlFragment "default",
one line per block; and its title, the first of those lines that is not blank."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator
from typing import Any

from pycrdt import Doc, XmlElement, XmlFragment, XmlText

EDITOR_FIELD = "default"  # Tiptap's Collaboration extension's default field

TITLE_LENGTH = 200  # characters of a title, at most
# Blocks looked at, at each level, and levels looked into, for a title: a document
# that starts with more blank blocks than this, or nests deeper, has none, and finding
# that out stays cheap (and never recurses deeply, however the content nests).
TITLE_SCAN = 64
TITLE_DEPTH = 16
# Left out of a title, which is one line of plain text: control characters (PostgreSQL's
# text holds no NUL: a title with one failed every write of its document) and the bidi
# embeddings, overrides and isolates that would reorder what a list shows after it.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def plain_text(state: bytes) -> str:
    doc: Doc[Any] = Doc()
    doc.apply_update(state)
    fragment = doc.get(EDITOR_FIELD, type=XmlFragment)
    return "\n".join(_lines(fragment))


def title(doc: Doc[Any]) -> str:
    """The first line of the editor's content that is not blank, trimmed and cut to
    TITLE_LENGTH characters; "" when there is none. What follows it is never read: a
    write may ask for the title of a large document."""
    fragment = doc.get(EDITOR_FIELD, type=XmlFragment)
    try:
        return _title(_first_lines(fragment, TITLE_DEPTH, _by_index))
    except BaseException as exc:
        if type(exc).__name__ != "PanicException":
            raise
        # A hostile update made "default" another type, or put content that is no XML
        # node in it: indexing it panics, where listing skips what is not a node.
        return _title(_first_lines(fragment, TITLE_DEPTH, _listed))


Children = Callable[[XmlFragment | XmlElement], Iterator[object]]


def _by_index(node: XmlFragment | XmlElement) -> Iterator[object]:
    # Iterating a children view wraps every child first, however many there are.
    view = node.children
    return (view[i] for i in range(len(view)))


def _listed(node: XmlFragment | XmlElement) -> Iterator[object]:
    return iter(list(node.children))


def _title(lines: Iterator[str]) -> str:
    for line in lines:
        stripped = _UNPRINTABLE.sub("", line).strip()
        if stripped:
            return stripped[:TITLE_LENGTH].rstrip()
    return ""


def _first_lines(node: XmlFragment | XmlElement, depth: int, children: Children) -> Iterator[str]:
    """The lines of ``_lines``, lazily, looking ``depth`` levels down and TITLE_SCAN
    blocks along at most. A node whose first child is text is a text block (in the
    editor's schema a block holds either text or blocks); it is read up to the end of
    its first line that is not blank."""
    kids = children(node)
    first = next(kids, None)
    if isinstance(first, XmlText) or _inline(first):
        text = _inline_text(first)
        for child in kids:
            head = text.lstrip()
            if "\n" in head or len(head) >= TITLE_LENGTH:
                break
            text += _inline_text(child)
        yield from text.split("\n")
        return
    for count, child in enumerate(itertools.chain([first], kids)):
        if count >= TITLE_SCAN:
            return
        if isinstance(child, XmlElement) and depth > 1:
            yield from _first_lines(child, depth - 1, children)


def _lines(node: XmlFragment | XmlElement) -> list[str]:
    children = list(node.children)
    if children and all(isinstance(c, XmlText) or _inline(c) for c in children):
        return ["".join(_inline_text(c) for c in children)]
    lines: list[str] = []
    for child in children:
        if isinstance(child, XmlText):
            lines.append(_inline_text(child))
        elif isinstance(child, XmlElement):
            lines.extend(_lines(child) or [""])
    return lines


def _inline(node: object) -> bool:
    return isinstance(node, XmlElement) and node.tag in ("hardBreak", "image")


def _inline_text(node: object) -> str:
    if isinstance(node, XmlText):
        return "".join(part for part, _attrs in node.diff() if isinstance(part, str))
    if isinstance(node, XmlElement) and node.tag == "hardBreak":
        return "\n"
    return ""
