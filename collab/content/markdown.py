"""ProseMirror JSON as CommonMark (with GFM tables, strikethrough and task lists), and
Markdown back through markdown-it-py.

What Markdown cannot say is written as HTML, which markdown-it passes through and the
sanitising HTML parser reads back: underline as ``<u>``, a link with other than the
editor's default attributes as ``<a>``, a table that is not a plain grid as a
``<table>``, an unknown node or mark as its ``data-pm-*`` element."""

from __future__ import annotations

import logging
import re
from typing import Any

from markdown_it import MarkdownIt
from mdit_py_plugins.tasklists import tasklists_plugin

from . import html
from .schema import MAX_DEPTH, mark_defaults

# markdown-it logs a line per rule it tries at DEBUG: thousands for one document.
logging.getLogger("markdown_it").setLevel(logging.INFO)

_PARSER = (
    MarkdownIt("commonmark", {"html": True, "maxNesting": MAX_DEPTH})
    .enable(["table", "strikethrough"])
    .use(tasklists_plugin)
)

_DELIMITERS = {"bold": "**", "italic": "*", "strike": "~~", "underline": "<u>"}
_ESCAPED = re.compile(r"([\\`*_\[\]<>&~|!])")
_LINE_START = re.compile(r"^(\s*\d*)([#+=>-]|(?<=\d)[.)])")


def parse(markdown: str) -> dict[str, Any]:
    return html.parse(_PARSER.render(markdown))


def render(doc: dict[str, Any]) -> str:
    text = _Writer().blocks(doc.get("content", []))
    return text + "\n" if text else ""


class _Writer:
    def blocks(self, nodes: list[dict[str, Any]]) -> str:
        return "\n\n".join(self.block(node) for node in nodes)

    def block(self, node: dict[str, Any]) -> str:
        kind = node["type"]
        attrs = node.get("attrs") or {}
        children = node.get("content", [])
        if kind == "paragraph":
            return self.inline(children) or "<p></p>"
        if kind == "heading":
            return "#" * int(attrs.get("level", 1)) + " " + self.inline(children)
        if kind == "blockquote":
            return _prefix(self.blocks(children), "> ", "> ")
        if kind in ("bulletList", "orderedList", "taskList"):
            return self._list(node)
        if kind == "codeBlock":
            text = "".join(c.get("text", "") for c in children)
            fence = "`" * max(3, _longest_run(text, "`") + 1)
            language = attrs.get("language") or ""
            if "`" in language or "\n" in language:
                return html.render_node(node, False)
            return f"{fence}{language}\n{text}\n{fence}"
        if kind == "horizontalRule":
            return "---"
        if kind == "image":
            return self._image(attrs)
        if kind == "table" and _plain_grid(node):
            return self._table(node)
        # A table that is not a plain grid, a stray list item or row, an unknown node.
        return html.render_node(node, False)

    def _list(self, node: dict[str, Any]) -> str:
        kind = node["type"]
        attrs = node.get("attrs") or {}
        start = int(attrs.get("start", 1)) if kind == "orderedList" else 1
        if kind == "orderedList" and attrs.get("type"):
            return html.render_node(node, False)
        items = []
        for index, item in enumerate(node.get("content", [])):
            if item["type"] not in ("listItem", "taskItem"):
                return html.render_node(node, False)
            marker = f"{start + index}. " if kind == "orderedList" else "- "
            body = self.blocks(item.get("content", []))
            if item["type"] == "taskItem":
                box = "[x] " if (item.get("attrs") or {}).get("checked") else "[ ] "
                body = box + body
            elif kind == "bulletList" and re.match(r"\[[ xX]\] ", body):
                body = "\\" + body  # text that would read as a task's checkbox
            items.append(_prefix(body, marker, " " * len(marker)))
        # Loose (blank lines between items) when an item holds more than one block.
        loose = any(len(i.get("content", [])) > 1 for i in node.get("content", []))
        return ("\n\n" if loose else "\n").join(items)

    def _table(self, node: dict[str, Any]) -> str:
        rows = [
            [self._cell(cell) for cell in row.get("content", [])] for row in node.get("content", [])
        ]
        lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
        lines.extend("| " + " | ".join(row) + " |" for row in rows[1:])
        return "\n".join(lines)

    def _cell(self, cell: dict[str, Any]) -> str:
        content = cell.get("content", [])
        text = self.inline(content[0].get("content", [])) if content else ""
        return text  # the escaping of text covers "|"

    def _image(self, attrs: dict[str, Any]) -> str:
        src = attrs.get("src") or ""
        title = attrs.get("title")
        titled = f' "{_escape_title(title)}"' if title else ""
        return f"![{_escape(attrs.get('alt') or '')}]({_destination(src)}{titled})"

    def inline(self, nodes: list[dict[str, Any]]) -> str:
        out: list[str] = []
        open_marks: list[dict[str, Any]] = []
        for node in nodes:
            kind = node["type"]
            marks = [m for m in node.get("marks", []) if m["type"] != "code"]
            # Close the marks this node does not continue, innermost first.
            keep = 0
            while keep < len(open_marks) and keep < len(marks) and open_marks[keep] == marks[keep]:
                keep += 1
            text = node.get("text", "")
            lead = len(text) - len(text.lstrip(" ")) if kind == "text" else 0
            if keep < len(open_marks):
                # Trailing spaces of the previous node go outside the closing delimiters.
                spaces = _pop_spaces(out)
                while len(open_marks) > keep:
                    out.append(self._close(open_marks.pop()))
                out.append(spaces)
            if lead and len(marks) > keep:
                out.append(text[:lead])
                text = text[lead:]
            for mark in marks[keep:]:
                out.append(self._open(mark))
                open_marks.append(mark)
            if kind == "text":
                code = any(m["type"] == "code" for m in node.get("marks", []))
                out.append(_code(text) if code else _escape(text))
            elif kind == "hardBreak":
                out.append("\\\n")
            elif kind == "image":
                out.append(self._image(node.get("attrs") or {}))
            else:
                out.append(html.render_node(node, True))
        spaces = _pop_spaces(out)
        while open_marks:
            out.append(self._close(open_marks.pop()))
        out.append(spaces)
        return _guard_line_starts("".join(out))

    def _open(self, mark: dict[str, Any]) -> str:
        kind = mark["type"]
        if kind in _DELIMITERS:
            return _DELIMITERS[kind]
        if kind == "link" and _plain_link(mark):
            return "["
        return _open_tag(mark)

    def _close(self, mark: dict[str, Any]) -> str:
        kind = mark["type"]
        if kind == "underline":
            return "</u>"
        if kind in _DELIMITERS:
            return _DELIMITERS[kind]
        attrs = mark.get("attrs") or {}
        if kind == "link" and _plain_link(mark):
            title = attrs.get("title")
            titled = f' "{_escape_title(title)}"' if title else ""
            return f"]({_destination(attrs.get('href') or '')}{titled})"
        return "</a>" if kind == "link" else "</span>"


