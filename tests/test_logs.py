"""The log says one thing once: a refused input is one warning line and no error, and
a failure that repeats is summarised instead of repeated in full."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import json
import logging
import os
import re
import signal
import urllib.parse
from typing import Any, NamedTuple

import httpx
import pytest
from sqlalchemy import insert
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from collab.closecodes import CloseCode
from collab.logs import JsonFormatter, Repeats, TextFormatter
from collab.schema import updates
from collab.sqlstore import SqlStore, create_engine, utcnow

from .conftest import ServerFactory
from .support import CollabServer, eventually
from .test_auth import SECRET, token
from .yclient import YClient

# RFC 3339, in UTC, to the millisecond
TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
# "2026-01-01T12:00:00.123Z WARNING collab.ws: refused …" (the text format of collab.logs)
LINE = re.compile(rf"^{TIME} (?P<level>[A-Z]+) (?P<logger>[\w.]+): (?P<message>.*)$")


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


def test_timestamps_are_rfc3339_in_utc_to_the_millisecond() -> None:
    record = logging.makeLogRecord({"msg": "hello %s", "args": ("there",), "name": "collab.x"})
    record.created = datetime.datetime(2026, 12, 1, 11, 32, 26, 123456, datetime.UTC).timestamp()
    record.levelname = "INFO"
    assert TextFormatter().format(record) == "2026-12-01T11:32:26.123Z INFO collab.x: hello there"
    entry = json.loads(JsonFormatter().format(record))
    assert entry["time"] == "2026-12-01T11:32:26.123Z"
    assert datetime.datetime.fromisoformat(entry["time"]).utcoffset() == datetime.timedelta(0)


def _json_lines(server: CollabServer) -> list[dict[str, Any]]:
    """Every line of a server's log, each one JSON object (the test fails otherwise)."""
    lines = [json.loads(line) for line in server.log().splitlines() if line.strip()]
    for line in lines:
        assert re.fullmatch(TIME, line["time"]), line
    return lines


def _named(lines: list[dict[str, Any]], prefix: str) -> list[dict[str, Any]]:
    return [line for line in lines if line["message"].startswith(prefix)]


async def test_json_lines_carry_the_connection_in_fields(
    start_server: ServerFactory, doc_id: str
) -> None:
    server = start_server(auth_secret=SECRET, log_format="json", log_level="info")
    async with YClient(server.ws_url(doc_id) + f"?token={token(sub='ana')}") as client:
        client.append("secret words")
        await client.flush()
        await eventually(lambda: bool(_named(_json_lines(server), "open ")), what="the open line")
    assert await _refused(server.ws_url(doc_id)) == 401
    # A hostile id cannot break a line or forge a field: it is a value, escaped.
    forged = urllib.parse.quote('.x\n{"level": "error", "doc": "forged"}' + "x" * 5000)
    assert await _refused(server.ws_base + "/" + forged) == 400
    async with httpx.AsyncClient() as http:
        missing = await http.get(
            server.url + "/api/documents/no-such-doc",
            headers={"Authorization": f"Bearer {token()}"},
        )
    assert missing.status_code == 404
    await eventually(lambda: bool(_named(_json_lines(server), "close ")), what="the close line")
    await eventually(lambda: len(_named(_json_lines(server), "refused ")) == 3, what="refusals")
    lines = _json_lines(server)
    [opened], [closed] = _named(lines, "open "), _named(lines, "close ")
    client_address = opened["client"]
    assert re.fullmatch(r"127\.0\.0\.1:\d+", client_address)
    assert opened["logger"] == "collab.ws"
    assert {k: opened[k] for k in ("doc", "user", "mode")} == {
        "doc": doc_id,
        "user": "ana",
        "mode": "rw",
    }
    assert isinstance(opened["peer"], int)
    assert {k: closed[k] for k in ("doc", "peer", "client", "user", "code", "reason", "by")} == {
        "doc": doc_id,
        "peer": opened["peer"],
        "client": client_address,
        "user": "ana",
        "code": CloseCode.NORMAL,
        "reason": "closed by client",
        "by": "client",
    }
    assert isinstance(closed["duration_ms"], int)
    assert closed["duration_ms"] >= 0
    refused_ws, refused_id, refused_api = _named(lines, "refused ")
    assert refused_id["doc"].startswith('.x\n{"level": "error"')
    assert len(refused_id["doc"]) == 200
    assert (refused_id["level"], refused_id["status"]) == ("warning", 400)
    assert not any(line.get("doc") == "forged" for line in lines)
    assert refused_ws["level"] == "warning"
    assert {k: refused_ws[k] for k in ("doc", "status", "error")} == {
        "doc": doc_id,
        "status": 401,
        "error": "unauthorized",
    }
    assert {k: refused_api[k] for k in ("doc", "status", "error")} == {
        "doc": "no-such-doc",
        "status": 404,
        "error": "not_found",
    }
    assert "secret words" not in server.log()


