"""Real services for the tests: PostgreSQL, Redis and collab server processes."""

from __future__ import annotations

import asyncio
import glob
import http.client
import json
import os
import shutil
import signal as signals
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
# Where the servers' logs go: the session's pytest temporary directory (conftest.py),
# which pytest prunes, rather than /tmp, which a thousand servers a run would fill.
LOG_DIR: Path | None = None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def eventually(
    predicate: Callable[[], bool | Awaitable[bool]], timeout: float = 10.0, what: str = ""
) -> None:
    """Wait until ``predicate`` holds, polling; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        await asyncio.sleep(0.02)


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(0.02)


def _as_postgres(args: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


class PostgresServer:
    """A throwaway PostgreSQL cluster on a free loopback port."""

    def __init__(self) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
        if not found:
            raise RuntimeError("PostgreSQL is not installed: run bash .ci/system-deps")
        self.bin = Path(found[-1])
        self.dir = Path(tempfile.mkdtemp(prefix="collab-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        subprocess.run(
            _as_postgres(
                [
                    str(self.bin / "initdb"),
                    "-D",
                    str(self.data),
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "--no-sync",
                    "-E",
                    "UTF8",
                ]
            ),
            check=True,
            capture_output=True,
        )
        self.start()

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        subprocess.run(
            _as_postgres(
                [
                    str(self.bin / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-o",
                    options,
                    "-l",
                    str(self.dir / "log"),
                    "-w",
                    "start",
                ]
            ),
            check=True,
            capture_output=True,
        )

    def stop(self, mode: str = "immediate") -> None:
        # This throwaway cluster runs without fsync: an immediate stop can lose the
        # last commits, so tests that restart it and keep its data stop it "fast".
        subprocess.run(
            _as_postgres(
                [str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"]
            ),
            check=False,
            capture_output=True,
        )

    def create_database(self, name: str, template: str | None = None) -> str:
        statement = f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")
        subprocess.run(
            [
                str(self.bin / "psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-qc",
                statement,
            ],
            check=True,
            capture_output=True,
        )
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{name}"

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class RedisServer:
    """A throwaway ``redis-server`` on a free loopback port, without persistence.

    ``stop()`` and ``start()`` keep the port, so a test can take Redis away and bring
    it back under the processes that use it."""

    def __init__(self) -> None:
        found = shutil.which("redis-server") or (
            "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
        )
        if found is None:
            raise RuntimeError("redis-server is not installed: run bash .ci/system-deps")
        self.binary = found
        self.dir = Path(tempfile.mkdtemp(prefix="collab-redis-"))
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self, timeout: float = 10) -> None:
        assert self.process is None or self.process.poll() is not None, "already running"
        with (self.dir / "log").open("ab") as log:
            self.process = subprocess.Popen(
                [
                    self.binary,
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self.dir),
                    "--daemonize",
                    "no",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.dir,
            )
        deadline = time.monotonic() + timeout
        while not self.ping():
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited {self.process.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start:\n{self.log()}")
            time.sleep(0.01)

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """Stop the server at once (SIGKILL): clients see their connections drop."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def log(self) -> str:
        path = self.dir / "log"
        return path.read_text(errors="replace") if path.exists() else ""

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class CollabServer:
    """A real ``collab serve`` process on a free loopback port."""

    def __init__(self, database_url: str, env: dict[str, str] | None = None) -> None:
        self.database_url = database_url
        self.port = free_port()
        self.url = self.base_url = f"http://127.0.0.1:{self.port}"
        self.ws_base = f"ws://127.0.0.1:{self.port}/ws"
        self.env = {
            **os.environ,
            "COLLAB_DATABASE_URL": database_url,
            "COLLAB_LOG_LEVEL": "debug",
            **(env or {}),
        }
        self.log_path = Path(
            tempfile.mkstemp(prefix="collab-server-", suffix=".log", dir=LOG_DIR)[1]
        )
        self.process: subprocess.Popen[bytes] | Forked | None = None
        self.args: list[str] = []  # more arguments for the command

    def ws_url(self, doc_id: str) -> str:
        return f"{self.ws_base}/{doc_id}"

    def start(self) -> CollabServer:
        return self.launch().wait_started()

    def command(self) -> list[str]:
        return [str(BIN / "collab"), "serve", "--host", "127.0.0.1", "--port", str(self.port)]

    def launch(self) -> CollabServer:
        """Start the process without waiting for it to serve (to start several at once)."""
        command = [*self.command(), *self.args]
        if command[0] == str(BIN / "collab") and FORK:
            self.process = zygote().spawn("collab", command[1:], self.env, ROOT, self.log_path)
            return self
        if command[:3] == [str(BIN / "python"), "-m", "uvicorn"] and FORK:
            self.process = zygote().spawn("uvicorn", command[3:], self.env, ROOT, self.log_path)
            return self
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
        return self

    def wait_started(self) -> CollabServer:
        assert self.process is not None
        deadline = time.monotonic() + 20
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"collab exited {self.process.returncode}:\n{self.log()}")
            if self._answers_healthz():
                return self
            if time.monotonic() > deadline:
                raise RuntimeError(f"collab did not start:\n{self.log()}")
            time.sleep(0.02)

    def _answers_healthz(self) -> bool:
        # The standard library's client: an httpx client loads the CA bundle each time,
        # 15 ms of CPU per poll, more than the rest of a server's start on a busy machine.
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
        try:
            connection.request("GET", "/healthz")
            return connection.getresponse().status == 200
        except (OSError, http.client.HTTPException):
            return False
        finally:
            connection.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, sig: int) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def stop(self, sig: int = signals.SIGTERM, timeout: float = 30) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def kill(self) -> None:
        self.stop(signals.SIGKILL)

    def rss_bytes(self) -> int:
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")