def _open_tag(mark: dict[str, Any]) -> str:
    # One text node, rendered by the HTML writer, split around a placeholder.
    rendered = html.render_node({"type": "text", "text": "\x00", "marks": [mark]}, True)
    return rendered.split("\x00")[0]


def _plain_link(mark: dict[str, Any]) -> bool:
    attrs = mark.get("attrs") or {}
    defaults = mark_defaults("link")
    return all(attrs.get(k) == defaults[k] for k in ("target", "rel", "class"))


def _plain_grid(table: dict[str, Any]) -> bool:
    rows = table.get("content", [])
    if not rows or not rows[0].get("content"):
        return False
    width = len(rows[0]["content"])
    for number, row in enumerate(rows):
        cells = row.get("content", [])
        if row["type"] != "tableRow" or len(cells) != width:
            return False
        for cell in cells:
            attrs = cell.get("attrs") or {}
            header = cell["type"] == "tableHeader"
            if header != (number == 0) or cell["type"] not in ("tableHeader", "tableCell"):
                return False
            if (
                attrs.get("colspan", 1) != 1
                or attrs.get("rowspan", 1) != 1
                or attrs.get("colwidth")
            ):
                return False
            content = cell.get("content", [])
            if len(content) > 1 or (content and content[0]["type"] != "paragraph"):
                return False
            inline = content[0].get("content", []) if content else []
            if any(n["type"] not in ("text",) for n in inline):
                return False
    return True


def _prefix(text: str, first: str, rest: str) -> str:
    lines = text.split("\n")
    return "\n".join(
        (first if i == 0 else rest if line else rest.rstrip()) + line
        for i, line in enumerate(lines)
    )


def _pop_spaces(out: list[str]) -> str:
    if not out:
        return ""
    last = out[-1]
    stripped = last.rstrip(" ")
    if stripped == last or last.endswith("\\ "):
        return ""
    out[-1] = stripped
    return last[len(stripped) :]


def _escape(text: str) -> str:
    return _ESCAPED.sub(r"\\\1", text).replace("\n", " ")


def _guard_line_starts(text: str) -> str:
    """A paragraph that starts like a heading, a list item or a quote stays a paragraph."""
    return "\n".join(_LINE_START.sub(r"\1\\\2", line, count=1) for line in text.split("\n"))


def _code(text: str) -> str:
    fence = "`" * (_longest_run(text, "`") + 1)
    pad = (
        " "
        if text.startswith("`")
        or text.endswith("`")
        or (text.startswith(" ") and text.endswith(" ") and text.strip())
        else ""
    )
    return f"{fence}{pad}{text}{pad}{fence}"


def _longest_run(text: str, char: str) -> int:
    runs = re.findall(f"{re.escape(char)}+", text)
    return max((len(r) for r in runs), default=0)


def _destination(url: str) -> str:
    if not url or re.search(r"[\s()<>]", url):
        return "<" + url.replace("<", "%3C").replace(">", "%3E") + ">"
    return url


def _escape_title(title: str) -> str:
    return title.replace("\\", "\\\\").replace('"', '\\"')
