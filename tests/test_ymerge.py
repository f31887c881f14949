"""Group commit's merge: one update that a document applies to the same content as the
batch it merges, whatever the batch holds."""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycrdt import Doc, Text

from collab import ymerge, yupdate
from collab.persistence import log_rows
from collab.room import Room
from collab.state import decode_state_vector

from .corpus import content, real_updates
from .test_yupdate import mutated_update

EXAMPLES = int(os.environ.get("COLLAB_FUZZ_EXAMPLES", "300"))
# Real updates, some mutated, by their place in the corpus (b"" for the real one).
_cases = st.lists(
    st.one_of(mutated_update(), st.integers(0, 127).map(lambda i: (i, b""))),
    min_size=2,
    max_size=12,
)


def _applied(updates: list[bytes], base: tuple[bytes, ...] = ()) -> Doc[Any]:
    doc: Doc[Any] = Doc()
    for update in (*base, *updates):
        doc.apply_update(update)
    return doc


def test_a_session_merges_into_one_update_of_the_same_content() -> None:
    updates = list(real_updates())
    merged = ymerge.merge(updates)
    assert len(merged) == 1
    yupdate.check(merged[0], 128)
    assert content(merged[0]) == content(_applied(updates).get_update())
    assert _applied(merged).get_state() == _applied(updates).get_state()


def test_batches_after_a_base_merge_to_the_same_content() -> None:
    updates = real_updates()
    for cut in (1, 10, 40, 90):
        base, batch = updates[:cut], list(updates[cut : cut + 25])
        merged = ymerge.merge(batch)
        assert len(merged) == 1
        one, separate = _applied(merged, base), _applied(batch, base)
        assert content(one.get_update()) == content(separate.get_update())
        assert one.get_state() == separate.get_state()


def test_duplicates_and_gaps() -> None:
    updates = list(real_updates())
    batch = [updates[5], updates[7], updates[5], updates[9]]
    merged = ymerge.merge(batch)
    assert len(merged) == 1
    base = tuple(updates[:5])
    rest = [u for i, u in enumerate(updates) if i > 5 and i not in (7, 9)]
    assert content(_applied([*merged, *rest], base).get_update()) == content(
        _applied(updates).get_update()
    )


def test_forged_overlaps_are_left_unmerged() -> None:
    a: Doc[Any] = Doc(client_id=7)
    a.get("text", type=Text).insert(0, "abc")
    b: Doc[Any] = Doc(client_id=7)
    b.get("text", type=Text).insert(0, "xy")
    batch = [a.get_update(), b.get_update()]
    assert ymerge.merge(batch) == batch


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(_cases, st.integers(0, 127))
def test_the_log_rows_of_what_a_room_accepts_rebuild_what_it_holds(
    cases: list[tuple[int, bytes]], cut: int
) -> None:
    """Real updates and accepted mutations of them, in any order, after any base: the
    log rows of what the room accepted rebuild what it holds."""
    updates = real_updates()
    doc = _applied([], updates[:cut])
    room = Room("merge", doc)
    accepted = []
    for position, mutated in cases:
        update = mutated or updates[position]
        try:
            room.apply_update(update, "api")
        except yupdate.MalformedUpdate:
            continue
        accepted.append((update, room.applied_whole, room.applied_parts))
    rows = log_rows(accepted)
    rebuilt = _applied(rows, updates[:cut])
    assert content(rebuilt.get_update()) == content(doc.get_update())
    # The same clocks (yrs lists a state vector's clients in no set order).
    assert decode_state_vector(rebuilt.get_state()) == decode_state_vector(doc.get_state())


def test_inspect_reads_the_parts_split_reads() -> None:
    for update in real_updates():
        assert yupdate.inspect(update, 128, parts=True).parts == yupdate.split(update)
        assert yupdate.inspect(update, 128).parts is None


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(_cases)
def test_a_merge_given_the_parts_writes_what_one_that_reads_them_does(
    cases: list[tuple[int, bytes]],
) -> None:
    """The parts inspect read on arrival stand for the update's own bytes in the merge:
    the same merged row, byte for byte, with every update given its parts or some."""
    updates = real_updates()
    batch, parts = [], []
    for position, mutated in cases:
        update = mutated or updates[position]
        try:
            checked = yupdate.inspect(update, 128, parts=True)
        except yupdate.MalformedUpdate:
            continue
        batch.append(update)
        parts.append(checked.parts)
    assert ymerge.merge(batch, parts) == ymerge.merge(batch)
    some = [split if i % 2 else None for i, split in enumerate(parts)]
    assert ymerge.merge(batch, some) == ymerge.merge(batch)


def test_a_room_hands_the_log_the_parts_of_what_it_applied_whole() -> None:
    updates = real_updates()
    room = Room("parts", _applied([]))
    handed: list[tuple[bool, yupdate.Parts | None]] = []
    room.update_listeners.append(
        lambda room, update, origin: handed.append((room.applied_whole, room.applied_parts))
    )
    for update in updates[:20]:
        room.apply_update(update, "api")
        whole, parts = handed[-1]
        assert parts == (yupdate.split(update) if whole else None)
        assert room.applied_parts is None  # not kept past the listeners
    assert sum(whole for whole, _ in handed) >= 15
    late = updates[25]  # its structs wait for those of 20 to 24
    room.apply_update(late, "api", strict=False)
    assert handed[-1] == (False, None)
