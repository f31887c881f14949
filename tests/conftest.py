from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .support import CollabServer, PostgresServer, migrate


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer()
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture
def doc_id() -> str:
    return "doc-" + uuid.uuid4().hex[:12]


def _sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'collab.db'}"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = _sqlite_url(tmp_path)
    migrate(url)
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A freshly migrated database of each kind."""
    if request.param == "sqlite":
        url = _sqlite_url(tmp_path)
    else:
        postgres: PostgresServer = request.getfixturevalue("postgres")
        url = postgres.create_database("t_" + uuid.uuid4().hex[:16])
    migrate(url)
    return url


ServerFactory = Callable[..., CollabServer]


@pytest.fixture
def start_server(sqlite_url: str) -> Iterator[ServerFactory]:
    """Start real ``collab serve`` processes; all are stopped after the test."""
    started: list[CollabServer] = []

    def start(database_url: str | None = None, **env: str) -> CollabServer:
        settings = {f"COLLAB_{k.upper()}": str(v) for k, v in env.items()}
        server = CollabServer(database_url or sqlite_url, settings).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CollabServer]:
    """One server for a module's tests that each use their own documents."""
    url = _sqlite_url(tmp_path_factory.mktemp("shared"))
    migrate(url)
    server = CollabServer(url).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def live_server(shared_server: CollabServer) -> CollabServer:
    """A server for the browser tests, with the built editor."""
    return shared_server


@pytest.fixture
def server(start_server: ServerFactory) -> CollabServer:
    return start_server()
