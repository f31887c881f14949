"""The structural check of Yjs updates: real updates pass, anything else is refused with
MalformedUpdate (never another exception), and what passes, yrs applies whole."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycrdt import Doc, Text, XmlFragment, write_var_uint

from collab import yupdate
from collab.protocol import ProtocolError
from collab.room import DocumentDamaged, Room
from collab.state import decode_state_vector
from collab.yupdate import MalformedUpdate

from .corpus import (
    any_update,
    deep_any,
    deep_json_format,
    item_in_parent,
    real_updates,
    type_with_ref,
)

DEPTH = 128
EXAMPLES = int(os.environ.get("COLLAB_FUZZ_EXAMPLES", "300"))


def test_real_updates_pass() -> None:
    for update in real_updates():
        yupdate.check(update, DEPTH)


def test_every_truncation_is_refused_or_applies_whole() -> None:
    for update in real_updates()[:40]:
        for end in range(len(update)):
            try:
                yupdate.check(update[:end], DEPTH)
            except MalformedUpdate:
                continue
            Doc().apply_update(update[:end])


@pytest.mark.parametrize("make", [deep_any, deep_json_format])
def test_nesting_is_bounded(make: Any) -> None:
    yupdate.check(make(DEPTH), DEPTH)
    with pytest.raises(MalformedUpdate, match="nested deeper"):
        yupdate.check(make(DEPTH + 1), DEPTH)
    # The depth that took the process down with a segmentation fault.
    with pytest.raises(MalformedUpdate, match="nested deeper"):
        yupdate.check(make(26_000), DEPTH)


def test_trailing_bytes_are_refused() -> None:
    with pytest.raises(MalformedUpdate, match="trailing"):
        yupdate.check(b"\x00\x00" + b"\x00" * 1024, DEPTH)
    with pytest.raises(MalformedUpdate, match="trailing"):
        yupdate.check(real_updates()[0] + b"junk", DEPTH)


def _one_struct(client: int, clock: int, struct: bytes) -> bytes:
    return (
        write_var_uint(1) + write_var_uint(1) + write_var_uint(client) + write_var_uint(clock)
    ) + struct


ROOT_TEXT = write_var_uint(1) + write_var_uint(4) + b"text"

REFUSED = {
    "unknown content type": _one_struct(1, 0, bytes([0x0B]) + ROOT_TEXT + b"\x00") + b"\x00",
    "empty string": _one_struct(1, 0, bytes([4]) + ROOT_TEXT + b"\x00") + b"\x00",
    "string not UTF-8": _one_struct(1, 0, bytes([4]) + ROOT_TEXT + b"\x02\xc3\x28") + b"\x00",
    "GC of length 0": _one_struct(1, 0, b"\x00\x00") + b"\x00",
    "flags on a GC": _one_struct(1, 0, b"\x80\x01") + b"\x00",
    "unknown parent info": _one_struct(1, 0, bytes([4, 7]) + b"\x01a") + b"\x00",
    "unknown type": _one_struct(1, 0, bytes([7]) + ROOT_TEXT + b"\x09") + b"\x00",
    "clock past 2^31": _one_struct(1, 2**31, b"\x00\x01") + b"\x00",
    "client past 2^53": _one_struct(2**53, 0, b"\x00\x01") + b"\x00",
    "client listed twice": (
        write_var_uint(2) + (b"\x01\x05\x00\x00\x01") * 2 + b"\x00"  # two GCs of client 5
    ),
    "count past the size": write_var_uint(1000) + b"\x00",
    "deletion past 2^31": b"\x00\x01\x05\x01" + write_var_uint(2**31) + b"\x01",
    "empty deletion": b"\x00\x01\x05\x01\x00\x00",
    "unknown value tag": any_update(bytes([100])),
    "__proto__ key": any_update(bytes([118, 1]) + b"\x09__proto__" + bytes([126])),
    "NaN in JSON": _one_struct(1, 0, bytes([5]) + ROOT_TEXT + b"\x03NaN") + b"\x00",
    "invalid JSON": _one_struct(1, 0, bytes([5]) + ROOT_TEXT + b"\x02{x") + b"\x00",
    "subdocument options not an object": (
        _one_struct(1, 0, bytes([9]) + ROOT_TEXT + b"\x01g" + bytes([126])) + b"\x00"
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_malformed_structs_are_refused(case: str) -> None:
    with pytest.raises(MalformedUpdate):
        yupdate.check(REFUSED[case], DEPTH)


def test_state_vectors() -> None:
    yupdate.check_state_vector(b"\x00")
    yupdate.check_state_vector(b"\x01\x05\x10")
    for bad in (b"", b"\x01\x05", b"\x00\x00", b"\x02\x05\x10"):
        with pytest.raises(MalformedUpdate):
            yupdate.check_state_vector(bad)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.binary(max_size=256))
def test_any_bytes_are_checked_without_other_errors(data: bytes) -> None:
    try:
        yupdate.check(data, DEPTH)
    except MalformedUpdate:
        return
    Doc().apply_update(data)


def mutations(data: bytes) -> st.SearchStrategy[bytes]:
    """Bit flips, byte changes, truncation, splices and deletions of ``data``."""
    index = st.integers(0, max(len(data) - 1, 0))

    def flip(pos: int, bit: int, value: bytes) -> bytes:
        if not value:
            return value
        pos %= len(value)
        return value[:pos] + bytes([value[pos] ^ (1 << bit)]) + value[pos + 1 :]

    def splice(pos: int, junk: bytes, value: bytes) -> bytes:
        return value[:pos] + junk + value[pos:]

    def delete(pos: int, count: int, value: bytes) -> bytes:
        return value[:pos] + value[pos + count :]

    edit = st.one_of(
        st.builds(lambda p, b: lambda v: flip(p, b, v), index, st.integers(0, 7)),
        st.builds(lambda p, j: lambda v: splice(p, j, v), index, st.binary(min_size=1, max_size=4)),
        st.builds(lambda p, n: lambda v: delete(p, n, v), index, st.integers(1, 3)),
        st.builds(lambda p: lambda v: v[:p], index),
        st.builds(  # a length or count blown up to a huge value
            lambda p: lambda v: splice(p, b"\xff\xff\xff\xff\x0f", v), index
        ),
    )
    return st.lists(edit, min_size=1, max_size=3).map(lambda edits: _apply_edits(data, edits))


def _apply_edits(data: bytes, edits: list[Any]) -> bytes:
    for edit in edits:
        data = edit(data)
    return data


@st.composite
def mutated_update(draw: st.DrawFn) -> tuple[int, bytes]:
    updates = real_updates()
    position = draw(st.integers(0, len(updates) - 1))
    return position, draw(mutations(updates[position]))


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(mutated_update())
def test_mutated_updates_are_refused_or_applied_whole(case: tuple[int, bytes]) -> None:
    """yrs panics, raises part-way or crashes on some mutations of real updates: a room
    refuses every one of those before yrs sees it."""
    position, update = case
    doc: Doc[Any] = Doc()
    for earlier in real_updates()[:position]:
        doc.apply_update(earlier)
    room = Room("fuzz", doc, max_depth=DEPTH)
    before = doc.get_update()
    try:
        room.apply_update(update, "api")
    except DocumentDamaged:
        raise AssertionError(f"yrs failed on a checked update: {update.hex()}") from None
    except ProtocolError:
        assert doc.get_update() == before


def _items(*structs: bytes) -> bytes:
    return write_var_uint(len(structs)) + b"".join(structs) + b"\x00"


def _document() -> Doc[Any]:
    doc: Doc[Any] = Doc()
    for update in real_updates():
        doc.apply_update(update)
    return doc


def test_an_item_in_a_parent_that_is_not_a_type_is_refused_whole() -> None:
    doc = _document()
    before = doc.get_update()
    valid = b"\x01\x05\x00\x04\x01\x04text\x01Q"  # client 5 types "Q" at the start
    # Client 3's item names the document's first character as its parent; yrs would
    # apply client 5's "Q", then fail.
    update = _items(valid, item_in_parent(3, (4242, 6)))
    with pytest.raises(MalformedUpdate, match="not a shared type"):
        Room("a", doc).apply_update(update, "api")
    assert doc.get_update() == before
    # The same parent inside the update, as one that is not a type.
    inside = _items(item_in_parent(3, (9, 0)), b"\x01\x09\x00\x04\x01\x04text\x01Q")
    with pytest.raises(MalformedUpdate, match="not a shared type"):
        Room("a", doc).apply_update(inside, "api")


def test_an_item_in_a_parent_still_to_come_is_refused() -> None:
    """Held back, it would break the room when the client that owns that ID writes a
    character there: every later edit of that client would fail."""
    doc = _document()
    future = (4242, decode_state_vector(doc.get_state())[4242] + 1)
    with pytest.raises(MalformedUpdate, match="not in the document"):
        Room("a", doc).apply_update(_items(item_in_parent(3, future)), "api")


def test_an_item_in_a_real_type_is_applied() -> None:
    doc = _document()
    line = (4242, 1)  # the paragraph's XmlText: an existing shared type, named by its ID
    Room("a", doc).apply_update(_items(item_in_parent(3, line, b"first")), "api")
    assert "first" in str(doc.get("default", type=XmlFragment))


def _typed_text() -> Room:
    doc: Doc[Any] = Doc(client_id=77)
    doc.get("t", type=Text).insert(0, "hello")
    room = Room("refs", Doc())
    room.apply_update(doc.get_update(), "api")
    return room


@pytest.mark.parametrize("origin", [None, (77, 4)])
@pytest.mark.parametrize("ref", [b"\x82\x00", b"\x86\x80\x00", b"\x80\x00", b"\x85"])
def test_a_type_ref_longer_than_a_byte_is_refused_not_taken_for_damage(
    ref: bytes, origin: tuple[int, int] | None
) -> None:
    """yrs reads a type's ref as one byte: a longer varuint of a valid ref (0x82 0x00 is
    Text) passed the check, then yrs could not read the update. As a root's child
    that looked like a document yrs had failed on, and the room was reloaded, its
    peers all closed; after an item, merging it for its depth raised ValueError."""
    room = _typed_text()
    damaged: list[Room] = []
    room.damage_listeners.append(damaged.append)
    before = room.doc.get_update()
    update = type_with_ref(ref, origin)
    with pytest.raises(MalformedUpdate):
        yupdate.inspect(update, DEPTH)
    with pytest.raises(MalformedUpdate):
        room.apply_update(update, "api")
    assert not damaged
    assert room.doc.get_update() == before


@pytest.mark.parametrize("origin", [None, (77, 4)])
def test_a_type_ref_of_one_byte_is_taken(origin: tuple[int, int] | None) -> None:
    room = _typed_text()
    room.apply_update(type_with_ref(b"\x02", origin), "api")
    assert decode_state_vector(room.doc.get_state())[999] == 1


def test_an_update_yrs_cannot_merge_for_its_depth_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Should yrs refuse to merge an update the check passed, to count the depth of
    the types it places: the update is refused, not an error out of the room."""

    def refuse(*updates: bytes) -> bytes:
        raise ValueError("Cannot merge updates")

    room = _typed_text()
    monkeypatch.setattr("collab.room.merge_updates", refuse)
    before = room.doc.get_update()
    with pytest.raises(MalformedUpdate, match="cannot merge"):
        room.apply_update(type_with_ref(b"\x02", (77, 4)), "api")
    assert room.doc.get_update() == before


