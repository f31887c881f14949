"""ProseMirror JSON to and from the Yjs XmlFragment, stored the way y-prosemirror (the
editor's Collaboration extension) stores it: a node is an XmlElement named after its
type with its non-null attrs as attributes; a run of text is an XmlText whose formatting
attributes are its marks (mark name -> the mark's attrs)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterable
from typing import Any

from pycrdt import Doc, XmlElement, XmlFragment, XmlText

from ..plaintext import EDITOR_FIELD
from .schema import MARKS, NODES, Attr, mark_order, stored_attr

# Names no element may have; the editor drops such an element (y-prosemirror cannot
# make a node of it), and so do the readers.
_NOT_ELEMENTS = {"doc", "text"}
# y-prosemirror names a mark that may overlap itself (a comment) "name--<8 chars>".
_HASHED_MARK = re.compile(r"^(.*)--[a-zA-Z0-9+/=]{8}$")


def fragment(doc: Doc[Any]) -> XmlFragment:
    shared: XmlFragment = doc.get(EDITOR_FIELD, type=XmlFragment)
    return shared


def read(doc: Doc[Any]) -> dict[str, Any]:
    root: dict[str, Any] = {"type": "doc"}
    stack: list[tuple[XmlFragment | XmlElement, dict[str, Any]]] = [(fragment(doc), root)]
    while stack:
        parent, node = stack.pop()
        content: list[dict[str, Any]] = []
        for child in parent.children:
            if isinstance(child, XmlText):
                content.extend(_text_nodes(child))
            elif isinstance(child, XmlElement) and child.tag not in _NOT_ELEMENTS:
                element = _element(child)
                content.append(element)
                stack.append((child, element))
        if content:
            node["content"] = content
    return root


def _element(element: XmlElement) -> dict[str, Any]:
    kind = element.tag or "unknown"
    node: dict[str, Any] = {"type": kind}
    # pycrdt types XmlAttributesView.__iter__ as returning an Iterable: call it.
    pairs: Iterable[tuple[str, Any]] = element.attributes.__iter__()
    stored = {k: _number(v) for k, v in pairs}
    spec = NODES.get(kind)
    # A peer writes attributes as it likes: a known node's are typed as the schema says
    # before anything renders them (an unknown node's are escaped where they go out).
    attrs = stored if spec is None else _typed(stored, spec.attrs)
    if attrs:
        node["attrs"] = attrs
    return node


def _typed(stored: dict[str, Any], spec: dict[str, Attr]) -> dict[str, Any]:
    return {k: stored_attr(stored.get(k, attr.default), attr) for k, attr in spec.items()}


def _text_nodes(text: XmlText) -> list[dict[str, Any]]:
    nodes: list[dict[str, Any]] = []
    for part, formatting in text.diff():
        if not isinstance(part, str) or not part:
            continue  # an embed: y-prosemirror writes none
        node: dict[str, Any] = {"type": "text", "text": part}
        marks = [_mark(key, value) for key, value in (formatting or {}).items()]
        # A link whose URL is not one the schema allows (javascript:) is dropped; its
        # text stays.
        marks = [m for m in marks if m["type"] != "link" or m["attrs"]["href"] is not None]
        if marks:
            marks.sort(key=mark_order)
            node["marks"] = marks
        nodes.append(node)
    return nodes


def _mark(key: str, value: object) -> dict[str, Any]:
    match = _HASHED_MARK.match(key)
    kind = match.group(1) if match else key
    mark: dict[str, Any] = {"type": kind}
    stored = {k: _number(v) for k, v in value.items()} if isinstance(value, dict) else {}
    spec = MARKS.get(kind)
    attrs = stored if spec is None else _typed(stored, spec)
    if attrs:
        mark["attrs"] = attrs
    return mark


def _number(value: Any) -> Any:
    """Yjs numbers come back as floats; ProseMirror's integers are integers."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_number(v) for v in value]
    if isinstance(value, dict):
        return {k: _number(v) for k, v in value.items()}
    return value


def write(doc: Doc[Any], content: dict[str, Any], mode: str) -> None:
    """Writes checked ProseMirror JSON into the fragment in one transaction."""
    if mode not in ("replace", "append"):
        raise ValueError(f"unknown mode {mode!r}")
    target = fragment(doc)
    with doc.transaction(origin="content"):
        if mode == "replace" and len(target.children):
            del target.children[0 : len(target.children)]
        stack: list[tuple[XmlFragment | XmlElement, list[dict[str, Any]]]] = [
            (target, content.get("content", []))
        ]
        while stack:
            parent, children = stack.pop()
            run: list[dict[str, Any]] = []
            for child in children:
                if child["type"] == "text":
                    run.append(child)
                    continue
                if run:
                    _append_text(parent, run)
                    run = []
                element = parent.children.append(XmlElement(child["type"]))
                for key, value in (child.get("attrs") or {}).items():
                    if value is not None:
                        element.attributes[key] = value
                if child.get("content"):
                    stack.append((element, child["content"]))
            if run:
                _append_text(parent, run)


def _append_text(parent: XmlFragment | XmlElement, run: list[dict[str, Any]]) -> None:
    text = parent.children.append(XmlText())
    for node in run:
        text.insert(len(text), node["text"], _formatting(node.get("marks", [])))


def _formatting(marks: list[dict[str, Any]]) -> dict[str, Any]:
    formatting: dict[str, Any] = {}
    for mark in marks:
        kind = mark["type"]
        attrs = mark.get("attrs") or {}
        if kind in formatting:
            # The same mark type twice (a self-overlapping mark such as a comment):
            # y-prosemirror's naming, with a hash of the mark's JSON.
            digest = hashlib.sha256(json.dumps(mark, sort_keys=True).encode()).digest()
            kind = f"{kind}--{base64.b64encode(digest).decode()[:8]}"
        formatting[kind] = attrs
    return formatting
