"""ProseMirror JSON as HTML (the editor's own tags), and HTML back, sanitised first
with nh3 (ammonia): no script, style, event handler or javascript: URL gets through.

A node or mark the schema does not know is kept as ``<div|span data-pm-node="type"
data-pm-attrs="{json}">`` (or ``data-pm-mark``), which parses back to the same."""

from __future__ import annotations

import json
from html import escape
from html.parser import HTMLParser
from typing import Any

import nh3

from .schema import MARKS, MAX_DEPTH, NODES, URL_SCHEMES, InvalidContent

_BLOCK_TAGS = {
    "paragraph": "p",
    "blockquote": "blockquote",
    "bulletList": "ul",
    "orderedList": "ol",
    "listItem": "li",
    "table": "table",
    "tableRow": "tr",
    "tableHeader": "th",
    "tableCell": "td",
}
_MARK_TAGS = {
    "bold": "strong",
    "italic": "em",
    "strike": "s",
    "code": "code",
    "underline": "u",
}
_VOID = {"br", "hr", "img", "input"}


# Rendering ------------------------------------------------------------------


def render(doc: dict[str, Any]) -> str:
    return "".join(_render(child, False) for child in doc.get("content", []))


def render_node(node: dict[str, Any], inline: bool) -> str:
    return _render(node, inline)


def _render(node: dict[str, Any], inline: bool) -> str:
    kind = node["type"]
    attrs = node.get("attrs") or {}
    children = node.get("content", [])
    if kind == "text":
        return _marked(node)
    if kind not in NODES:
        return _unknown(node, inline)
    if kind == "heading":
        level = attrs.get("level", 1)
        return f"<h{level}>{_inline(children)}</h{level}>"
    if kind in ("paragraph",):
        return f"<p>{_inline(children)}</p>"
    if kind == "codeBlock":
        language = attrs.get("language")
        cls = f' class="language-{escape(language)}"' if language else ""
        text = "".join(c.get("text", "") for c in children)
        return f"<pre><code{cls}>{escape(text, quote=False)}</code></pre>"
    if kind == "horizontalRule":
        return "<hr>"
    if kind == "hardBreak":
        return "<br>"
    if kind == "image":
        return "<img" + _attributes((k, attrs.get(k)) for k in ("src", "alt", "title")) + ">"
    if kind == "orderedList":
        start = attrs.get("start", 1)
        extra = _attributes([("start", start if start != 1 else None), ("type", attrs.get("type"))])
        return f"<ol{extra}>{_blocks(children)}</ol>"
    if kind == "taskList":
        return f'<ul data-type="taskList">{_blocks(children)}</ul>'
    if kind == "taskItem":
        checked = "true" if attrs.get("checked") else "false"
        return f'<li data-type="taskItem" data-checked="{checked}">{_blocks(children)}</li>'
    if kind == "table":
        return f"<table><tbody>{_blocks(children)}</tbody></table>"
    if kind in ("tableCell", "tableHeader"):
        widths = attrs.get("colwidth")
        extra = _attributes(
            [
                ("colspan", attrs.get("colspan", 1)),
                ("rowspan", attrs.get("rowspan", 1)),
                ("data-colwidth", ",".join(str(w) for w in widths) if widths else None),
            ]
        )
        tag = _BLOCK_TAGS[kind]
        return f"<{tag}{extra}>{_blocks(children)}</{tag}>"
    tag = _BLOCK_TAGS[kind]
    return f"<{tag}>{_blocks(children)}</{tag}>"


def _blocks(children: list[dict[str, Any]]) -> str:
    return "".join(_render(child, False) for child in children)


def _inline(children: list[dict[str, Any]]) -> str:
    return "".join(_render(child, True) for child in children)


def _unknown(node: dict[str, Any], inline: bool) -> str:
    children = node.get("content", [])
    has_text = any(c["type"] == "text" for c in children)
    tag = "span" if inline else "div"
    attrs = [("data-pm-node", node["type"])]
    if node.get("attrs"):
        attrs.append(("data-pm-attrs", json.dumps(node["attrs"], separators=(",", ":"))))
    inner = _inline(children) if has_text or inline else _blocks(children)
    return f"<{tag}{_attributes(attrs)}>{inner}</{tag}>"


