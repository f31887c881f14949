"""A large update's pure-Python checks run in a worker thread: while one is checked,
every other room, and its own, goes on; it then lands in order, or is refused as before.

The server is a real uvicorn server (collab's own WebSocket protocol) on a free port,
served from a thread of the test process, so that a test can hold the check of one
update on a gate and see what the server does meanwhile. No timing is asserted.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from pycrdt import Array, Doc, Text, XmlElement, XmlFragment, XmlText, write_var_uint

from collab import persistence, protocol, yupdate
from collab import room as room_module
from collab.auth import issue
from collab.closecodes import CloseCode
from collab.documents import Documents
from collab.room import Room
from collab.settings import Settings
from collab.web.app import create_app
from collab.web.wsprotocol import BatchingWebSocketProtocol
from collab.workers import OFF_LOOP_BYTES, Workers

from .gates import BIG, WORKER, Gate
from .support import eventually, free_port, wait_until
from .yclient import YClient


@pytest.fixture
def nesting_gate(monkeypatch: pytest.MonkeyPatch) -> Gate:
    """Records where the depths of a large update's types are counted."""
    gate = Gate(lambda update, known: len(update))
    gate.open.set()
    monkeypatch.setattr(room_module, "nesting", gate.wrap(room_module.nesting))
    return gate


class ThreadServer:
    """collab served by uvicorn from a thread of this process."""

    def __init__(self, database_url: str, **overrides: Any) -> None:
        settings = Settings(database_url=database_url, **overrides)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            create_app(settings),
            host="127.0.0.1",
            port=self.port,
            loop="asyncio",
            ws=BatchingWebSocketProtocol,
            ws_max_size=settings.max_message_size,
            ws_per_message_deflate=False,
            log_config=None,
            access_log=False,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="server", daemon=True)

    def ws_url(self, doc_id: str) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/{doc_id}"

    def start(self) -> ThreadServer:
        self.thread.start()
        wait_until(lambda: self.server.started, 20, "the server to start")
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


@pytest.fixture
def served(sqlite_url: str) -> Iterator[ThreadServer]:
    server = ThreadServer(sqlite_url).start()
    yield server
    server.stop()


async def _stored(server: ThreadServer, doc_id: str, kind: type[Any] = Text) -> str:
    """The stored document's "text" (or, for ``XmlFragment``, "default")."""
    async with httpx.AsyncClient(base_url=server.url) as http:
        response = await http.get(f"/api/documents/{doc_id}/update")
    assert response.status_code == 200
    doc: Doc[Any] = Doc()
    doc.apply_update(response.content)
    return str(doc.get("default" if kind is XmlFragment else "text", type=kind))


async def test_other_rooms_and_its_own_go_on_while_a_large_update_is_checked(
    served: ThreadServer, inspect_gate: Gate, nesting_gate: Gate, doc_id: str
) -> None:
    async with (
        YClient(served.ws_url(doc_id)) as paster,
        YClient(served.ws_url(doc_id)) as typist,
        YClient(served.ws_url(doc_id)) as watcher,
        YClient(served.ws_url(doc_id + "-other")) as writer,
        YClient(served.ws_url(doc_id + "-other")) as reader,
    ):
        with paster.doc.transaction():
            paster.xml().children.append(XmlElement("paragraph", contents=[XmlText(BIG)]))
            empty = paster.xml().children.append(XmlElement("paragraph"))
        await inspect_gate.wait_entered()
        # Its next edit goes into a paragraph the paste creates: the server refuses it
        # (parent not in the document) unless it waits behind the paste.
        empty.children.append(XmlText("after"))
        await paster.flush()
        # Another room, and the paster's own, are served while the paste is checked.
        writer.append("elsewhere")
        await eventually(lambda: reader.content() == "elsewhere", 10, "the other room's edit")
        typist.append("k")
        await eventually(lambda: watcher.content() == "k", 10, "the same room's keystroke")
        assert str(watcher.xml()) == ""  # neither the paste nor what follows it yet
        assert not inspect_gate.open.is_set()

        inspect_gate.open.set()
        expected = f"<paragraph>{BIG}</paragraph><paragraph>after</paragraph>"
        await eventually(lambda: str(watcher.xml()) == expected, 10, "the paste and the edit")
        await eventually(lambda: str(typist.xml()) == expected, 10, "the paste and the edit")
        assert str(paster.xml()) == expected
        assert paster.content() == "k"
        assert not paster.closed.is_set()
        await eventually(
            lambda: _is(_stored(served, doc_id, XmlFragment), expected), 10, "the paste stored"
        )
    assert inspect_gate.large_threads == [WORKER]
    # Keystrokes are checked where they are handled, on the event loop's thread.
    assert inspect_gate.small_threads == {"server"}
    # The paste's types were counted in the thread too, and so were the document's
    # (small; the edit after the paste, small, on the loop).
    assert nesting_gate.large_threads == [WORKER]
    assert nesting_gate.small_threads == {WORKER, "server"}


