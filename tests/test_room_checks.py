"""A room's checks of a client's deletions and parents cost what the update holds, not
what the document holds, and refuse exactly what the document-wide checks refuse."""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

import pytest
from pycrdt import Doc, Text, XmlElement, XmlFragment, XmlText, write_var_uint

from collab import protocol
from collab.astral import READS_BEFORE_INDEXING
from collab.closecodes import CloseCode
from collab.room import Room
from collab.state import StoredDoc
from collab.yupdate import ID, MalformedUpdate

from .conftest import ServerFactory
from .corpus import deletion, item_in_parent
from .yclient import YClient

WRITER = 9
# The writer's text, in UTF-16 units: a 0, 😀 1-2, b 3, c 4. Clock 2 is inside the emoji.
TEXT = "a😀bc"
SPLITTING = [(2, 1), (1, 1), (2, 3), (0, 2)]  # (clock, length)
BETWEEN = [(1, 2), (0, 1), (3, 2), (0, 5), (0, 3), (1, 4)]


def _writer() -> tuple[Doc[Any], Text, bytes, bytes]:
    """The writer, its text, and the text as two updates: "a", then the rest after it
    (which waits in yrs for the first)."""
    writer: Doc[Any] = Doc(client_id=WRITER)
    text = writer.get("text", type=Text)
    text.insert(0, TEXT[0])
    first = writer.get_update()
    before = writer.get_state()
    text.insert(1, TEXT[1:])
    return writer, text, first, writer.get_update(before)


def _whole() -> bytes:
    return _writer()[0].get_update()


def _this_session() -> Room:
    room = Room("r", Doc())
    room.apply_update(_whole(), "peer")
    return room


def _stored() -> Room:
    """A room reopened from its store: built from the snapshot it was written as."""
    written: Doc[Any] = Doc()
    written.apply_update(_whole())
    return Room("r", StoredDoc(written.get_update(), written.get_state()))


def _from_another_process() -> Room:
    room = Room("r", Doc())
    room.apply_update(_whole(), "bus", strict=False)
    return room


def _pending_then_integrated() -> Room:
    _, _, first, rest = _writer()
    room = Room("r", Doc())
    room.apply_update(rest, "peer")  # waits for "a"
    assert str(room.doc.get("text", type=Text)) == ""
    room.apply_update(first, "peer")
    return room


def _pending_before_the_room() -> Room:
    """Held back in yrs before the room had the document (another process's update
    applied while the room loaded), integrated after."""
    _, _, first, rest = _writer()
    doc: Doc[Any] = Doc()
    doc.apply_update(rest)
    room = Room("r", doc)
    room.apply_update(first, "peer")
    return room


def _changed_outside() -> Room:
    """Changed on its document, not through ``apply_update``."""
    room = Room("r", Doc())
    room.doc.apply_update(_whole())
    return room


ROOMS: list[Callable[[], Room]] = [
    _this_session,
    _stored,
    _from_another_process,
    _pending_then_integrated,
    _pending_before_the_room,
    _changed_outside,
]


def _text(room: Room) -> str:
    again: Doc[Any] = Doc()
    again.apply_update(room.doc.get_update())
    return str(again.get("text", type=Text))


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[Doc[Any]]:
    """Each Doc.get_update call, as the document it read."""
    calls: list[Doc[Any]] = []
    original = Doc.get_update

    def counting(self: Doc[Any], state: bytes | None = None) -> bytes:
        calls.append(self)
        return original(self, state)

    monkeypatch.setattr(Doc, "get_update", counting)
    return calls


@pytest.mark.parametrize("make", ROOMS)
@pytest.mark.parametrize(("clock", "length"), SPLITTING)
def test_a_deletion_inside_an_emoji_is_refused_however_it_came(
    make: Callable[[], Room], clock: int, length: int
) -> None:
    room = make()
    assert _text(room) == TEXT
    before = room.doc.get_update()
    with pytest.raises(MalformedUpdate, match="splits a character"):
        room.apply_update(deletion(WRITER, clock, length), "peer")
    assert room.doc.get_update() == before
    assert _text(room) == TEXT


@pytest.mark.parametrize("make", ROOMS)
@pytest.mark.parametrize(("clock", "length"), BETWEEN)
def test_a_deletion_between_characters_is_taken_however_they_came(
    make: Callable[[], Room], clock: int, length: int
) -> None:
    room = make()
    room.apply_update(deletion(WRITER, clock, length), "peer")
    starts = {0: "a", 1: "😀", 3: "b", 4: "c"}  # each character by its first unit
    kept = "".join(char for at, char in starts.items() if not clock <= at < clock + length)
    assert _text(room) == kept


@pytest.mark.parametrize("make", [_this_session, _stored])
def test_half_of_a_deleted_emoji_may_be_deleted(
    make: Callable[[], Room], reads: list[Doc[Any]]
) -> None:
    """yrs holds deleted text as a length: no character is left there to split (and
    once the room has read that of an edge it knew, it does not read it again; what it
    was built from is read at each edge until it reads it whole)."""
    room = make()
    room.apply_update(deletion(WRITER, 1, 2), "peer")
    room.apply_update(deletion(WRITER, 2, 1), "peer")
    reads.clear()
    room.apply_update(deletion(WRITER, 2, 1), "peer")
    assert sum(doc is room.doc for doc in reads) == (2 if make is _stored else 0)
    assert _text(room) == "abc"


