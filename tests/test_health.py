"""One truth about health: /readyz and the metrics agree, and while database writes
are behind, writers' changes wait unread (backpressure) and nothing is lost."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
from prometheus_client.parser import text_string_to_metric_families

from .conftest import ServerFactory
from .support import CollabServer, PostgresServer, eventually, migrate
from .yclient import YClient


async def _metrics(server: CollabServer) -> dict[str, float]:
    async with httpx.AsyncClient() as http:
        text = (await http.get(server.url + "/metrics", timeout=5)).text
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}


async def _ready(server: CollabServer) -> tuple[int, dict[str, Any]]:
    async with httpx.AsyncClient() as http:
        response = await http.get(server.url + "/readyz", timeout=10)
    return response.status_code, response.json()


async def _healthy(server: CollabServer) -> float:
    return (await _metrics(server))["collab_database_healthy"]


async def test_metric_and_readyz_agree_while_the_database_is_down(
    start_server: ServerFactory, doc_id: str
) -> None:
    postgres = PostgresServer()  # its own, to stop and start
    try:
        url = postgres.create_database("health")
        migrate(url)
        server = start_server(url)
        assert (await _ready(server))[0] == 200
        assert await _healthy(server) == 1
        postgres.stop(mode="fast")

        # No edit and no probe: the periodic ping alone sees it.
        async def unhealthy() -> bool:
            return await _healthy(server) == 0

        await eventually(unhealthy, 15, "collab_database_healthy to fall to 0")
        status, body = await _ready(server)
        assert status == 503
        assert "database" in body["failing"]
        assert await _healthy(server) == 0

        postgres.start()

        async def healthy() -> bool:
            return await _healthy(server) == 1

        await eventually(healthy, 15, "collab_database_healthy to be 1 again")
        assert await _ready(server) == (200, {"status": "ready"})
        assert await _healthy(server) == 1
        assert server.log().count("the database does not answer") == 1
        assert server.log().count("the database answers again") == 1
    finally:
        postgres.destroy()


@asynccontextmanager
async def _appends_blocked(database_url: str) -> AsyncIterator[None]:
    """Hold a lock that every append waits for (pings and reads do not)."""
    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        transaction = conn.transaction()
        await transaction.start()
        await conn.execute("LOCK TABLE updates IN EXCLUSIVE MODE")
        try:
            yield
        finally:
            await transaction.commit()
    finally:
        await conn.close()


async def test_writers_wait_unread_while_writes_are_behind_and_nothing_is_lost(
    start_server: ServerFactory, postgres_url: str, doc_id: str
) -> None:
    # Short pings: a writer held longer than a ping round trip keeps its connection.
    settings = {"max_write_lag": "0.5", "ping_interval": "0.3", "ping_timeout": "0.3"}
    server = start_server(postgres_url, **settings)
    async with YClient(server.ws_url(doc_id)) as writer, YClient(server.ws_url(doc_id)) as reader:
        writer.append("a")
        await eventually(lambda: reader.content() == "a")

        async def written() -> bool:
            return (await _metrics(server))["collab_unwritten_updates"] == 0

        await eventually(written, 10, "the first edit to be written")
        async with _appends_blocked(postgres_url):
            writer.append("b")  # accepted, but its write waits for the lock
            await eventually(lambda: reader.content() == "ab")

            async def behind() -> bool:
                return (await _ready(server))[0] == 503

            await eventually(behind, 10, "readyz to report the write lag")
            status, body = await _ready(server)
            assert status == 503
            assert list(body["failing"]) == ["write_lag"]  # the database itself answers
            metrics = await _metrics(server)
            assert metrics["collab_database_healthy"] == 0
            assert metrics["collab_write_lag_seconds"] > 0.5

            for chunk in "cde":
                writer.append(chunk)
            await writer.flush()
            # A joiner is still answered (sync step 1 is a read) with what was applied.
            async with YClient(server.ws_url(doc_id)) as joiner:
                assert joiner.content() == "ab"

            async def lag_over(seconds: float) -> bool:
                return (await _metrics(server))["collab_write_lag_seconds"] > seconds

            # Several ping rounds pass while the writer's changes wait unread.
            await eventually(lambda: lag_over(2.5), 10, "time to pass")
            assert reader.content() == "ab"
            assert not writer.closed.is_set()
        # The lock is released: the writes catch up and the held changes are read.
        await eventually(lambda: reader.content() == "abcde", 10, "the held changes")
        assert not writer.closed.is_set()
        assert await _ready(server) == (200, {"status": "ready"})
        assert await _healthy(server) == 1
        expected = writer.content()
    assert server.log().count("database writes are behind") == 1
    assert server.log().count("database writes caught up") == 1
    server.stop()
    again = start_server(postgres_url)
    async with YClient(again.ws_url(doc_id)) as fresh:
        assert fresh.content() == expected == "abcde"