async def test_a_peer_the_server_closes_at_shutdown_is_not_closed_by_its_client(
    start_server: ServerFactory, doc_id: str
) -> None:
    server = start_server(log_format="json", log_level="info")
    async with YClient(server.ws_url(doc_id)) as client:
        await eventually(lambda: bool(_named(_json_lines(server), "open ")), what="the open line")
        server.signal(signal.SIGTERM)
        await client.wait_closed()
        assert client.close_code == CloseCode.SERVICE_RESTART
    assert server.stop() in (0, -signal.SIGTERM)
    [closed] = _named(_json_lines(server), "close ")
    assert {k: closed[k] for k in ("doc", "code", "reason", "by")} == {
        "doc": doc_id,
        "code": CloseCode.SERVICE_RESTART,
        "reason": "server restarting",
        "by": "server",
    }
    assert "closed by client" not in closed["message"]


async def test_a_client_that_stops_answering_pings_is_closed_as_timed_out(
    start_server: ServerFactory, doc_id: str
) -> None:
    server = start_server(log_format="json", ping_interval="0.2", ping_timeout="0.3")
    # A client that shakes hands and then reads nothing: it never answers a ping.
    socket = await _handshake(server, doc_id)
    try:
        await eventually(lambda: bool(_named(_json_lines(server), "close ")), what="the close line")
    finally:
        socket.writer.close()
    [closed] = _named(_json_lines(server), "close ")
    assert {k: closed[k] for k in ("doc", "code", "by")} == {
        "doc": doc_id,
        "code": CloseCode.INTERNAL_ERROR,
        "by": "timeout",
    }
    async with httpx.AsyncClient() as http:
        metrics = (await http.get(server.url + "/metrics")).text
    assert 'collab_peers_closed_total{reason="ping_timeout"} 1.0' in metrics


async def _handshake(server: CollabServer, doc_id: str) -> _RawSocket:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET /ws/{doc_id} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
    return _RawSocket(reader, writer)


class _RawSocket(NamedTuple):
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    @property
    def client(self) -> str:
        host, port = self.writer.get_extra_info("sockname")[:2]
        return f"{host}:{port}"

    async def answer_pings(self, answered: list[int]) -> None:
        """Read the server's frames, answering each ping with its pong."""
        while True:
            opcode, size = await self.reader.readexactly(2)
            if size == 126:
                size = int.from_bytes(await self.reader.readexactly(2))
            elif size == 127:
                size = int.from_bytes(await self.reader.readexactly(8))
            payload = await self.reader.readexactly(size)
            if opcode == 0x89:  # ping; a client masks what it sends (here with zeros)
                self.writer.write(bytes((0x8A, 0x80 | size)) + b"\0\0\0\0" + payload)
                answered[0] += 1


async def test_the_pings_of_many_sockets_close_only_the_one_that_stops_answering(
    start_server: ServerFactory, doc_id: str
) -> None:
    # The pings of every socket share one timer: each is still pinged at its interval
    # and timed out on its own (a pong's deadline comes before the next ping's).
    server = start_server(log_format="json", ping_interval="0.3", ping_timeout="0.2")
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(YClient(server.ws_url(f"{doc_id}-{i % 4}")))
            for i in range(12)
        ]
        answering = [await _handshake(server, f"{doc_id}-{i}") for i in range(3)]
        silent = await _handshake(server, f"{doc_id}-0")  # reads nothing: never answers
        counts = [[0] for _ in answering]
        readers = [
            asyncio.create_task(s.answer_pings(n)) for s, n in zip(answering, counts, strict=True)
        ]
        try:
            await eventually(lambda: bool(_named(_json_lines(server), "close ")), what="a close")
            # Several rounds more, every socket that answers is still pinged and open.
            before = [n[0] for n in counts]
            await eventually(
                lambda: all(n[0] >= b + 4 for n, b in zip(counts, before, strict=True)),
                10,
                "more pings",
            )
            assert not any(client.closed.is_set() for client in clients)
            assert not any(task.done() for task in readers)
        finally:
            for task in readers:
                task.cancel()
            for s in (*answering, silent):
                s.writer.close()
        [closed] = _named(_json_lines(server), "close ")
        assert {k: closed[k] for k in ("doc", "client", "code", "by")} == {
            "doc": f"{doc_id}-0",
            "client": silent.client,
            "code": CloseCode.INTERNAL_ERROR,
            "by": "timeout",
        }
        async with httpx.AsyncClient() as http:
            metrics = (await http.get(server.url + "/metrics")).text
        assert 'collab_peers_closed_total{reason="ping_timeout"} 1.0' in metrics