def test_a_deletion_inside_an_emoji_of_the_update_itself_is_refused() -> None:
    """yrs applies an update's deletions after its structs: one inside an emoji it
    brings splits it as well."""
    update = _whole()
    assert update.endswith(b"\x00")  # no deletions
    splitting = update[:-1] + deletion(WRITER, 2, 1)[1:]
    room = Room("r", Doc())
    with pytest.raises(MalformedUpdate, match="splits a character"):
        room.apply_update(splitting, "peer")
    assert _text(room) == ""
    room.apply_update(update[:-1] + deletion(WRITER, 1, 2)[1:], "peer")
    assert _text(room) == "abc"


def test_a_deletion_inside_an_emoji_yrs_holds_back_is_refused() -> None:
    _, _, first, rest = _writer()
    room = Room("r", Doc())
    room.apply_update(rest, "peer")
    with pytest.raises(MalformedUpdate, match="splits a character"):
        room.apply_update(deletion(WRITER, 2, 1), "peer")
    room.apply_update(first, "peer")
    assert _text(room) == TEXT


def test_edits_next_to_emoji_read_nothing_of_a_large_document(reads: list[Doc[Any]]) -> None:
    """2,000 keystrokes and deletions beside emoji, in a document with emoji and many
    deleted ranges: a check that reads the document for each deletion (yrs encodes the
    whole delete set each time) costs what the document holds, for every keystroke."""
    old: Doc[Any] = Doc(client_id=5)
    old_text = old.get("text", type=Text)
    for i in range(300):
        old_text.insert(len(str(old_text).encode()), f"{i}😀 word ")
        del old_text[0:1]
    room = Room("r", StoredDoc(old.get_update(), old.get_state()))
    writer: Doc[Any] = Doc(client_id=WRITER)
    writer.apply_update(room.doc.get_update())
    text = writer.get("text", type=Text)
    reads.clear()
    for i in range(1000):
        before = writer.get_state()
        end = len(str(text).encode())
        text.insert(end, "😀x" if i % 2 else "xy😀")
        room.apply_update(writer.get_update(before), "peer")
        before = writer.get_state()
        if i % 2:
            del text[end + 4 : end + 5]  # the x after the emoji
        else:
            del text[end + 2 : end + 6]  # the emoji
        room.apply_update(writer.get_update(before), "peer")
    assert sum(doc is room.doc for doc in reads) == 0
    assert _text(room) == str(text)


def _many_deletions(client: int, clocks: range) -> bytes:
    """One update deleting the unit at each of ``clocks``."""
    ranges = b"".join(write_var_uint(clock) + b"\x01" for clock in clocks)
    return b"\x00\x01" + write_var_uint(client) + write_var_uint(len(clocks)) + ranges


def _old_text() -> StoredDoc:
    """A stored document: 600 characters of client 5, an emoji at 600-601."""
    old: Doc[Any] = Doc(client_id=5)
    old.get("text", type=Text).insert(0, "x" * 600 + "😀")
    return StoredDoc(old.get_update(), old.get_state())


def test_deletions_of_a_stored_document_read_it_a_bounded_number_of_times(
    reads: list[Doc[Any]],
) -> None:
    """What the room was built from is read at each edge at first, then read whole
    once: 300 deletions (each a pycrdt update that repeats all earlier ones)."""
    room = Room("r", _old_text())
    writer: Doc[Any] = Doc(client_id=WRITER)
    writer.apply_update(room.doc.get_update())
    text = writer.get("text", type=Text)
    reads.clear()
    for _ in range(300):
        before = writer.get_state()
        del text[1:2]
        room.apply_update(writer.get_update(before), "peer")
    assert sum(doc is room.doc for doc in reads) <= READS_BEFORE_INDEXING + 1
    assert _text(room) == str(text) == "x" * 300 + "😀"
    with pytest.raises(MalformedUpdate, match="splits a character"):
        room.apply_update(deletion(5, 601, 1), "peer")
    room.apply_update(deletion(5, 600, 2), "peer")
    assert _text(room) == "x" * 300


def test_an_emoji_held_back_is_still_known_once_the_document_is_read_whole(
    reads: list[Doc[Any]],
) -> None:
    _, _, first, rest = _writer()
    room = Room("r", _old_text())
    room.apply_update(rest, "peer")  # waits for "a"
    reads.clear()
    # More edges in what the room was built from than it reads one by one.
    room.apply_update(_many_deletions(5, range(1, READS_BEFORE_INDEXING + 2)), "peer")
    assert sum(doc is room.doc for doc in reads) == 1
    for clock in (2, 1):
        with pytest.raises(MalformedUpdate, match="splits a character"):
            room.apply_update(deletion(WRITER, clock, 1), "peer")
    with pytest.raises(MalformedUpdate, match="splits a character"):
        room.apply_update(deletion(5, 601, 1), "peer")
    room.apply_update(first, "peer")
    with pytest.raises(MalformedUpdate, match="splits a character"):
        room.apply_update(deletion(WRITER, 2, 1), "peer")
    kept = "x" * (600 - READS_BEFORE_INDEXING - 1) + "😀" + TEXT
    assert sorted(_text(room)) == sorted(kept)


