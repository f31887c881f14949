"""The editor's content as plain text: the Tiptap/ProseMirror XmlFragment "default",
one line per block."""

from __future__ import annotations

from typing import Any

from pycrdt import Doc, XmlElement, XmlFragment, XmlText

EDITOR_FIELD = "default"  # Tiptap's Collaboration extension's default field


def plain_text(state: bytes) -> str:
    doc: Doc[Any] = Doc()
    doc.apply_update(state)
    fragment = doc.get(EDITOR_FIELD, type=XmlFragment)
    return "\n".join(_lines(fragment))


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
