"""The bundled editor's schema (Tiptap StarterKit v3, plus the task list, table and
image nodes it is about to gain) and the check that makes any ProseMirror JSON safe to
write: known nodes and marks where they may be, typed attributes, bounded depth and
size. Unknown node and mark types are kept as they are."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

MAX_DEPTH = 100  # nodes inside nodes: deeper than any real document, far below the Yjs bound
MAX_NODES = 200_000
MAX_TEXT = 4_000_000  # characters of text in one document
MAX_ATTR_TEXT = 8_192  # characters of one attribute string (a URL, a language)
MAX_NAME = 64
MAX_MARKS = 32  # marks on one text node

NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
# Schemes a link or an image may point to; a URL without a scheme is relative.
URL_SCHEMES = frozenset({"http", "https", "mailto", "tel"})
IMAGE_SCHEMES = frozenset({"http", "https"})
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_INVISIBLE = re.compile(r"[\x00-\x20\x7f]+")


class InvalidContent(ValueError):
    """Content that cannot be written to the document; the message says why."""


@dataclass(frozen=True)
class Attr:
    kind: str  # "int", "str", "bool", "url", "image_url", "widths"
    default: Any = None
    nullable: bool = True
    low: int = 0
    high: int = 2**31 - 1


@dataclass(frozen=True)
class NodeType:
    group: str  # "block", "inline", or the name of the one parent it belongs to
    content: str = ""  # "block", "inline", "text", a node name, or "" for a leaf
    attrs: dict[str, Attr] = field(default_factory=dict)
    marks: bool = True  # whether its text may carry marks


_CELL_ATTRS = {
    "colspan": Attr("int", 1, nullable=False, low=1, high=1000),
    "rowspan": Attr("int", 1, nullable=False, low=1, high=1000),
    "colwidth": Attr("widths"),
}

NODES: dict[str, NodeType] = {
    "doc": NodeType("", "block"),
    "paragraph": NodeType("block", "inline"),
    "heading": NodeType(
        "block", "inline", {"level": Attr("int", 1, nullable=False, low=1, high=6)}
    ),
    "blockquote": NodeType("block", "block"),
    "bulletList": NodeType("block", "listItem"),
    "orderedList": NodeType(
        "block",
        "listItem",
        {"start": Attr("int", 1, nullable=False, low=0), "type": Attr("str")},
    ),
    "listItem": NodeType("listItem", "block"),
    "taskList": NodeType("block", "taskItem"),
    "taskItem": NodeType("taskItem", "block", {"checked": Attr("bool", False, nullable=False)}),
    "codeBlock": NodeType("block", "text", {"language": Attr("str")}, marks=False),
    "horizontalRule": NodeType("block"),
    "image": NodeType(
        "block", "", {"src": Attr("image_url"), "alt": Attr("str"), "title": Attr("str")}
    ),
    "table": NodeType("block", "tableRow"),
    "tableRow": NodeType("tableRow", "cell"),
    "tableHeader": NodeType("cell", "block", _CELL_ATTRS),
    "tableCell": NodeType("cell", "block", _CELL_ATTRS),
    "hardBreak": NodeType("inline"),
    "text": NodeType("inline"),
}

# In the editor's schema order, which is the order ProseMirror keeps marks in.
MARKS: dict[str, dict[str, Attr]] = {
    "link": {
        "href": Attr("url"),
        "target": Attr("str", "_blank"),
        "rel": Attr("str", "noopener noreferrer nofollow"),
        "class": Attr("str"),
        "title": Attr("str"),
    },
    "bold": {},
    "code": {},
    "italic": {},
    "strike": {},
    "underline": {},
}
MARK_RANK = {name: rank for rank, name in enumerate(MARKS)}


def node_defaults(name: str) -> dict[str, Any]:
    spec = NODES.get(name)
    return {} if spec is None else {k: a.default for k, a in spec.attrs.items()}


def mark_defaults(name: str) -> dict[str, Any]:
    return {k: a.default for k, a in MARKS.get(name, {}).items()}


def stored_attr(value: object, attr: Attr) -> Any:
    """An attribute as a peer stored it, typed as the schema says: what ``check`` would
    refuse (a heading level of ``'1><script>'``, a ``javascript:`` URL) is the default."""
    try:
        return _attr(value, attr, "")
    except InvalidContent:
        return attr.default


def safe_url(value: str, schemes: frozenset[str]) -> bool:
    """Whether a link or image URL is one a browser follows harmlessly (browsers ignore
    control characters and spaces inside a scheme, so they are dropped before looking)."""
    match = _SCHEME.match(_INVISIBLE.sub("", value))
    return match is None or match.group(1).lower() in schemes


def check(content: object) -> dict[str, Any]:
    """``content`` as valid ProseMirror JSON of a document, with the attributes of known
    types completed by their defaults; InvalidContent says what is wrong."""
    if not isinstance(content, dict) or content.get("type") != "doc":
        raise InvalidContent('the content must be a JSON object of "type": "doc"')
    budget = _Budget()
    root = _node(content, "$", budget)
    # An explicit stack: a hostile document nested 100 000 deep is refused at MAX_DEPTH
    # without recursing.
    stack: list[tuple[dict[str, Any], dict[str, Any], str, int]] = [(content, root, "$", 0)]
    while stack:
        source, checked, path, depth = stack.pop()
        children = source.get("content", [])
        if not isinstance(children, list):
            raise InvalidContent(f"{path}.content must be a list")
        if not children:
            continue
        if depth + 1 > MAX_DEPTH:
            raise InvalidContent(f"the content is nested more than {MAX_DEPTH} deep")
        out: list[dict[str, Any]] = []
        checked["content"] = out
        for index, child in enumerate(children):
            child_path = f"{path}.content[{index}]"
            node = _node(child, child_path, budget)
            _placed(checked["type"], node, child_path)
            out.append(node)
            stack.append((child, node, child_path, depth + 1))
    return root


class _Budget:
    def __init__(self) -> None:
        self.nodes = 0
        self.text = 0

    def spend(self, text: int) -> None:
        self.nodes += 1
        self.text += text
        if self.nodes > MAX_NODES:
            raise InvalidContent(f"the content has more than {MAX_NODES} nodes")
        if self.text > MAX_TEXT:
            raise InvalidContent(f"the content has more than {MAX_TEXT} characters of text")


def _node(value: object, path: str, budget: _Budget) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidContent(f"{path} must be a node: a JSON object with a type")
    kind = value.get("type")
    if not isinstance(kind, str) or len(kind) > MAX_NAME or not NAME.match(kind):
        raise InvalidContent(f"{path}.type must be a node type name")
    extra = set(value) - {"type", "attrs", "content", "marks", "text"}
    if extra:
        raise InvalidContent(f"{path} has unknown keys: {', '.join(sorted(extra))}")
    node: dict[str, Any] = {"type": kind}
    if kind == "text":
        text = value.get("text")
        if not isinstance(text, str) or not text:
            raise InvalidContent(f"{path}.text must be a non-empty string")
        if "content" in value or "attrs" in value:
            raise InvalidContent(f"{path}: a text node has neither content nor attrs")
        budget.spend(len(text))
        node["text"] = text
        marks = _marks(value.get("marks", []), path)
        if marks:
            node["marks"] = marks
        return node
    budget.spend(0)
    if "text" in value:
        raise InvalidContent(f"{path}: only a text node has text")
    if value.get("marks"):
        raise InvalidContent(f"{path}: only text carries marks, not {kind}")
    spec = NODES.get(kind)
    if spec is not None and not spec.content and value.get("content"):
        raise InvalidContent(f"{path}: {kind} has no content")
    attrs = _attrs(value.get("attrs", {}), spec.attrs if spec else None, f"{path}.attrs")
    if attrs:
        node["attrs"] = attrs
    return node


def _placed(parent: str, node: dict[str, Any], path: str) -> None:
    spec = NODES.get(parent)
    child = NODES.get(node["type"])
    if spec is None or child is None:
        return  # an unknown node's content model is its own, and it may sit anywhere
    wanted = spec.content
    fits = (
        child.group == wanted
        or (wanted == "text" and node["type"] == "text")
        or (wanted == "block" and child.group == "block")
    )
    if not fits:
        where = "nothing" if not wanted else wanted if wanted in NODES else f"{wanted} nodes"
        raise InvalidContent(f"{path}: {parent} holds {where}, not {node['type']}")
    if not spec.marks and node.get("marks"):
        raise InvalidContent(f"{path}: text in {parent} carries no marks")


def _marks(value: object, path: str) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise InvalidContent(f"{path}.marks must be a list")
    if len(value) > MAX_MARKS:
        raise InvalidContent(f"{path} has more than {MAX_MARKS} marks")
    marks: list[dict[str, Any]] = []
    for index, mark in enumerate(value):
        where = f"{path}.marks[{index}]"
        if not isinstance(mark, dict):
            raise InvalidContent(f"{where} must be a mark: a JSON object with a type")
        kind = mark.get("type")
        if not isinstance(kind, str) or len(kind) > MAX_NAME or not NAME.match(kind):
            raise InvalidContent(f"{where}.type must be a mark type name")
        if set(mark) - {"type", "attrs"}:
            raise InvalidContent(f"{where} has keys other than type and attrs")
        spec = MARKS.get(kind)
        attrs = _attrs(mark.get("attrs", {}), spec, f"{where}.attrs")
        if kind == "link" and attrs["href"] is None:
            raise InvalidContent(f"{where}: a link needs an href")
        checked: dict[str, Any] = {"type": kind}
        if attrs:
            checked["attrs"] = attrs
        if spec is not None and any(m["type"] == kind for m in marks):
            raise InvalidContent(f"{where}: {kind} is on this text twice")
        marks.append(checked)
    marks.sort(key=mark_order)
    return marks


def mark_order(mark: dict[str, Any]) -> tuple[int, str, str]:
    """ProseMirror keeps a text's marks in schema order; unknown ones come after, in an
    order of their own that does not depend on how Yjs hands them out."""
    attrs = json.dumps(mark.get("attrs"), sort_keys=True)
    return MARK_RANK.get(mark["type"], len(MARK_RANK)), mark["type"], attrs


def _attrs(value: object, spec: dict[str, Attr] | None, path: str) -> dict[str, Any]:
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise InvalidContent(f"{path} must be a JSON object")
    if spec is None:
        # An unknown type's attributes are kept as they are, within bounds.
        for key, item in value.items():
            if not isinstance(key, str) or not key or len(key) > MAX_NAME:
                raise InvalidContent(f"{path} has an attribute name that is not a short string")
            _plain(item, f"{path}.{key}")
        return dict(value)
    unknown = set(value) - set(spec)
    if unknown:
        raise InvalidContent(f"{path} has unknown attributes: {', '.join(sorted(unknown))}")
    return {
        key: _attr(value.get(key, attr.default), attr, f"{path}.{key}")
        for key, attr in spec.items()
    }


def _attr(value: object, attr: Attr, path: str) -> Any:
    if value is None:
        if not attr.nullable:
            raise InvalidContent(f"{path} may not be null")
        return None
    if attr.kind == "int":
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidContent(f"{path} must be an integer")
        if not attr.low <= value <= attr.high:
            raise InvalidContent(f"{path} must be between {attr.low} and {attr.high}")
        return value
    if attr.kind == "bool":
        if not isinstance(value, bool):
            raise InvalidContent(f"{path} must be true or false")
        return value
    if attr.kind == "widths":
        if not isinstance(value, list) or len(value) > 1000:
            raise InvalidContent(f"{path} must be a list of column widths")
        widths = [_attr(w, Attr("int", low=0, high=100_000), path) for w in value]
        return widths
    if not isinstance(value, str) or len(value) > MAX_ATTR_TEXT:
        raise InvalidContent(f"{path} must be a string of at most {MAX_ATTR_TEXT} characters")
    if attr.kind == "url" and not safe_url(value, URL_SCHEMES):
        raise InvalidContent(f"{path} must be an http(s), mailto or tel URL, or a relative one")
    if attr.kind == "image_url" and not safe_url(value, IMAGE_SCHEMES):
        raise InvalidContent(f"{path} must be an http(s) URL, or a relative one")
    return value


def _plain(value: object, path: str) -> None:
    """A JSON value of bounded size and depth (iteratively)."""
    stack: list[tuple[object, int]] = [(value, 0)]
    seen = 0
    while stack:
        item, depth = stack.pop()
        seen += 1
        if depth > 8 or seen > 1000:
            raise InvalidContent(f"{path} is too large or nested too deeply")
        if isinstance(item, str):
            if len(item) > MAX_ATTR_TEXT:
                raise InvalidContent(f"{path} has a string longer than {MAX_ATTR_TEXT}")
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
        elif isinstance(item, dict):
            if not all(isinstance(k, str) for k in item):
                raise InvalidContent(f"{path} has a key that is not a string")
            stack.extend((v, depth + 1) for v in item.values())
        elif item is not None and not isinstance(item, bool | int | float):
            raise InvalidContent(f"{path} is not a JSON value")
        elif isinstance(item, float) and item != item:
            raise InvalidContent(f"{path} is not a JSON number")
