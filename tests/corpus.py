"""Real Yjs updates made by pycrdt, and hand-built hostile ones, for the update tests."""

from __future__ import annotations

import functools
from typing import Any

from pycrdt import Doc, Map, Text, XmlElement, XmlFragment, XmlText, write_var_uint

ROOTS = {"text": Text, "default": XmlFragment, "meta": Map}


@functools.cache
def real_updates() -> tuple[bytes, ...]:
    """The updates of an editing session: paragraphs, marks, deletions, emoji, a map of
    JSON values, in the order they were made (each depends on the ones before)."""
    doc: Doc[Any] = Doc(client_id=4242)
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    fragment = doc.get("default", type=XmlFragment)
    text = doc.get("text", type=Text)
    meta = doc.get("meta", type=Map)
    paragraph = XmlElement("paragraph")
    fragment.children.append(paragraph)
    line = XmlText()
    paragraph.children.append(line)
    for i in range(48):
        line.insert(len(str(line)) if i % 7 else 0, "héllo 😀"[i % 7])
        text.insert(len(text), "ab"[i % 2])
        if i % 13 == 0:
            line.format(0, 3, {"bold": True})
        if i % 11 == 0:
            meta[f"k{i}"] = {"list": [1, 2.5, None, "x"], "nested": {"ok": True}}
        if i % 9 == 0:
            del line[0:1]
            del text[0:1]
        if i % 20 == 0:
            heading = XmlElement("heading", {"level": "1"})
            fragment.children.append(heading)
            title = XmlText()
            heading.children.append(title)
            title.insert(0, "Title")
    return tuple(updates)


def content(update: bytes) -> dict[str, Any]:
    """What a document holds, root by root, as plain values."""
    doc: Doc[Any] = Doc()
    doc.apply_update(update)
    return {
        name: str(doc.get(name, type=kind)) if kind is not Map else doc.get(name, type=Map).to_py()
        for name, kind in ROOTS.items()
    }


def _item_update(content_ref: int, body: bytes, *, client: int = 777, clock: int = 0) -> bytes:
    """One item in the root map "meta" under key "k", with the given content."""
    info = content_ref | 0x20  # parent sub (a map key)
    item = bytes([info]) + write_var_uint(1) + _string(b"meta") + _string(b"k") + body
    return (
        write_var_uint(1)
        + write_var_uint(1)
        + write_var_uint(client)
        + write_var_uint(clock)
        + item
        + write_var_uint(0)
    )


def _string(value: bytes) -> bytes:
    return write_var_uint(len(value)) + value


def deep_any(depth: int) -> bytes:
    """A map entry holding arrays nested ``depth`` deep (about 2 bytes a level)."""
    return _item_update(8, write_var_uint(1) + bytes([117, 1]) * depth + bytes([126]))


def deep_json_format(depth: int) -> bytes:
    """A formatting mark whose JSON value is nested ``depth`` deep."""
    value = ("[" * depth + "]" * depth).encode()
    info = 6  # ContentFormat, in the root text
    item = bytes([info]) + write_var_uint(1) + _string(b"text") + _string(b"bold") + _string(value)
    return write_var_uint(1) + write_var_uint(1) + write_var_uint(778) + b"\x00" + item + b"\x00"


def any_update(body: bytes) -> bytes:
    """A map entry holding one lib0 "any" value encoded as ``body``."""
    return _item_update(8, write_var_uint(1) + body)


# A document, and a mutated update that made yrs raise RuntimeError part-way through
# applying it to that document (found by fuzzing real updates).
HALF_APPLIED_BASE = bytes.fromhex(
    "011983b3dadaaab5bf090007010764656661756c740309706172616772617068070083b3dadaaab5bf090006"
    "010083b3dadaaab5bf0901014683b3dadaaab5bf090204626f6c6404747275658683b3dadaaab5bf09020462"
    "6f6c64046e756c6c2801046d657461026b30017602016175047c3f8000007c402000007e7701780162760101"
    "63788783b3dadaaab5bf0900030768656164696e67070083b3dadaaab5bf090606040083b3dadaaab5bf0907"
    "055469746c654483b3dadaaab5bf090302c3a90a064183b3dadaaab5bf090d010a052801046d657461036b31"
    "3101760201627601016378016175047c3f8000007c402000007e7701780a058483b3dadaaab5bf09040a6c6f"
    "f09f988068c3a96c8783b3dadaaab5bf0906030768656164696e67070083b3dadaaab5bf092706040083b3da"
    "daaab5bf0928055469746c650a018483b3dadaaab5bf0926016f2801046d657461036b323201760201627601"
    "016378016175047c3f8000007c402000007e7701788483b3dadaaab5bf092f04f09f98800a222801046d6574"
    "61036b3434017602016175047c3f0000007c402000007e770178016276010163780183b3dadaaab5bf090202"
    "011401"
)
HALF_APPLIED_UPDATE = bytes.fromhex("010183b3dadaaa0abf09144483b3dadaaab5bf090d02c3a900")


def deletion(client: int, clock: int, length: int) -> bytes:
    """An update that deletes ``length`` units of ``client`` from ``clock`` on."""
    return (
        b"\x00\x01"
        + write_var_uint(client)
        + b"\x01"
        + write_var_uint(clock)
        + write_var_uint(length)
    )


def item_in_parent(client: int, parent: tuple[int, int], text: bytes = b"Z") -> bytes:
    """One client's single string item, in the type with ID ``parent`` (the structs of
    an update, without its count or delete set)."""
    return (
        b"\x01"
        + write_var_uint(client)
        + b"\x00\x04\x00"
        + write_var_uint(parent[0])
        + write_var_uint(parent[1])
        + write_var_uint(len(text))
        + text
    )


def type_with_ref(ref: bytes, origin: tuple[int, int] | None = None) -> bytes:
    """An update of one shared type, client 999's, with its type ref written as
    ``ref``: a root "m"'s child, or inserted after the item ``origin``."""
    placed = (
        b"\x07\x01\x01m"
        if origin is None
        else b"\x87" + write_var_uint(origin[0]) + write_var_uint(origin[1])
    )
    return b"\x01\x01" + write_var_uint(999) + b"\x00" + placed + ref + b"\x00"
