"""``collab serve`` as a process: where it says it listens, and how it exits."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from .conftest import ServerFactory
from .support import ROOT, CollabServer, free_port, wait_until
from .yclient import YClient


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_a_signal_writes_the_rooms_and_exits_0(
    start_server: ServerFactory, database_url: str, sig: signal.Signals
) -> None:
    # A long flush interval: only the shutdown writes the edit.
    server = start_server(database_url, flush_interval="60", max_write_lag="120")
    async with YClient(server.ws_url("signalled")) as writer:
        writer.append("kept through a signal")
        async with YClient(server.ws_url("signalled")) as reader:
            assert reader.content() == "kept through a signal"
        assert server.stop(sig) == 0, server.log()
    again = start_server(database_url)
    async with YClient(again.ws_url("signalled")) as reader:
        assert reader.content() == "kept through a signal"


def test_listening_is_logged_once_the_socket_listens(tmp_path: Path) -> None:
    from .support import migrate

    url = f"sqlite+aiosqlite:///{tmp_path / 'collab.db'}"
    migrate(url)
    server = CollabServer(url, {"COLLAB_LOG_LEVEL": "info"}).launch()
    line = f"listening on http://127.0.0.1:{server.port}"
    try:
        wait_until(lambda: line in server.log(), 30, "the listening line")
        # Logged after the bind, not before: the port takes a connection at once.
        socket.create_connection(("127.0.0.1", server.port), timeout=5).close()
        assert server.log().count("listening on") == 1
        assert "serving on" not in server.log()
    finally:
        assert server.stop() == 0


# A tiny app whose lifespan fails at shutdown, served by collab's uvicorn server.
_FAILING_SHUTDOWN = textwrap.dedent(
    """
    import contextlib, logging, sys
    import uvicorn
    from starlette.applications import Starlette
    from collab.web.server import serve

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        raise RuntimeError("the rooms could not be written")

    logging.basicConfig(level=logging.INFO)
    config = uvicorn.Config(Starlette(lifespan=lifespan), host="127.0.0.1",
                            port=int(sys.argv[1]), log_config=None)
    sys.exit(serve(config))
    """
)


def test_a_failed_shutdown_exits_1() -> None:
    port = free_port()
    with subprocess.Popen(
        [sys.executable, "-c", _FAILING_SHUTDOWN, str(port)],
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    ) as process:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert process.poll() is None, "it exited before listening"
                assert time.monotonic() < deadline, "it did not listen in 30 s"
                time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        _, errors = process.communicate(timeout=30)
    assert process.returncode == 1, errors
    assert "the shutdown failed" in errors
    assert "listening on http://127.0.0.1:" in errors