def _in_parent(client: int, parent: ID, text: bytes = b"Z") -> bytes:
    """An update of one string item of ``client``, in the type with ID ``parent``."""
    return b"\x01" + item_in_parent(client, parent, text) + b"\x00"


def _paragraphs() -> tuple[Doc[Any], XmlFragment, bytes]:
    """An editor's document: a paragraph whose text is empty, and the update of it."""
    writer: Doc[Any] = Doc(client_id=WRITER)
    fragment = writer.get("default", type=XmlFragment)
    fragment.children.append(XmlElement("paragraph", contents=[XmlText()]))
    text = writer.get("text", type=Text)
    text.insert(0, "ab")
    return writer, fragment, writer.get_update()


# In _paragraphs's update: the paragraph is (9, 0), its text (9, 1), "ab" (9, 2-3).
PARAGRAPH_TEXT = (WRITER, 1)


@pytest.mark.parametrize("known", [True, False])
def test_an_item_in_a_shared_type_is_taken(known: bool, reads: list[Doc[Any]]) -> None:
    """The room knows its types once an update created one (then it reads nothing);
    a room built from its store reads the document."""
    _, _, update = _paragraphs()
    if known:
        room = Room("r", Doc())
        room.apply_update(update, "peer")
    else:
        written: Doc[Any] = Doc()
        written.apply_update(update)
        room = Room("r", StoredDoc(written.get_update(), written.get_state()))
        room.build()
    reads.clear()
    room.apply_update(_in_parent(3, PARAGRAPH_TEXT, b"first"), "peer")
    assert sum(doc is room.doc for doc in reads) == (0 if known else 1)
    assert "first" in str(room.doc.get("default", type=XmlFragment))


@pytest.mark.parametrize("known", [True, False])
def test_an_item_in_a_deleted_type_is_taken(known: bool) -> None:
    writer, fragment, update = _paragraphs()
    before = writer.get_state()
    del fragment.children[0]
    deleted = writer.get_update(before)
    room = Room("r", Doc())
    if known:
        room.apply_update(update, "peer")
        room.apply_update(deleted, "peer")
    else:
        room.doc.apply_update(update)  # not through the room: it knows no types
        room.doc.apply_update(deleted)
    room.apply_update(_in_parent(3, PARAGRAPH_TEXT, b"first"), "peer")
    assert str(room.doc.get("default", type=XmlFragment)) == ""
    assert _text(room) == "ab"


@pytest.mark.parametrize("known", [True, False])
def test_an_item_in_a_character_is_refused(known: bool) -> None:
    _, _, update = _paragraphs()
    room = Room("r", Doc())
    if known:
        room.apply_update(update, "peer")
    else:
        room.doc.apply_update(update)
    before = room.doc.get_update()
    with pytest.raises(MalformedUpdate, match="not a shared type"):
        room.apply_update(_in_parent(3, (WRITER, 2)), "peer")
    assert room.doc.get_update() == before


def test_typing_into_new_paragraphs_reads_the_document_once(reads: list[Doc[Any]]) -> None:
    """Each new paragraph's first character names its parent by ID."""
    writer: Doc[Any] = Doc(client_id=WRITER)
    fragment = writer.get("default", type=XmlFragment)
    room = Room("r", Doc())
    for _ in range(500):
        before = writer.get_state()
        paragraph = fragment.children.append(XmlElement("paragraph", contents=[XmlText()]))
        room.apply_update(writer.get_update(before), "peer")
        before = writer.get_state()
        line = paragraph.children[0]
        assert isinstance(line, XmlText)
        line.insert(0, "x")
        room.apply_update(writer.get_update(before), "peer")
    assert sum(doc is room.doc for doc in reads) <= 1
    assert str(room.doc.get("default", type=XmlFragment)) == str(fragment)


async def test_half_an_emoji_written_before_a_restart_cannot_be_deleted(
    start_server: ServerFactory, database_url: str, doc_id: str
) -> None:
    server = start_server(database_url)
    async with YClient(server.ws_url(doc_id), client_id=WRITER) as writer:
        writer.append(TEXT)
    assert server.stop() in (0, -signal.SIGTERM)
    again = start_server(database_url)
    async with YClient(again.ws_url(doc_id)) as bad:
        assert bad.content() == TEXT
        await bad.send_raw(protocol.sync_update(deletion(WRITER, 2, 1)))
        await bad.wait_closed()
        assert bad.close_code == CloseCode.INVALID_PAYLOAD
    async with YClient(again.ws_url(doc_id)) as late:
        assert late.content() == TEXT
    assert "splits a character" in again.log()
