"""The log says one thing once: a refused input is one warning line and no error, and
a failure that repeats is summarised instead of repeated in full."""

from __future__ import annotations

import re
from typing import NamedTuple

import httpx
import pytest
from sqlalchemy import insert
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from collab.closecodes import CloseCode
from collab.logs import Repeats
from collab.schema import updates
from collab.sqlstore import SqlStore, create_engine, utcnow

from .conftest import ServerFactory
from .support import CollabServer, eventually
from .test_auth import SECRET, token
from .yclient import YClient

# "2026-01-01 12:00:00,123 WARNING collab.ws: refused …" (the text format of collab.logs)
LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (?P<level>[A-Z]+) (?P<logger>[\w.]+): (?P<message>.*)$"
)


class Entry(NamedTuple):
    level: str
    logger: str
    message: str
    traceback: str  # the lines after the first, if any


def _entries(server: CollabServer) -> list[Entry]:
    entries: list[Entry] = []
    for line in server.log().splitlines():
        match = LINE.match(line)
        if match:
            entries.append(Entry(match["level"], match["logger"], match["message"], ""))
        elif entries:
            entries[-1] = entries[-1]._replace(traceback=entries[-1].traceback + line + "\n")
    return entries


async def _refused(url: str, headers: dict[str, str] | None = None) -> int:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url, additional_headers=headers):
            pass
    return refused.value.response.status_code


async def test_a_refused_upgrade_is_one_warning_and_no_error(
    start_server: ServerFactory, doc_id: str
) -> None:
    server = start_server(auth_secret=SECRET, max_connections_per_client="1")
    url = server.ws_url(doc_id)
    assert await _refused(server.ws_base + "/.bad") == 400
    assert await _refused(url) == 401
    assert await _refused(url + f"?token={token(docs=['team-*'])}") == 403
    assert await _refused(url + f"?token={token()}", {"Origin": "http://evil.example"}) == 403
    async with YClient(url + f"?token={token()}"):
        assert await _refused(url + f"?token={token()}") == 429
    # Handled after everything above has been logged: the process serves one at a time.
    async with httpx.AsyncClient() as http:
        await http.post(server.url + "/api/documents", headers={"Origin": "http://sync.example"})
    await eventually(lambda: "http://sync.example" in server.log(), what="the last refusal")
    entries = _entries(server)
    assert [e for e in entries if e.level in ("ERROR", "CRITICAL")] == []
    refusals = [e.message for e in entries if e.level == "WARNING" and e.logger == "collab.ws"]
    assert len(refusals) == 5, refusals
    assert all(m.startswith("refused ") for m in refusals), refusals
    assert not any(e.traceback for e in entries)


async def test_a_document_that_fails_to_load_logs_one_traceback(
    start_server: ServerFactory, sqlite_url: str, doc_id: str
) -> None:
    store = SqlStore(create_engine(sqlite_url))
    try:
        await store.create_document(doc_id)
        async with store.engine.begin() as conn:
            await conn.execute(
                insert(updates).values(doc_id=doc_id, data=b"\x05garbage", created_at=utcnow())
            )
    finally:
        await store.close()
    server = start_server(sqlite_url)
    retries = 8
    for _ in range(retries):  # as a client does, reconnecting
        client = YClient(server.ws_url(doc_id))
        await client.connect()
        await client.wait_closed()
        assert client.close_code == CloseCode.INTERNAL_ERROR

    def failures() -> list[Entry]:
        return [e for e in _entries(server) if e.message.startswith("could not open room")]

    await eventually(lambda: len(failures()) == retries, what="a line per failure")
    assert [e.level for e in failures()] == ["ERROR"] + ["WARNING"] * (retries - 1)
    assert [bool(e.traceback) for e in failures()] == [True] + [False] * (retries - 1)
    assert sum(bool(e.traceback) for e in _entries(server)) == 1
    assert failures()[-1].message.endswith(f"(failure {retries - 1} since the traceback)")


def test_repeats_are_counted_until_the_interval_has_passed() -> None:
    now = [0.0]
    repeats = Repeats(10.0, clock=lambda: now[0], max_kinds=2)
    assert repeats.hit("a") == (True, 0)
    assert repeats.hit("a") == (False, 1)
    assert repeats.hit("b") == (True, 0)
    assert repeats.hit("a") == (False, 2)
    now[0] = 10.0
    assert repeats.hit("a") == (True, 2)
    assert repeats.hit("a") == (False, 1)
    assert repeats.hit("c") == (True, 0)  # over max_kinds: the oldest are forgotten
    assert len(repeats._kinds) <= 2