async def _is(value: Any, expected: Any) -> bool:
    return bool(await value == expected)


def _too_deep() -> bytes:
    doc: Doc[Any] = Doc()
    nested: list[Any] = [1]
    for _ in range(Settings().max_update_depth + 10):
        nested = [nested]
    with doc.transaction():
        doc.get("text", type=Text).insert(0, BIG)
        doc.get("array", type=Array).append(nested)
    return doc.get_update()


def _truncated() -> bytes:
    doc: Doc[Any] = Doc()
    doc.get("text", type=Text).insert(0, BIG)
    update = doc.get_update()
    return update[: len(update) - 7]


def _garbage() -> bytes:
    return bytes(range(256)) * (OFF_LOOP_BYTES // 256 + 8)


@pytest.mark.parametrize("make", [_garbage, _truncated, _too_deep])
async def test_a_malformed_large_update_closes_only_its_sender(
    served: ThreadServer,
    inspect_gate: Gate,
    doc_id: str,
    make: Callable[[], bytes],
    caplog: pytest.LogCaptureFixture,
) -> None:
    inspect_gate.open.set()
    bad = make()
    assert len(bad) >= OFF_LOOP_BYTES
    async with (
        YClient(served.ws_url(doc_id)) as sender,
        YClient(served.ws_url(doc_id)) as other,
    ):
        other.append("kept")
        await eventually(lambda: sender.content() == "kept", 10, "the first edit")
        with caplog.at_level(logging.WARNING, "collab.ws"):
            await sender.send_raw(protocol.sync_update(bad))
            await sender.wait_closed()
        assert sender.close_code == CloseCode.INVALID_PAYLOAD
        refusals = [r.getMessage() for r in caplog.records if "malformed message" in r.getMessage()]
        assert len(refusals) == 1, refusals
        other.append("!")
        await eventually(lambda: _is(_stored(served, doc_id), "kept!"), 10, "the next edit")
        assert not other.closed.is_set()
        assert other.content() == "kept!"
    assert inspect_gate.large_threads == [WORKER]


async def test_a_large_update_checked_after_its_room_closed_is_not_applied(
    served: ThreadServer, inspect_gate: Gate, doc_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with (
        YClient(served.ws_url(doc_id)) as paster,
        httpx.AsyncClient(base_url=served.url) as http,
    ):
        paster.append(BIG)
        await inspect_gate.wait_entered()
        with caplog.at_level(logging.INFO, "collab.handler"):
            assert (await http.delete(f"/api/documents/{doc_id}")).status_code == 204
            await paster.wait_closed()
            assert paster.close_code == CloseCode.DOCUMENT_DELETED
            inspect_gate.open.set()
            await eventually(
                lambda: any("not applied" in r.getMessage() for r in caplog.records),
                10,
                "the update to be dropped",
            )
        assert (await http.post("/api/documents", json={"id": doc_id})).status_code == 201
        assert await _stored(served, doc_id) == ""


async def test_the_api_checks_a_large_update_in_a_thread(
    served: ThreadServer, inspect_gate: Gate, doc_id: str
) -> None:
    source: Doc[Any] = Doc()
    source.get("text", type=Text).insert(0, BIG)
    async with (
        YClient(served.ws_url(doc_id)) as watcher,
        httpx.AsyncClient(base_url=served.url) as http,
    ):
        posted = asyncio.ensure_future(
            http.post(f"/api/documents/{doc_id}/update", content=source.get_update())
        )
        await inspect_gate.wait_entered()
        watcher.append("x")  # the room is served meanwhile
        await eventually(lambda: _is(_stored(served, doc_id), "x"), 10, "a keystroke stored")
        inspect_gate.open.set()
        assert (await posted).status_code == 200
        await eventually(lambda: len(watcher.content()) == len(BIG) + 1, 10, "the update")
        bad = await http.post(f"/api/documents/{doc_id}/update", content=_truncated())
        assert bad.status_code == 400
        assert bad.json()["error"] == "bad_update"
        assert len(await _stored(served, doc_id)) == len(BIG) + 1
    # Checked once each, before the room is opened (a malformed one creates no document).
    assert inspect_gate.large_threads == [WORKER, WORKER]


async def test_a_large_batch_is_merged_in_a_thread_and_what_arrives_meanwhile_waits(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, doc_id: str
) -> None:
    gate = Gate(lambda batch: sum(len(update) for update, _, _ in batch))
    monkeypatch.setattr(persistence, "log_rows", gate.wrap(persistence.log_rows))
    gate.open.set()  # the first write is small: the update that creates the room
    documents = Documents(Settings(database_url=sqlite_url, flush_interval=0.01))
    async with documents.running():
        writer = _Writer()
        await documents.apply(doc_id, writer.append("a"), "api")
        await eventually(lambda: not documents.persistence.has_pending(doc_id), 10, "a write")
        gate.open.clear()
        for chunk in ("b" * OFF_LOOP_BYTES, "c"):
            await documents.apply(doc_id, writer.append(chunk), "api")
        await asyncio.to_thread(gate.entered.wait, 20)
        # What arrives while the batch is merged is left for the next write.
        await documents.apply(doc_id, writer.append("d"), "api")
        assert documents.persistence.pending_updates == 3
        gate.open.set()
        await eventually(lambda: not documents.persistence.has_pending(doc_id), 10, "the writes")
        stored = await documents.store.load(doc_id)
    assert stored.snapshot is None
    # One row a write: the merged batch holds what it held when its write began.
    assert [_text(stored.updates[: n + 1]) for n in range(len(stored.updates))] == [
        "a",
        "a" + "b" * OFF_LOOP_BYTES + "c",
        "a" + "b" * OFF_LOOP_BYTES + "cd",
    ]
    assert gate.large_threads == [WORKER]
    assert gate.small_threads == {threading.current_thread().name}


def _text(updates: list[bytes]) -> str:
    doc: Doc[Any] = Doc()
    for update in updates:
        doc.apply_update(update)
    return str(doc.get("text", type=Text))


class _Writer:
    """A client's successive edits at the end of its "text", each as an update."""

    def __init__(self) -> None:
        self.doc: Doc[Any] = Doc(client_id=7)
        self.text = self.doc.get("text", type=Text)

    def append(self, chunk: str) -> bytes:
        before = self.doc.get_state()
        self.text.insert(len(self.text), chunk)
        return self.doc.get_update(before)


async def test_a_large_content_write_is_checked_in_a_thread(
    served: ThreadServer, inspect_gate: Gate, nesting_gate: Gate, doc_id: str
) -> None:
    inspect_gate.open.set()
    paragraphs = [f"paragraph {n}" for n in range(OFF_LOOP_BYTES // 50)]
    async with (
        YClient(served.ws_url(doc_id)) as watcher,
        httpx.AsyncClient(base_url=served.url) as http,
    ):
        response = await http.put(
            f"/api/documents/{doc_id}/content",
            json={"format": "markdown", "content": "\n\n".join(paragraphs)},
        )
        assert response.status_code == 200, response.text
        assert response.json()["applied"] >= OFF_LOOP_BYTES
        expected = "".join(f"<paragraph>{p}</paragraph>" for p in paragraphs)
        await eventually(lambda: str(watcher.xml()) == expected, 10, "the content")
    assert inspect_gate.large_threads == [WORKER]
    assert nesting_gate.large_threads == [WORKER]


def test_types_counted_before_are_used_only_if_what_they_depend_on_holds() -> None:
    doc: Doc[Any] = Doc()
    fragment = doc.get("default", type=XmlFragment)
    fragment.children.append(XmlElement("paragraph"))
    room = Room("d", Doc())
    room.apply_update(doc.get_update(), "api")
    before = doc.get_state()
    fragment.children.append(XmlElement("paragraph", contents=[XmlText(BIG)]))
    update = doc.get_update(before)

    prepared = asyncio.run(room.prepare(update, Workers()))
    assert prepared.found is not None
    assert prepared.known is not None
    assert prepared.found.outside  # placed beside the first paragraph
    assert prepared.found_with(prepared.known) is prepared.found
    # What it was placed beside is known at another depth: counted again.
    changed = {item: depth + 1 for item, depth in prepared.known.items()}
    assert prepared.found_with(changed) is None
    with pytest.raises(ValueError, match="another update"):
        room.apply_update(bytes(bytearray(update)), "api", prepared=prepared)
    room.apply_update(update, "api", prepared=prepared)
    assert str(room.doc.get("default", type=XmlFragment)) == str(fragment)


async def test_a_large_state_vector_is_checked_in_a_thread(
    served: ThreadServer, monkeypatch: pytest.MonkeyPatch, doc_id: str
) -> None:
    gate = Gate(len)
    gate.open.set()
    monkeypatch.setattr(yupdate, "check_state_vector", gate.wrap(yupdate.check_state_vector))
    clients = OFF_LOOP_BYTES // 4
    vector = write_var_uint(clients) + b"".join(
        write_var_uint(1000 + n) + write_var_uint(n) for n in range(clients)
    )
    async with YClient(served.ws_url(doc_id)) as asker, YClient(served.ws_url(doc_id)) as bad:
        asker.append("known")
        await eventually(lambda: bad.content() == "known", 10, "the edit")
        received = asker.received
        await asker.send_raw(protocol.sync_step1(vector))  # answered: all it lacks
        await eventually(lambda: asker.received > received, 10, "the answer")
        await bad.send_raw(protocol.sync_step1(vector + b"\x01"))
        await bad.wait_closed()
        assert bad.close_code == CloseCode.INVALID_PAYLOAD
        assert not asker.closed.is_set()
    assert gate.large_threads == [WORKER, WORKER]


async def test_a_read_only_peers_large_update_is_refused_unread(
    sqlite_url: str, inspect_gate: Gate, doc_id: str
) -> None:
    secret = "s" * 32
    server = ThreadServer(sqlite_url, auth_secret=secret).start()
    try:
        writer_url = f"{server.ws_url(doc_id)}?token={issue(secret, 'w', [doc_id])}"
        reader_url = f"{server.ws_url(doc_id)}?token={issue(secret, 'r', [doc_id], read_only=True)}"
        async with YClient(writer_url) as writer, YClient(reader_url) as reader:
            reader.append(BIG)
            await eventually(lambda: reader.denied == ["read-only"], 10, "the refusal")
            writer.append("w")
            await eventually(lambda: len(reader.content()) == 1 + len(BIG), 10, "the writer's edit")
            assert writer.content() == "w"
            assert not reader.closed.is_set()
    finally:
        server.stop()
    assert inspect_gate.large_threads == []


async def test_the_log_keeps_the_parts_of_an_update_only_to_merge_it(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, doc_id: str
) -> None:
    """The structs the room's check read are kept for the merge of a batch, from its
    second update on: a room's only unwritten update is written as it is."""
    batches: list[list[persistence.Pending]] = []

    def recorded(batch: list[persistence.Pending]) -> list[bytes]:
        batches.append(list(batch))
        return real(batch)

    real = persistence.log_rows
    monkeypatch.setattr(persistence, "log_rows", recorded)
    documents = Documents(Settings(database_url=sqlite_url, flush_interval=0.5))
    async with documents.running():
        writer = _Writer()
        updates = [writer.append(chunk) for chunk in "abc"]
        for update in updates:
            await documents.apply(doc_id, update, "api")
        await eventually(lambda: not documents.persistence.has_pending(doc_id), 10, "a write")
        stored = await documents.store.load(doc_id)
    assert [[(update, whole) for update, whole, _ in batch] for batch in batches] == [
        [(update, True) for update in updates]
    ]
    assert [parts for _, _, parts in batches[0]] == [None, *map(yupdate.split, updates[1:])]
    assert len(stored.updates) == 1
    assert _text(stored.updates) == "abc"
