"""Versions: named and automatic, preview, and restore as a new change."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from pycrdt import Array, Doc, Map, Text, XmlElement, XmlFragment, XmlText

from collab.persistence import Persistence
from collab.plaintext import plain_text
from collab.restore import restore
from collab.room import Room
from collab.sqlstore import SqlStore, create_engine
from collab.store import VersionInfo

from .conftest import ServerFactory
from .support import CollabServer, eventually
from .yclient import YClient


@pytest.fixture
def versioned(start_server: ServerFactory, database_url: str) -> CollabServer:
    return start_server(database_url, version_quiet="3600")


async def _save(http: httpx.AsyncClient, doc_id: str, label: str) -> dict[str, Any]:
    response = await http.post(f"/api/documents/{doc_id}/versions", json={"label": label})
    assert response.status_code == 201, response.text
    version: dict[str, Any] = response.json()
    return version


async def test_save_list_preview(versioned: CollabServer) -> None:
    async with (
        YClient(versioned.ws_url("vdoc")) as client,
        httpx.AsyncClient(base_url=versioned.url) as http,
    ):
        client.append("first")
        await eventually(lambda: _has_text(http, "vdoc", "first"))
        v1 = await _save(http, "vdoc", "v1")
        assert v1["kind"] == "manual"
        assert v1["label"] == "v1"
        client.append(" second")
        await eventually(lambda: _has_text(http, "vdoc", "first second"))
        await _save(http, "vdoc", "v2")
        listed = (await http.get("/api/documents/vdoc/versions")).json()["versions"]
        assert [v["label"] for v in listed] == ["v2", "v1"]
        preview = await http.get(f"/api/documents/vdoc/versions/{v1['id']}/update")
        copy: Doc = Doc()
        copy.apply_update(preview.content)
        assert str(copy.get("text", type=Text)) == "first"
        assert (await http.get("/api/documents/vdoc/versions/nope/update")).status_code == 404
        assert (await http.get("/api/documents/unknown/versions")).status_code == 404
        bad = await http.post("/api/documents/vdoc/versions", json={"label": 7})
        assert bad.status_code == 400


async def test_restore_reaches_live_peers_and_old_clients_do_not_duplicate(
    versioned: CollabServer,
) -> None:
    url = versioned.ws_url("shared")
    async with (
        YClient(url) as alice,
        YClient(url) as bob,
        httpx.AsyncClient(base_url=versioned.url) as http,
    ):
        alice.append("The good version.")
        await eventually(lambda: bob.content() == "The good version.")
        good = await _save(http, "shared", "good")
        bob.append(" Then a mistake.")
        await eventually(lambda: alice.content() == "The good version. Then a mistake.")
        # An offline client holds the history with the mistake in it.
        offline = YClient(url)
        await offline.connect()
        await eventually(lambda: offline.content() == alice.content())
        await offline.close()
        restored = await http.post(f"/api/documents/shared/versions/{good['id']}/restore")
        assert restored.status_code == 200
        assert restored.json()["backup"]["kind"] == "restore"
        await eventually(lambda: alice.content() == bob.content() == "The good version.")
        alice.append(" More.")
        await eventually(lambda: bob.content() == "The good version. More.")
        back = YClient(url)
        back.doc.apply_update(offline.doc.get_update())  # reconnects with the old history
        await back.connect()
        await eventually(lambda: back.content() == "The good version. More.")
        assert alice.content() == "The good version. More."
        listed = (await http.get("/api/documents/shared/versions")).json()["versions"]
        assert listed[0]["kind"] == "restore"
        await back.close()


async def test_automatic_versions_after_quiet_with_retention(
    start_server: ServerFactory, doc_id: str
) -> None:
    server = start_server(version_quiet="0.3", version_retention="2")
    async with (
        YClient(server.ws_url(doc_id)) as client,
        httpx.AsyncClient(base_url=server.url) as http,
    ):

        async def autos() -> list[dict[str, Any]]:
            versions = (await http.get(f"/api/documents/{doc_id}/versions")).json()["versions"]
            return [v for v in versions if v["kind"] == "auto"]

        for burst in range(4):
            client.append(f"burst {burst}. ")
            await eventually(lambda b=burst: _count_at_least(autos(), min(b + 1, 2)), 10)
            await eventually(lambda b=burst: _newest_has(http, doc_id, autos(), f"burst {b}."))
        assert len(await autos()) == 2


class GatedVersions(SqlStore):
    """The first automatic version waits for ``gate``."""

    def __init__(self, url: str) -> None:
        super().__init__(create_engine(url))
        self.gate = asyncio.Event()
        self.saving = asyncio.Event()
        self.saved: list[str] = []
        self.held = ""

    async def add_version(self, doc_id: str, state: bytes, **kw: Any) -> VersionInfo:
        if not self.saving.is_set():
            self.held = doc_id
            self.saving.set()
            await self.gate.wait()
        self.saved.append(doc_id)
        return await super().add_version(doc_id, state, **kw)


async def test_a_room_leaving_during_the_automatic_versions_stops_nothing(
    sqlite_url: str,
) -> None:
    # The loop saving the quiet rooms' versions awaits each save; a room that left
    # memory meanwhile used to end it with a KeyError: no more compactions or versions,
    # and a shutdown that failed before its final write.
    store = GatedVersions(sqlite_url)
    persistence = Persistence(store, version_quiet=0.05, flush_interval=0.01)
    rooms = [Room(f"quiet-{i}", await persistence.load(f"quiet-{i}")) for i in range(3)]
    try:
        for i, room in enumerate(rooms):
            persistence.attach(room)
            source: Doc[Any] = Doc()
            source.get("text", type=Text).insert(0, f"room {i}")
            room.apply_update(source.get_update(), "api")
        persistence.start()
        await asyncio.wait_for(store.saving.wait(), 5)
        leaving = [room for room in rooms if room.doc_id != store.held]
        for room in leaving:
            assert await persistence.release(room)
        store.gate.set()
        await eventually(lambda: len(store.saved) == 3, 5, "every room's version")
        assert sorted(store.saved) == sorted(room.doc_id for room in rooms)
        compacting = persistence._tasks[1]
        assert not compacting.done()
        # Still running: the next quiet change gets its version.
        kept = next(room for room in rooms if room not in leaving)
        source = Doc()  # a client of its own: a second client id, a new change
        source.get("text", type=Text).insert(0, "later")
        kept.apply_update(source.get_update(), "api")
        await eventually(lambda: store.saved.count(kept.doc_id) == 2, 5, "the later version")
    finally:
        try:
            await persistence.stop()
        finally:
            await store.close()


def test_restore_every_root_kind() -> None:
    live: Doc[Any] = Doc()
    text = live.get("text", type=Text)
    text.insert(0, "version text")
    text.format(0, 7, {"bold": True})
    meta = live.get("meta", type=Map)
    meta["title"] = "v1"
    meta["nested"] = Map({"a": 1})
    items = live.get("list", type=Array)
    items.extend([1, "two"])
    editor = live.get("default", type=XmlFragment)
    paragraph = editor.children.append(XmlElement("paragraph", {}))
    words = paragraph.children.append(XmlText())
    words.insert(0, "Hello ")
    words.insert(6, "world", {"bold": {}})
    version = live.get_update()

    text.insert(len(text), " changed")
    meta["title"] = "v2"
    meta["extra"] = True
    items.append(3)
    editor.children.append(XmlElement("heading", {"level": 1}, [XmlText("Later")]))
    restore(live, version)

    assert text.diff() == [("version", {"bold": True}), (" text", None)]
    assert meta.to_py() == {"title": "v1", "nested": {"a": 1}}
    assert items.to_py() == [1, "two"]
    assert str(editor) == "<paragraph>Hello <bold>world</bold></paragraph>"
    assert plain_text(live.get_update()) == "Hello world"


async def _has_text(http: httpx.AsyncClient, doc_id: str, expected: str) -> bool:
    state = (await http.get(f"/api/documents/{doc_id}/update")).content
    copy: Doc = Doc()
    copy.apply_update(state)
    return str(copy.get("text", type=Text)) == expected


async def _count_at_least(versions: Any, count: int) -> bool:
    return len(await versions) >= count


async def _newest_has(http: httpx.AsyncClient, doc_id: str, versions: Any, text: str) -> bool:
    newest = (await versions)[0]
    state = (await http.get(f"/api/documents/{doc_id}/versions/{newest['id']}/update")).content
    copy: Doc = Doc()
    copy.apply_update(state)
    return text in str(copy.get("text", type=Text))


async def test_no_versions_of_unknown_documents(shared_server: CollabServer) -> None:
    async with httpx.AsyncClient(base_url=shared_server.url) as http:
        saved = await http.post("/api/documents/never-made/versions", json={"label": "x"})
        assert saved.status_code == 404
        assert (await http.get("/api/documents/never-made")).status_code == 404


async def test_a_label_with_a_control_character_is_refused(
    start_server: ServerFactory, database_url: str
) -> None:
    # PostgreSQL's text holds no NUL: such a label failed in the database, not here.
    server = start_server(database_url)
    async with httpx.AsyncClient(base_url=server.url) as http:
        await http.post("/api/documents", json={"id": "labelled"})
        for label in ("a\x00b", "bell\x07", "line\nbreak"):
            refused = await http.post("/api/documents/labelled/versions", json={"label": label})
            assert (refused.status_code, refused.json()["error"]) == (400, "bad_label")
        kept = await http.post("/api/documents/labelled/versions", json={"label": "v1 \u00e9"})
        assert kept.status_code == 201
        listed = (await http.get("/api/documents/labelled/versions")).json()["versions"]
        assert [v["label"] for v in listed] == ["v1 \u00e9"]
    assert "Traceback" not in server.log()
