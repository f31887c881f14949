from __future__ import annotations

import shutil
import signal
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from . import support
from .gates import inspect_gate  # noqa: F401 (a fixture for test_big_updates and test_fanout)
from .support import CollabServer, PostgresServer, RedisServer, migrate


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Two tests that measure time, or load the machine to see what holds under load,
    # would measure each other: with --dist loadgroup they take turns in one worker.
    for item in items:
        if item.get_closest_marker("timing"):
            item.add_marker(pytest.mark.xdist_group("timing"))


def pytest_runtest_setup(item: pytest.Item) -> None:
    # pytest-xdist groups by suffixing the node id, which a pytest it does not know may
    # silently ignore (pytest-xdist#1386): fail rather than run them side by side.
    grouping = item.config.getoption("loadgroup", False)
    if grouping and item.get_closest_marker("timing") and "@" not in item.nodeid:
        pytest.fail("pytest-xdist did not group this timing test: see pyproject.toml")


@pytest.fixture(scope="session", autouse=True)
def _server_logs(tmp_path_factory: pytest.TempPathFactory) -> None:
    support.LOG_DIR = tmp_path_factory.mktemp("server-logs")


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


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite database that fresh ones are copied from: a file copy instead
    of a ``collab migrate`` process for every test."""
    directory = tmp_path_factory.mktemp("sqlite-template")
    migrate(_sqlite_url(directory))
    return directory / "collab.db"


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    """A fresh, migrated SQLite database."""
    # The migration's process has closed the database, so its WAL is checkpointed
    # into the main file; copy one that is left anyway.
    for suffix in ("", "-wal"):
        source = sqlite_template.with_name(sqlite_template.name + suffix)
        if source.exists():
            shutil.copyfile(source, tmp_path / source.name)
    return _sqlite_url(tmp_path)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    """A freshly migrated database of each kind."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("postgres_url"))


ServerFactory = Callable[..., CollabServer]


WS_PROTOCOLS = ["batching", "stock"]


@pytest.fixture
def ws_protocol() -> str | None:
    """COLLAB_WS_PROTOCOL of the servers a test starts; None leaves the environment's
    (``COLLAB_WS_PROTOCOL=stock pytest`` runs the whole suite on uvicorn's own). Modules
    that test the protocol layer override it with ``params=WS_PROTOCOLS``."""
    return None


@pytest.fixture
def start_server(sqlite_url: str, ws_protocol: str | None) -> Iterator[ServerFactory]:
    """Start real ``collab serve`` processes; all are stopped after the test."""
    started: list[CollabServer] = []

    def start(database_url: str | None = None, **env: str) -> CollabServer:
        if ws_protocol is not None:
            env = {"ws_protocol": ws_protocol, **env}
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


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    """A Redis server of the test's own (it starts in a few milliseconds)."""
    server = RedisServer()
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture(scope="session")
def postgres_template(postgres: PostgresServer) -> str:
    """A migrated database that fresh ones are copied from: faster than migrating each."""
    name = "collab_template"
    migrate(postgres.create_database(name))
    return name


@pytest.fixture
def postgres_url(postgres: PostgresServer, postgres_template: str) -> str:
    """A fresh, migrated PostgreSQL database."""
    return postgres.create_database("t_" + uuid.uuid4().hex[:16], template=postgres_template)


# Short intervals, so that the scale-out tests see a dead process or a Redis outage
# in about a second instead of the production defaults.
SCALEOUT_SETTINGS = {
    "redis_heartbeat_interval": "0.3",
    "redis_process_timeout": "1.5",
    "redis_retry_max_delay": "0.5",
}


class Cluster:
    """``collab serve`` processes sharing one PostgreSQL database and one Redis: the
    nodes of one deployment. Keyword arguments are settings (``flush_interval="30"``)."""

    def __init__(self, database_url: str, redis: RedisServer) -> None:
        self.database_url = database_url
        self.redis = redis
        self.nodes: list[CollabServer] = []

    def start(self, **env: str) -> CollabServer:
        (node,) = self.start_many(1, **env)
        return node

    def start_many(self, count: int, **env: str) -> list[CollabServer]:
        """Start ``count`` nodes at once and wait until all serve."""
        settings = {**SCALEOUT_SETTINGS, "redis_url": self.redis.url, **env}
        variables = {f"COLLAB_{k.upper()}": str(v) for k, v in settings.items()}
        nodes = [CollabServer(self.database_url, variables).launch() for _ in range(count)]
        self.nodes += nodes
        return [node.wait_started() for node in nodes]

    def stop(self) -> None:
        """Stop every node that still runs (SIGTERM to all at once, then wait)."""
        running = [n for n in self.nodes if n.process is not None and n.process.poll() is None]
        for node in running:
            node.signal(signal.SIGCONT)  # a test may have left one stopped
            node.signal(signal.SIGTERM)
        for node in running:
            assert node.process is not None
            try:
                node.process.wait(30)
            except subprocess.TimeoutExpired:
                node.kill()


@pytest.fixture
def cluster(postgres_url: str, redis: RedisServer) -> Iterator[Cluster]:
    deployment = Cluster(postgres_url, redis)
    try:
        yield deployment
    finally:
        deployment.stop()