def _marked(node: dict[str, Any]) -> str:
    html = escape(node["text"], quote=False)
    for mark in reversed(node.get("marks", [])):
        kind = mark["type"]
        attrs = mark.get("attrs") or {}
        if kind == "link":
            names = ("href", "target", "rel", "class", "title")
            html = f"<a{_attributes((k, attrs.get(k)) for k in names)}>{html}</a>"
        elif kind in _MARK_TAGS:
            tag = _MARK_TAGS[kind]
            html = f"<{tag}>{html}</{tag}>"
        else:
            extra = [("data-pm-mark", kind)]
            if attrs:
                extra.append(("data-pm-attrs", json.dumps(attrs, separators=(",", ":"))))
            html = f"<span{_attributes(extra)}>{html}</span>"
    return html


def _attributes(pairs: Any) -> str:
    return "".join(f' {k}="{escape(str(v))}"' for k, v in pairs if v is not None)


# Parsing --------------------------------------------------------------------

_ALLOWED_TAGS = {
    *("p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "ul", "ol", "li", "pre"),
    *("code", "hr", "br", "img", "strong", "b", "em", "i", "s", "strike", "del", "u", "a"),
    *("table", "thead", "tbody", "tfoot", "tr", "th", "td", "div", "span", "input"),
    *("section", "article", "header", "footer", "main", "aside", "nav", "figure"),
    *("label", "sub", "sup", "mark", "small", "ins", "abbr", "cite", "q", "kbd", "var"),
}
_ALLOWED_ATTRIBUTES = {
    "a": {"href", "target", "rel", "class", "title"},
    "img": {"src", "alt", "title"},
    "ol": {"start", "type"},
    "ul": {"data-type", "class"},
    "li": {"data-type", "data-checked", "class"},
    "code": {"class"},
    "pre": {"class"},
    "th": {"colspan", "rowspan", "data-colwidth"},
    "td": {"colspan", "rowspan", "data-colwidth"},
    "input": {"type", "checked"},
    "div": {"data-pm-node", "data-pm-attrs"},
    "span": {"data-pm-node", "data-pm-attrs", "data-pm-mark"},
}
_HEADINGS = {f"h{n}": n for n in range(1, 7)}
_PARSE_MARKS = {
    "strong": "bold",
    "b": "bold",
    "em": "italic",
    "i": "italic",
    "s": "strike",
    "strike": "strike",
    "del": "strike",
    "code": "code",
    "u": "underline",
}
_BLOCKS = {
    *_HEADINGS,
    *("p", "blockquote", "ul", "ol", "li", "pre", "hr", "img", "table", "div"),
    *("section", "article", "header", "footer", "main", "aside", "nav", "figure"),
    *("thead", "tbody", "tfoot", "tr", "th", "td"),
}


class _Element:
    __slots__ = ("attrs", "children", "tag")

    def __init__(self, tag: str, attrs: dict[str, str]) -> None:
        self.tag = tag
        self.attrs = attrs
        self.children: list[_Element | str] = []


class _TreeBuilder(HTMLParser):
    """Sanitised HTML to a small tree, refusing it past MAX_DEPTH (no recursion)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = _Element("#root", {})
        self.open: list[_Element] = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = _Element(tag, {k: v or "" for k, v in attrs})
        self.open[-1].children.append(element)
        if tag in _VOID:
            return
        if len(self.open) > MAX_DEPTH:
            raise InvalidContent(f"the HTML is nested more than {MAX_DEPTH} deep")
        self.open.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.open[-1].children.append(_Element(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        for index in range(len(self.open) - 1, 0, -1):
            if self.open[index].tag == tag:
                del self.open[index:]
                return

    def handle_data(self, data: str) -> None:
        self.open[-1].children.append(data)


def sanitise(html: str) -> str:
    return nh3.clean(
        html,
        tags=_ALLOWED_TAGS,
        attributes=_ALLOWED_ATTRIBUTES,
        url_schemes=set(URL_SCHEMES),
        link_rel=None,
        strip_comments=True,
    )


class _DepthGauge(HTMLParser):
    """How deep the raw input nests, before the sanitiser sees it: html5ever's work
    grows with the square of the depth (100 000 <div>s take most of a minute). The
    tags that HTML closes on their own (<p><p>) are not counted."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _VOID and tag not in _SELF_CLOSING:
            self.depth += 1
            if self.depth > 2 * MAX_DEPTH:
                raise InvalidContent(f"the HTML is nested more than {MAX_DEPTH} deep")

    def handle_endtag(self, tag: str) -> None:
        if tag not in _VOID and tag not in _SELF_CLOSING:
            self.depth = max(0, self.depth - 1)


_SELF_CLOSING = {"p", "li", "dt", "dd", "tr", "td", "th", "option", "rb", "rt", "rp"}


def parse(html: str) -> dict[str, Any]:
    gauge = _DepthGauge()
    gauge.feed(html)
    gauge.close()
    builder = _TreeBuilder()
    builder.feed(sanitise(html))
    builder.close()
    return {"type": "doc", "content": _Converter().blocks(builder.root.children)}


class _Converter:
    """The tree to ProseMirror nodes, like ProseMirror's DOMParser: inline content
    outside a textblock is wrapped in paragraphs, white space collapses outside <pre>.
    Recursion is bounded by the tree's depth (MAX_DEPTH)."""

    def blocks(self, children: list[_Element | str]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        pending: list[_Element | str] = []

        def flush() -> None:
            out.extend(_paragraphs(self.inline(pending, []), keep_empty=False))
            pending.clear()

        for child in children:
            if isinstance(child, _Element) and self._is_block(child):
                flush()
                out.extend(self.block(child))
            else:
                pending.append(child)
        flush()
        return out

    def _is_block(self, element: _Element) -> bool:
        if element.tag == "span" and "data-pm-node" in element.attrs:
            return False
        return element.tag in _BLOCKS or (
            element.tag not in _PARSE_MARKS and element.tag != "a" and self._holds_block(element)
        )

    def _holds_block(self, element: _Element) -> bool:
        return any(isinstance(c, _Element) and c.tag in _BLOCKS for c in element.children)

    def block(self, element: _Element) -> list[dict[str, Any]]:
        tag, attrs, children = element.tag, element.attrs, element.children
        if "data-pm-node" in attrs:
            return [self._unknown(element)]
        if tag == "p":
            return _paragraphs(self.inline(children, []), keep_empty=True)
        if tag in _HEADINGS:
            node: dict[str, Any] = {"type": "heading", "attrs": {"level": _HEADINGS[tag]}}
            inline = self.inline(children, [])
            if inline:
                node["content"] = inline
            return [node]
        if tag == "blockquote":
            return [{"type": "blockquote", "content": self.blocks(children) or _EMPTY}]
        if tag in ("ul", "ol"):
            return [self._list(element)]
        if tag == "li":
            return [self._item(element, "listItem")]
        if tag == "pre":
            return [self._code(element)]
        if tag == "hr":
            return [{"type": "horizontalRule"}]
        if tag == "img":
            return [self._image(element)] if attrs.get("src") else []
        if tag == "table":
            rows = [self._row(tr) for tr in _descendants(element, "tr", {"table"})]
            return [{"type": "table", "content": rows}] if rows else []
        if tag in ("tr", "th", "td", "thead", "tbody", "tfoot"):
            return self.blocks(children)  # a table part outside a table: its content
        return self.blocks(children)  # div, section, ...: a transparent container

    def _unknown(self, element: _Element) -> dict[str, Any]:
        node: dict[str, Any] = {"type": element.attrs["data-pm-node"]}
        attrs = _json_attrs(element.attrs.get("data-pm-attrs"))
        if attrs:
            node["attrs"] = attrs
        if element.tag == "span" or not self._holds_block(element):
            content = self.inline(element.children, [], keep_space=element.tag == "span")
        else:
            content = self.blocks(element.children)
        if content:
            node["content"] = content
        return node

    def _list(self, element: _Element) -> dict[str, Any]:
        task = element.attrs.get("data-type") == "taskList" or "contains-task-list" in (
            element.attrs.get("class", "")
        )
        kind, item = (
            ("taskList", "taskItem")
            if task
            else (
                ("orderedList", "listItem") if element.tag == "ol" else ("bulletList", "listItem")
            )
        )
        items: list[dict[str, Any]] = []
        stray: list[_Element | str] = []
        for child in element.children:
            if isinstance(child, _Element) and child.tag == "li":
                if stray:
                    items.extend(self._wrap_items(stray, item))
                    stray = []
                items.append(self._item(child, item))
            else:
                stray.append(child)
        items.extend(self._wrap_items(stray, item))
        node: dict[str, Any] = {"type": kind, "content": items or [self._empty_item(item)]}
        if kind == "orderedList":
            start = element.attrs.get("start", "1")
            node["attrs"] = {
                "start": int(start) if start.isdigit() and len(start) < 10 else 1,
                "type": element.attrs.get("type") or None,
            }
        return node

    def _wrap_items(self, stray: list[_Element | str], item: str) -> list[dict[str, Any]]:
        content = self.blocks(stray)
        return [self._with_attrs(item, content, False)] if content else []

    def _empty_item(self, item: str) -> dict[str, Any]:
        return self._with_attrs(item, _EMPTY, False)

    def _with_attrs(
        self, item: str, content: list[dict[str, Any]], checked: bool
    ) -> dict[str, Any]:
        node: dict[str, Any] = {"type": item, "content": content}
        if item == "taskItem":
            node["attrs"] = {"checked": checked}
        return node

    def _item(self, element: _Element, item: str) -> dict[str, Any]:
        checked = element.attrs.get("data-checked") == "true"
        children = element.children
        if item == "taskItem":
            # The markdown-it tasklists and Tiptap forms: a checkbox before the content.
            boxes = _descendants(element, "input", {"ul", "ol"})
            if boxes and "data-checked" not in element.attrs:
                checked = "checked" in boxes[0].attrs
            children = _without(children, {"input", "label"})
        return self._with_attrs(item, self.blocks(children) or _EMPTY, checked)

    def _code(self, element: _Element) -> dict[str, Any]:
        language = None
        codes = [c for c in element.children if isinstance(c, _Element) and c.tag == "code"]
        for cls in (
            codes[0].attrs.get("class", "") if codes else "",
            element.attrs.get("class", ""),
        ):
            for name in cls.split():
                if name.startswith("language-") and len(name) > 9:
                    language = name[9:]
                    break
            if language:
                break
        text = _text_content(element)
        if text.endswith("\n"):
            text = text[:-1]  # markdown-it ends a fence's code with a newline
        node: dict[str, Any] = {"type": "codeBlock", "attrs": {"language": language}}
        if text:
            node["content"] = [{"type": "text", "text": text}]
        return node

    def _image(self, element: _Element) -> dict[str, Any]:
        a = element.attrs
        return {
            "type": "image",
            "attrs": {"src": a.get("src"), "alt": a.get("alt"), "title": a.get("title")},
        }

    def _row(self, row: _Element) -> dict[str, Any]:
        cells = []
        for cell in row.children:
            if isinstance(cell, _Element) and cell.tag in ("th", "td"):
                widths = [
                    int(w)
                    for w in cell.attrs.get("data-colwidth", "").split(",")
                    if w.isdigit() and len(w) < 7
                ]
                cells.append(
                    {
                        "type": "tableHeader" if cell.tag == "th" else "tableCell",
                        "attrs": {
                            "colspan": _span(cell.attrs.get("colspan")),
                            "rowspan": _span(cell.attrs.get("rowspan")),
                            "colwidth": widths or None,
                        },
                        "content": self.blocks(cell.children) or _EMPTY,
                    }
                )
        return {"type": "tableRow", "content": cells} if cells else {"type": "tableRow"}

    def inline(
        self, children: list[_Element | str], marks: list[dict[str, Any]], keep_space: bool = False
    ) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        self._inline(children, marks, out)
        if not keep_space:
            _trim(out)
        return out

    def _inline(
        self, children: list[_Element | str], marks: list[dict[str, Any]], out: list[dict[str, Any]]
    ) -> None:
        for child in children:
            if isinstance(child, str):
                text = " ".join(child.split())
                if child[:1].isspace():
                    text = " " + text
                if child[-1:].isspace() and text != " ":
                    text += " "
                if not text:
                    continue
                previous = out[-1] if out else None
                if (
                    text.startswith(" ")
                    and previous is not None
                    and previous.get("text", "x").endswith(" ")
                ):
                    text = text[1:]
                if text:
                    node: dict[str, Any] = {"type": "text", "text": text}
                    if marks:
                        node["marks"] = list(marks)
                    out.append(node)
                continue
            tag = child.tag
            if tag == "br":
                out.append({"type": "hardBreak"})
            elif tag == "img":
                if child.attrs.get("src"):
                    out.append(self._image(child))
            elif "data-pm-node" in child.attrs:
                out.append(self._unknown(child))
            elif tag == "input":
                continue
            else:
                mark = _mark_of(child)
                inner = (
                    marks
                    if mark is None or any(m["type"] == mark["type"] for m in marks)
                    else [*marks, mark]
                )
                self._inline(child.children, inner, out)


_EMPTY = [{"type": "paragraph"}]


def _paragraphs(inline: list[dict[str, Any]], keep_empty: bool) -> list[dict[str, Any]]:
    """Paragraphs of inline content; an image (a block node in the editor's schema,
    inline in HTML and Markdown) splits them and stands between."""
    blocks: list[dict[str, Any]] = []
    run: list[dict[str, Any]] = []
    for node in [*inline, None]:
        if node is not None and node["type"] != "image":
            run.append(node)
            continue
        _trim(run)
        if run:
            blocks.append({"type": "paragraph", "content": run})
        run = []
        if node is not None:
            blocks.append(node)
    if not blocks and keep_empty:
        blocks.append({"type": "paragraph"})
    return blocks


def _mark_of(element: _Element) -> dict[str, Any] | None:
    if element.tag in _PARSE_MARKS:
        return {"type": _PARSE_MARKS[element.tag]}
    if element.tag == "a":
        href = element.attrs.get("href")
        if not href:
            return None  # a link the sanitiser took the URL of: its text stays
        defaults = {k: a.default for k, a in MARKS["link"].items()}
        given = {k: element.attrs[k] for k in defaults if k in element.attrs}
        return {"type": "link", "attrs": {**defaults, **given}}
    if element.tag == "span" and "data-pm-mark" in element.attrs:
        mark: dict[str, Any] = {"type": element.attrs["data-pm-mark"]}
        attrs = _json_attrs(element.attrs.get("data-pm-attrs"))
        if attrs:
            mark["attrs"] = attrs
        return mark
    return None


def _json_attrs(raw: str | None) -> dict[str, Any] | None:
    if not raw:
        return None
    try:
        attrs = json.loads(raw)
    except (ValueError, RecursionError):
        raise InvalidContent("a data-pm-attrs attribute is not JSON") from None
    if not isinstance(attrs, dict):
        raise InvalidContent("a data-pm-attrs attribute is not a JSON object")
    return attrs


def _span(raw: str | None) -> int:
    return int(raw) if raw and raw.isdigit() and 0 < int(raw[:5]) <= 1000 else 1


def _trim(nodes: list[dict[str, Any]]) -> None:
    """Drops the white space at the start and end of a textblock, as browsers do."""
    if nodes and nodes[0]["type"] == "text":
        nodes[0]["text"] = nodes[0]["text"].lstrip(" ")
        if not nodes[0]["text"]:
            nodes.pop(0)
    if nodes and nodes[-1]["type"] == "text":
        nodes[-1]["text"] = nodes[-1]["text"].rstrip(" ")
        if not nodes[-1]["text"]:
            nodes.pop()
    for index in range(len(nodes) - 1):
        if nodes[index]["type"] == "hardBreak" and nodes[index + 1]["type"] == "text":
            nodes[index + 1]["text"] = nodes[index + 1]["text"].lstrip(" ")
    nodes[:] = [n for n in nodes if n["type"] != "text" or n["text"]]


def _text_content(element: _Element) -> str:
    parts: list[str] = []
    stack: list[_Element | str] = [element]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            parts.append(item)
        elif item.tag == "br":
            parts.append("\n")
        else:
            stack.extend(reversed(item.children))
    return "".join(parts)


def _descendants(element: _Element, tag: str, stop: set[str]) -> list[_Element]:
    """The ``tag`` elements under ``element``, not looking inside nested ``stop`` ones."""
    found: list[_Element] = []
    stack = list(reversed(element.children))
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            continue
        if item.tag == tag:
            found.append(item)
        elif item.tag not in stop:
            stack.extend(reversed(item.children))
    return found


def _without(children: list[_Element | str], tags: set[str]) -> list[_Element | str]:
    return [c for c in children if not (isinstance(c, _Element) and c.tag in tags)]
