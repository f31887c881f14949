"""A strict structural check of Yjs v1 updates, before yrs or any Yjs client sees them.

yrs trusts its input: deep nesting overflows its stack and takes the process down, some
malformed updates panic or are applied half-way, and bytes that yrs accepts can still
stop every JS client from opening the document. ``check`` walks an update the way
yjs's decoder does, without recursion, and refuses anything that both decoders would
not read the same way: truncation, trailing bytes, unknown tags, invalid UTF-8 or JSON,
empty structs, a client listed twice, clocks past what yrs can count, nesting past
``max_depth``.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from .protocol import ProtocolError

# yrs counts clocks in 32 bits; stay well below, so that later edits cannot overflow.
MAX_CLOCK = 2**31
# The largest integer a JS client reads exactly.
MAX_SAFE_INTEGER = 2**53 - 1

_BITS5 = 0x1F
_ORIGIN = 0x80
_RIGHT_ORIGIN = 0x40
_PARENT_SUB = 0x20

_GC = 0
_SKIP = 10
_DELETED, _JSON, _BINARY, _STRING, _EMBED, _FORMAT, _TYPE, _ANY, _DOC = range(1, 10)
_XML_ELEMENT, _XML_HOOK = 3, 5
_TYPE_REFS = 7

# lib0 "any" tags
_ANY_INT, _ANY_F32, _ANY_F64, _ANY_BIGINT, _ANY_STRING = 125, 124, 123, 122, 119
_ANY_OBJECT, _ANY_ARRAY, _ANY_BYTES = 118, 117, 116
_ANY_SCALARS = frozenset((127, 126, 121, 120))


class MalformedUpdate(ProtocolError):
    """The bytes are not a Yjs v1 update that collab accepts."""


ID = tuple[int, int]  # (client, clock)


class _Reader:
    __slots__ = ("astral", "data", "end", "gcs", "parents", "pos", "types")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.end = len(data)
        # Noted only when met (rare): what parent references are checked against.
        self.parents: list[ID] | None = None
        self.types: set[ID] | None = None
        self.gcs: list[tuple[int, int, int]] | None = None  # client, start, end
        self.astral: list[ID] | None = None  # see Checked.astral

    def uint(self, limit: int = MAX_SAFE_INTEGER) -> int:
        data, pos = self.data, self.pos
        if pos >= self.end:
            raise MalformedUpdate("truncated")
        byte = data[pos]
        pos += 1
        if byte < 0x80:
            self.pos = pos
            if byte > limit:
                raise MalformedUpdate("integer out of range")
            return byte
        result = byte & 0x7F
        shift = 7
        while True:
            if pos >= self.end:
                raise MalformedUpdate("truncated")
            byte = data[pos]
            pos += 1
            result |= (byte & 0x7F) << shift
            if result > limit:
                raise MalformedUpdate("integer out of range")
            if byte < 0x80:
                self.pos = pos
                return result
            shift += 7

    def signed(self) -> None:
        byte = self.byte()
        if byte & 0x80:
            self.uint(MAX_SAFE_INTEGER >> 6)

    def byte(self) -> int:
        if self.pos >= self.end:
            raise MalformedUpdate("truncated")
        byte = self.data[self.pos]
        self.pos += 1
        return byte

    def skip(self, length: int) -> None:
        if self.pos + length > self.end:
            raise MalformedUpdate("truncated")
        self.pos += length

    def bytes_(self) -> None:
        self.skip(self.uint())

    def string(self) -> str:
        length = self.uint()
        start = self.pos
        self.skip(length)
        try:
            return self.data[start : self.pos].decode()
        except UnicodeDecodeError:
            raise MalformedUpdate("a string is not UTF-8") from None

    def count(self) -> int:
        """A number of items that follow, each at least one byte long."""
        count = self.uint()
        if count > self.end - self.pos:
            raise MalformedUpdate("a count exceeds the update's size")
        return count


class Checked(NamedTuple):
    # The parents it names by ID that it does not hold itself: each must be a shared
    # type (or deleted) in the document, which only the document can tell.
    parents: list[ID]
    # Whether it creates shared types (only those can nest the document deeper).
    types: bool
    # What it deletes, as (client, clock, length): each range must end between
    # characters, which only the document can tell.
    deletions: Deletions
    # The edge inside each character of two UTF-16 units (outside the BMP: an emoji)
    # of its strings, as the ID of the character's second unit; empty in the common case.
    astral: list[ID]
    # ``split(update)``, when asked for: read in the same pass as the check.
    parts: Parts | None = None


def inspect(update: bytes, max_depth: int, *, parts: bool = False) -> Checked:
    """Raise MalformedUpdate unless ``update`` is a well-formed Yjs v1 update. With
    ``parts``, its ``split`` too, for a merge that need not read it again."""
    reader = _Reader(update)
    split_: Parts | None = ({}, []) if parts else None
    deletions: Deletions = [] if split_ is None else split_[1]
    ranges = _walk(reader, max_depth, split_, deletions)
    parents = [] if reader.parents is None else _outside_parents(reader, ranges)
    return Checked(parents, reader.types is not None, deletions, reader.astral or [], split_)


def astral(update: bytes) -> list[ID]:
    """``Checked.astral`` of a well-formed update (yrs's own encoding included)."""
    reader = _Reader(update)
    _walk(reader, MAX_CLOCK, None)
    return reader.astral or []


def check(update: bytes, max_depth: int) -> list[ID]:
    """``inspect``'s parents."""
    return inspect(update, max_depth).parents


# client -> its structs as (clock, length, encoded bytes), in the update's order
Structs = dict[int, list[tuple[int, int, bytes]]]
Deletions = list[tuple[int, int, int]]  # client, clock, length
Parts = tuple[Structs, Deletions]


def split(update: bytes) -> Parts:
    """A checked update's structs, each as its bytes, and its deletions."""
    reader = _Reader(update)
    structs: Structs = {}
    deletions: Deletions = []
    _walk(reader, MAX_CLOCK, (structs, deletions))
    return structs, deletions


def _walk(
    reader: _Reader,
    max_depth: int,
    parts: tuple[Structs, Deletions] | None,
    deletions: Deletions | None = None,
) -> dict[int, tuple[int, int]]:
    """Check the whole update; the clock range each client's structs cover. With
    ``parts``, each struct's bytes and each deletion are collected there."""
    ranges: dict[int, tuple[int, int]] = {}
    for _ in range(reader.count()):
        structs = reader.count()
        client = reader.uint()
        if client in ranges:
            raise MalformedUpdate("a client is listed twice")
        start = clock = reader.uint(MAX_CLOCK)
        if structs == 0:
            raise MalformedUpdate("a client with no structs")
        spans = None if parts is None else parts[0].setdefault(client, [])
        for _ in range(structs):
            begin = reader.pos
            length = _struct(reader, max_depth, client, clock)
            if spans is not None:
                spans.append((clock, length, reader.data[begin : reader.pos]))
            clock += length
            if clock > MAX_CLOCK:
                raise MalformedUpdate("a clock out of range")
        ranges[client] = (start, clock)
    _delete_set(reader, deletions if parts is None else parts[1])
    if reader.pos != reader.end:
        raise MalformedUpdate("trailing bytes after the update")
    return ranges


def _outside_parents(reader: _Reader, ranges: dict[int, tuple[int, int]]) -> list[ID]:
    """The parents not in the update; MalformedUpdate if one in it is not a type.

    yrs refuses an item whose parent is neither a type nor deleted, but only after
    integrating what came before it in the update.
    """
    outside = []
    types = reader.types or set()
    for parent in reader.parents or ():
        client, clock = parent
        held = ranges.get(client)
        if held is None or not held[0] <= clock < held[1]:
            outside.append(parent)
        elif parent not in types and not any(
            gc_client == client and start <= clock < end
            for gc_client, start, end in reader.gcs or ()
        ):
            raise MalformedUpdate("an item's parent is not a shared type")
    return outside


def parent_kind(diff: bytes) -> str:
    """What the first struct of ``diff`` (yrs's own encoding) is: "type", "deleted"
    (garbage-collected) or "other"."""
    reader = _Reader(diff)
    if reader.count() == 0:
        return "other"
    reader.count()
    reader.uint()
    reader.uint()
    kind = reader.byte() & _BITS5
    return "type" if kind == _TYPE else "deleted" if kind == _GC else "other"


def starts_astral(diff: bytes) -> bool:
    """Whether the first struct of ``diff`` (yrs's own encoding, from some clock on) is
    text that begins with a character outside the BMP, two UTF-16 units: then the clock
    after it falls inside that character."""
    reader = _Reader(diff)
    if reader.count() == 0:
        return False
    reader.count()
    reader.uint()
    reader.uint()
    info = reader.byte()
    if info & _BITS5 != _STRING:
        return False
    if info & _ORIGIN:
        reader.uint()
        reader.uint()
    if info & _RIGHT_ORIGIN:
        reader.uint()
        reader.uint()
    if not info & (_ORIGIN | _RIGHT_ORIGIN):
        if reader.uint() == 1:
            reader.string()
        else:
            reader.uint()
            reader.uint()
        if info & _PARENT_SUB:
            reader.string()
    text = reader.string()
    return bool(text) and text[0] > "\uffff"


def check_state_vector(state_vector: bytes) -> None:
    reader = _Reader(state_vector)
    for _ in range(reader.count()):
        reader.uint()
        reader.uint()
    if reader.pos != reader.end:
        raise MalformedUpdate("trailing bytes after the state vector")


def _struct(reader: _Reader, max_depth: int, client: int, clock: int) -> int:
    """Check one struct, the one at ``clock``; its length in clock ticks."""
    info = reader.byte()
    kind = info & _BITS5
    if kind in (_GC, _SKIP):
        if info != kind:
            raise MalformedUpdate("flags on a GC or skip struct")
        length = _length(reader)
        if kind == _GC:
            if reader.gcs is None:
                reader.gcs = []
            reader.gcs.append((client, clock, clock + length))
        return length
    if info & _ORIGIN:
        reader.uint()
        reader.uint(MAX_CLOCK)
    if info & _RIGHT_ORIGIN:
        reader.uint()
        reader.uint(MAX_CLOCK)
    if not info & (_ORIGIN | _RIGHT_ORIGIN):
        parent = reader.uint()
        if parent == 1:
            reader.string()
        elif parent == 0:
            parent_id = (reader.uint(), reader.uint(MAX_CLOCK))
            if reader.parents is None:
                reader.parents = []
            reader.parents.append(parent_id)
        else:
            raise MalformedUpdate("unknown parent info")
        if info & _PARENT_SUB:
            reader.string()
    if kind == _STRING:
        return _string(reader, client, clock)
    if kind == _TYPE:
        if reader.types is None:
            reader.types = set()
        reader.types.add((client, clock))
    return _content(reader, kind, max_depth)


def _string(reader: _Reader, client: int, clock: int) -> int:
    """A string's length in UTF-16 units (Yjs's clock ticks); the edge inside each
    character of two units is noted in ``reader.astral``."""
    text = reader.string()
    if not text:
        raise MalformedUpdate("an empty string")
    if text.isascii() or max(text) <= "\uffff":
        return len(text)
    if reader.astral is None:
        reader.astral = []
    edges = reader.astral
    edge = clock
    for char in text:
        edge += 1
        if char > "\uffff":
            edges.append((client, edge))
            edge += 1
    return edge - clock


def _content(reader: _Reader, kind: int, max_depth: int) -> int:
    if kind == _ANY:
        count = _positive(reader.count())
        for _ in range(count):
            _any(reader, max_depth)
        return count
    if kind == _FORMAT:
        reader.string()
        _json(reader.string(), max_depth)
        return 1
    if kind == _DELETED:
        return _length(reader)
    if kind == _TYPE:
        # One byte, as yrs reads it: Yjs writes a varuint, which is that byte for every
        # type there is, and yrs refused a longer one (0x82 0x00, a Text) after the
        # check had passed it, as a document it could not read.
        ref = reader.byte()
        if ref >= _TYPE_REFS:
            raise MalformedUpdate("unknown type")
        if ref in (_XML_ELEMENT, _XML_HOOK):
            reader.string()
        return 1
    if kind == _EMBED:
        _json(reader.string(), max_depth)
        return 1
    if kind == _BINARY:
        reader.bytes_()
        return 1
    if kind == _JSON:
        count = _positive(reader.count())
        for _ in range(count):
            value = reader.string()
            if value != "undefined":
                _json(value, max_depth)
        return count
    if kind == _DOC:
        reader.string()
        if reader.byte() != _ANY_OBJECT:
            raise MalformedUpdate("subdocument options are not an object")
        reader.pos -= 1
        _any(reader, max_depth)
        return 1
    raise MalformedUpdate(f"unknown content type {kind}")


def _length(reader: _Reader) -> int:
    return _positive(reader.uint(MAX_CLOCK))


def _positive(length: int) -> int:
    if length == 0:
        raise MalformedUpdate("an empty struct")
    return length


def _any(reader: _Reader, max_depth: int) -> None:
    """One lib0 "any" value, nested arrays and objects included, without recursion."""
    # Items left to read at each open level; an object's items are key-value pairs.
    open_levels: list[int] = []
    keyed: list[bool] = []
    while True:
        if keyed and keyed[-1] and reader.string() == "__proto__":
            raise MalformedUpdate("an object key JS clients cannot read")
        tag = reader.byte()
        if tag in _ANY_SCALARS:
            pass
        elif tag == _ANY_STRING:
            reader.string()
        elif tag == _ANY_INT:
            reader.signed()
        elif tag in (_ANY_F64, _ANY_BIGINT):
            reader.skip(8)
        elif tag == _ANY_F32:
            reader.skip(4)
        elif tag == _ANY_BYTES:
            reader.bytes_()
        elif tag in (_ANY_OBJECT, _ANY_ARRAY):
            count = reader.count()
            if count:
                if len(open_levels) >= max_depth:
                    raise MalformedUpdate(f"values nested deeper than {max_depth}")
                open_levels.append(count)
                keyed.append(tag == _ANY_OBJECT)
                continue
        else:
            raise MalformedUpdate(f"unknown value tag {tag}")
        while open_levels:
            open_levels[-1] -= 1
            if open_levels[-1]:
                break
            open_levels.pop()
            keyed.pop()
        if not open_levels:
            return


def _delete_set(reader: _Reader, deletions: Deletions | None) -> None:
    clients: set[int] = set()
    for _ in range(reader.count()):
        client = reader.uint()
        if client in clients:
            raise MalformedUpdate("a client is listed twice in the delete set")
        clients.add(client)
        for _ in range(reader.count()):
            clock = reader.uint(MAX_CLOCK)
            length = _length(reader)
            if clock + length > MAX_CLOCK:
                raise MalformedUpdate("a deletion out of range")
            if deletions is not None:
                deletions.append((client, clock, length))


def _json(text: str, max_depth: int) -> None:
    """A JSON text both JSON.parse and yrs read the same way, nested at most max_depth."""
    if text.count("[") + text.count("{") > max_depth and _json_depth(text) > max_depth:
        raise MalformedUpdate(f"JSON nested deeper than {max_depth}")
    try:
        json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise MalformedUpdate("invalid JSON") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _json_depth(text: str) -> int:
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


class Header(NamedTuple):
    """Where one struct of a checked update sits: its ID and length, and what places
    it (its left and right neighbours, or its parent when it has neither)."""

    client: int
    clock: int
    length: int
    kind: int
    origin: ID | None
    right_origin: ID | None
    parent: ID | None  # by ID; None: a root type's name, or placed by a neighbour

    @property
    def is_type(self) -> bool:
        return self.kind == _TYPE

    @property
    def is_skip(self) -> bool:
        return self.kind == _SKIP

    @property
    def placed(self) -> bool:
        """Whether it names where it goes (GC and skip structs do not)."""
        return self.kind not in (_GC, _SKIP)


def headers(update: bytes) -> list[Header]:
    """The header of each struct of a checked update, in the update's order."""
    structs, _deletions = split(update)
    found: list[Header] = []
    for client, spans in structs.items():
        for clock, length, data in spans:
            found.append(_header(_Reader(data), client, clock, length))
    return found


def _header(reader: _Reader, client: int, clock: int, length: int) -> Header:
    info = reader.byte()
    kind = info & _BITS5
    origin = right_origin = parent = None
    if kind not in (_GC, _SKIP):
        if info & _ORIGIN:
            origin = (reader.uint(), reader.uint())
        if info & _RIGHT_ORIGIN:
            right_origin = (reader.uint(), reader.uint())
        if not info & (_ORIGIN | _RIGHT_ORIGIN) and reader.uint() == 0:
            parent = (reader.uint(), reader.uint())
    return Header(client, clock, length, kind, origin, right_origin, parent)
