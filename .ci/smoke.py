"""Smoke test of a built wheel, as a user deploys it: no checkout in sight.

    python3 .ci/smoke.py dist/collab-<version>-py3-none-any.whl

Installs the wheel into a fresh virtualenv, and from an empty directory runs
``collab migrate`` and ``collab serve`` on a free loopback port; fetches the editor's
pages and every asset they reference; makes one edit through the stock y-websocket
client (tests/js); stops the server with SIGTERM and wants exit status 0; starts it
again and wants the edit back. Exits non-zero, saying what failed, otherwise.
Standard library only: it runs before anything is installed.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

ROOT = Path(__file__).resolve().parent.parent
JS = ROOT / "tests" / "js"
DOC = "smoke-test"
EDIT = "written through the stock client before a SIGTERM"


class SmokeFailure(Exception):
    pass


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not Path(argv[0]).is_file():
        print(__doc__, file=sys.stderr)
        return 2
    wheel = Path(argv[0]).resolve()
    if not (JS / "node_modules").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=JS, check=True)
    work = Path(tempfile.mkdtemp(prefix="collab-smoke-"))
    try:
        smoke(wheel, work)
    except SmokeFailure as exc:
        print(f"smoke: FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"smoke: {wheel.name} installs, migrates, serves its editor, stops cleanly on SIGTERM")
    return 0


def smoke(wheel: Path, work: Path) -> None:
    venv = work / "venv"
    step("a fresh virtualenv", [sys.executable, "-m", "venv", str(venv)], cwd=work)
    pip = str(venv / "bin" / "pip")
    step("pip install the wheel", [pip, "install", "-q", str(wheel)], cwd=work)
    collab = str(venv / "bin" / "collab")
    run = work / "run"
    run.mkdir()
    # The default settings (SQLite in the working directory), none from this machine's
    # environment, and nothing importable from the checkout.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COLLAB_", "PYTHON"))}
    step("collab migrate", [collab, "migrate"], cwd=run, env=env)

    with Serve(collab, run, env) as server:
        check_editor(server.url)
        with JsClient(server.ws, DOC) as writer, JsClient(server.ws, DOC) as reader:
            writer.wait_for("synced", lambda e: e["synced"])
            reader.wait_for("synced", lambda e: e["synced"])
            writer.send("insert", text=EDIT)
            # The other peer has it: the server holds it in the open room.
            reader.wait_for("update", lambda e: e["length"] == len(EDIT))
            server.terminate()
    with Serve(collab, run, env) as server, JsClient(server.ws, DOC) as client:
        client.wait_for("synced", lambda e: e["synced"])
        text = client.state()["text"]
        if text != EDIT:
            raise SmokeFailure(f"after a restart the document holds {text!r}, not {EDIT!r}")
        server.terminate()


def step(what: str, args: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise SmokeFailure(f"{what} exited {result.returncode}:\n{result.stdout}{result.stderr}")
    print(f"smoke: {what}: ok")


def check_editor(url: str) -> None:
    assets: set[str] = set()
    for page in ("/", f"/d/{DOC}"):
        status, body, kind = fetch(url + page)
        if status != 200 or not kind.startswith("text/html"):
            raise SmokeFailure(f"GET {page}: {status} {kind}, not the editor: {body[:300]!r}")
        html = body.decode()
        # Relative references resolve against the page's <base href>, if it has one.
        base = re.search(r"""<base\s+href=["']([^"']*)["']""", html)
        root = urljoin(url + page, base.group(1)) if base else url + page
        for ref in re.findall(r"""(?:src|href)=["']([^"'#?]+)["']""", html):
            target = urljoin(root, ref)
            if target.startswith(url + "/") and "/assets/" in target:
                assets.add(target)
    if not assets:
        raise SmokeFailure("the editor's pages reference no assets")
    for asset in sorted(assets):
        status, body, _ = fetch(asset)
        if status != 200 or not body:
            raise SmokeFailure(f"GET {asset}: {status}, {len(body)} bytes")
    print(f"smoke: the editor's 2 pages and their {len(assets)} assets: ok")


def fetch(url: str) -> tuple[int, bytes, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read(), response.headers.get_content_type()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers.get_content_type()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Serve:
    """``collab serve`` on a free loopback port, up once it logs where it listens."""

    def __init__(self, collab: str, cwd: Path, env: dict[str, str]) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.ws = f"ws://127.0.0.1:{port}/ws"
        self.log = cwd / f"serve-{port}.log"
        args = [collab, "serve", "--host", "127.0.0.1", "--port", str(port)]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(args, cwd=cwd, env=env, stdout=log, stderr=log)
        deadline = time.monotonic() + 30
        while f"listening on {self.url}" not in self.log.read_text(errors="replace"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                raise SmokeFailure(f"collab serve did not start:\n{self.output()}")
            time.sleep(0.05)
        status, _, _ = fetch(self.url + "/healthz")
        if status != 200:
            raise SmokeFailure(f"GET /healthz: {status}")
        print(f"smoke: collab serve on {self.url}: ok")

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def terminate(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            status = self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise SmokeFailure(f"collab serve did not stop on SIGTERM:\n{self.output()}") from None
        if status != 0:
            raise SmokeFailure(f"collab serve exited {status} on SIGTERM:\n{self.output()}")
        print("smoke: SIGTERM: exit status 0")

    def __enter__(self) -> Serve:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class JsClient:
    """tests/js/client.mjs: y-websocket's WebsocketProvider, driven by JSON lines."""

    def __init__(self, ws: str, doc: str) -> None:
        self.process = subprocess.Popen(
            ["node", str(JS / "client.mjs"), ws, doc],
            cwd=JS,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.events.put(json.loads(line))

    def send(self, cmd: str, **args: Any) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"cmd": cmd, **args}) + "\n")
        self.process.stdin.flush()

    def wait_for(self, kind: str, test: Any = None, timeout: float = 20) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                event = self.events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise SmokeFailure(f"the stock client saw no {kind} in {timeout}s") from None
            if event["event"] == kind and (test is None or test(event)):
                return event

    def state(self) -> dict[str, Any]:
        self.send("state")
        return self.wait_for("state")

    def __enter__(self) -> JsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