# COLLAB_TEST_FORK=0: start each server as its own `collab serve` process instead.
FORK = os.environ.get("COLLAB_TEST_FORK", "1") != "0"
PR_SET_CHILD_SUBREAPER = 36


class Forked:
    """A server forked by the zygote and adopted by this process (its subreaper):
    waited for, signalled and killed like a ``subprocess.Popen``."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"collab server {self.pid}", timeout or 0)
            time.sleep(0.01)
        return code

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signals.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signals.SIGKILL)


class Zygote:
    """tests/zygote.py: one per test process, forking servers from a process that has
    already imported collab."""

    def __init__(self) -> None:
        import ctypes

        # Orphans (the zygote's grandchildren) become this process's children.
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")
        self.process = subprocess.Popen(
            [str(BIN / "python"), str(ROOT / "tests" / "zygote.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=ROOT,
            text=True,
        )

    def spawn(
        self, program: str, argv: list[str], env: dict[str, str], cwd: Path, log: Path
    ) -> Forked:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        request = {"program": program, "argv": argv, "env": env, "cwd": str(cwd), "log": str(log)}
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline()
        if not answer:
            raise RuntimeError(f"the test zygote exited {self.process.wait()}")
        return Forked(int(answer))


_zygote: Zygote | None = None


def zygote() -> Zygote:
    global _zygote
    if _zygote is None or _zygote.process.poll() is not None:
        _zygote = Zygote()
    return _zygote


class HostServer(CollabServer):
    """A host application embedding collab (``tests/hostapp.py``, FastAPI with collab
    mounted under /collab), served by a real uvicorn on a free loopback port."""

    PREFIX = "/collab"

    def __init__(
        self, database_url: str, env: dict[str, str] | None = None, app: str = "app"
    ) -> None:
        super().__init__(database_url, env)
        self.app = app
        self.collab_url = self.url + self.PREFIX
        self.ws_base = f"ws://127.0.0.1:{self.port}{self.PREFIX}/ws"

    def command(self) -> list[str]:
        return [
            *(str(BIN / "python"), "-m", "uvicorn", f"tests.hostapp:{self.app}"),
            *("--host", "127.0.0.1", "--port", str(self.port)),
        ]


def migrate(database_url: str) -> None:
    subprocess.run(
        [str(BIN / "collab"), "migrate"],
        env={**os.environ, "COLLAB_DATABASE_URL": database_url},
        check=True,
        capture_output=True,
        cwd=ROOT,
    )