def _one_byte_edits(update: bytes) -> Iterator[bytes]:
    """Each byte of ``update`` changed in the ways an encoder gets wrong: one more or
    one less, its top bit set, zeroed, or (below 0x80) as a two-byte varuint."""
    for pos, byte in enumerate(update):
        head, tail = update[:pos], update[pos + 1 :]
        for changed in {(byte + 1) & 0xFF, (byte - 1) & 0xFF, byte | 0x80, 0}:
            yield head + bytes([changed]) + tail
        if byte < 0x80:
            yield head + bytes([byte | 0x80, 0]) + tail


def test_no_one_byte_edit_of_a_real_update_is_taken_for_damage() -> None:
    """Every such edit of every update of the corpus, after the ones before it: the
    room refuses it or applies it whole; yrs never fails on one the check passed (the
    type ref read as a varuint was found this way)."""
    updates = real_updates()
    tried = 0
    for position, update in enumerate(updates):
        base: Doc[Any] = Doc()
        for earlier in updates[:position]:
            base.apply_update(earlier)
        snapshot = base.get_update()
        for edited in _one_byte_edits(update):
            doc: Doc[Any] = Doc()
            doc.apply_update(snapshot)
            before = doc.get_update()
            tried += 1
            try:
                Room("edits", doc, max_depth=DEPTH).apply_update(edited, "api")
            except DocumentDamaged:
                raise AssertionError(f"yrs failed on a checked update: {edited.hex()}") from None
            except ProtocolError:
                assert doc.get_update() == before
    assert tried > 9000
