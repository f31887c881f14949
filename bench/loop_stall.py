"""How long one large WebSocket message stalls the server's event loop for everyone.

A real ``collab`` server (uvicorn, uvloop, collab's WebSocket protocol, a throwaway
SQLite database) is started twice: with large updates' pure-Python checks in worker
threads (as shipped, ``thread``) and with them on the event loop (``inline``: the
threshold set past any message, as before). For each size a sender puts one worst-case
update into a room of its own (a Y.Text of two-character inserts, each at the start:
one small struct every ~15 bytes, the most structs a megabyte can hold), while a probe
in another room sends sync step 1 every 2 ms and times the server's answer. Reported:
the probe's round trips while the update is handled (max, p99, p50), and the sender's
wait until the server answered a sync step 1 sent right after its update.

Then, in this process, the keystroke path: ``ProtocolHandler.receive`` of a one-character
update into a room (``yupdate.inspect`` + ``Room.apply_update``), median of 5 runs of
5,000 keystrokes, and ``inspect`` and pycrdt's ``apply_update`` of each worst-case update.

Run: .venv/bin/python bench/loop_stall.py [--sizes 1,4,8] [--kind text|xml] [--json]
(``xml``: paragraphs of an XmlFragment, each a shared type, whose depths are counted
too.) The server is pinned to CPU 0 and this process to CPU 1 when there are two.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MIB = 2**20
PROBE_EVERY = 0.002
EMPTY_STATE_VECTOR = b"\x00"


def worst_update(size: int, kind: str) -> bytes:
    """An update of about ``size`` bytes made of as many small structs as fit."""
    from pycrdt import Doc, Text, XmlElement, XmlFragment, XmlText

    doc: Doc[Any] = Doc()
    if kind == "xml":
        fragment = doc.get("default", type=XmlFragment)
        with doc.transaction():
            for _ in range(size // 54):
                fragment.children.insert(0, XmlElement("paragraph", contents=[XmlText("ab")]))
    else:
        text = doc.get("text", type=Text)
        with doc.transaction():
            for _ in range(size // 15):
                text.insert(0, "ab")
    update: bytes = doc.get_update()
    return update


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# The server, in a process of its own (run as: loop_stall.py --serve PORT MODE).


def serve(port: int, mode: str) -> None:
    import uvicorn

    from collab.settings import Settings
    from collab.web.app import create_app
    from collab.web.wsprotocol import BatchingWebSocketProtocol

    settings = Settings.from_env()
    app = create_app(settings)
    if mode == "inline":
        app.state.documents.workers.above = sys.maxsize  # every update on the loop
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        ws=BatchingWebSocketProtocol,
        ws_max_size=settings.max_message_size,
        ws_per_message_deflate=False,
        log_config=None,
        access_log=False,
    )
    uvicorn.Server(config).run()


def start_server(mode: str, database: Path, pin: bool) -> tuple[subprocess.Popen[bytes], int]:
    url = f"sqlite+aiosqlite:///{database}"
    env = {**os.environ, "COLLAB_DATABASE_URL": url, "COLLAB_LOG_LEVEL": "warning"}
    python = str(ROOT / ".venv" / "bin" / "python")
    subprocess.run([python, "-m", "collab", "migrate"], env=env, check=True, cwd=ROOT)
    port = free_port()
    command = [python, __file__, "--serve", str(port), mode]
    if pin:
        command = ["taskset", "-c", "0", *command]
    process = subprocess.Popen(command, env=env, cwd=ROOT)
    deadline = time.monotonic() + 30
    while not _healthy(port):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"the {mode} server did not start")
        time.sleep(0.05)
    return process, port


def _healthy(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        connection.request("GET", "/healthz")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


# The clients.


async def _answer(ws: Any) -> None:
    """Send sync step 1 and wait for the server's sync step 2."""
    from collab import protocol
    from collab.protocol import SyncMessage, SyncType

    await ws.send(protocol.sync_step1(EMPTY_STATE_VECTOR))
    while True:
        message = protocol.decode(await ws.recv())
        if isinstance(message, SyncMessage) and message.kind is SyncType.STEP2:
            return


async def measure(port: int, doc_id: str, update: bytes) -> dict[str, float]:
    import websockets

    from collab import protocol

    base = f"ws://127.0.0.1:{port}/ws"
    frame = protocol.sync_update(update)
    async with (
        websockets.connect(f"{base}/{doc_id}", max_size=None) as sender,
        websockets.connect(f"{base}/probe", max_size=None) as probe,
    ):
        await _answer(sender)
        await _answer(probe)
        done = asyncio.Event()
        trips: list[float] = []

        async def probing() -> None:
            while not done.is_set():
                started = time.perf_counter()
                await _answer(probe)
                trips.append(time.perf_counter() - started)
                await asyncio.sleep(PROBE_EVERY)

        prober = asyncio.create_task(probing())
        await asyncio.sleep(0.05)
        before = len(trips)
        started = time.perf_counter()
        await sender.send(frame)
        await _answer(sender)
        handled = time.perf_counter() - started
        await asyncio.sleep(0.05)
        done.set()
        await prober
    during = sorted(trips[before:]) or [0.0]
    return {
        "handled_ms": handled * 1000,
        "probe_max_ms": during[-1] * 1000,
        "probe_p99_ms": during[int(0.99 * (len(during) - 1))] * 1000,
        "probe_p50_ms": statistics.median(during) * 1000,
        "probes": len(during),
    }


# The keystroke path, in this process.


def keystrokes(count: int) -> list[bytes]:
    from pycrdt import Doc, Text

    doc: Doc[Any] = Doc()
    text = doc.get("text", type=Text)
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    text.insert(0, "x" * 2000)
    for i in range(count):
        text.insert((i * 7919) % len(text), "k")
    return updates


class _Socket:
    def __init__(self) -> None:
        self.write_now = self._write_now

    def _write_now(self, frame: bytes) -> bool:
        return True

    async def send(self, frame: bytes) -> None:
        pass

    async def send_many(self, frames: list[bytes]) -> None:
        pass

    async def close(self, code: int, reason: str) -> None:
        pass

    def abort(self) -> None:
        pass


def keystroke_path(runs: int = 5, count: int = 5000) -> dict[str, float]:
    from pycrdt import Doc

    from collab import protocol
    from collab.handler import ProtocolHandler
    from collab.peer import Peer
    from collab.room import Room
    from collab.stats import Stats

    updates = keystrokes(count)
    first, edits = updates[0], updates[1:]
    frames = [protocol.sync_update(update) for update in edits]
    per_key: list[float] = []

    async def run() -> None:
        room = Room("bench", Doc())
        room.apply_update(first, "bench")
        peer = Peer(_Socket())
        extra = []
        if "workers" in ProtocolHandler.__slots__:  # not before large updates had threads
            from collab.workers import Workers

            extra.append(Workers())
        handler = ProtocolHandler(peer, room, Stats(), *extra)
        started = time.perf_counter()
        for frame in frames:
            handler.receive(frame)
        per_key.append((time.perf_counter() - started) / len(frames))

    for _ in range(runs):
        asyncio.run(run())
    return {"keystroke_us": statistics.median(per_key) * 1e6, "keystrokes": len(frames)}


def costs(update: bytes) -> dict[str, float]:
    from pycrdt import Doc

    from collab import yupdate

    started = time.perf_counter()
    yupdate.inspect(update, 128)
    inspect_ms = (time.perf_counter() - started) * 1000
    doc: Doc[Any] = Doc()
    started = time.perf_counter()
    doc.apply_update(update)
    apply_ms = (time.perf_counter() - started) * 1000
    return {"inspect_ms": inspect_ms, "pycrdt_apply_ms": apply_ms}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,4,8", help="update sizes in MB (below 8 MiB)")
    parser.add_argument("--kind", choices=("text", "xml"), default="text")
    parser.add_argument("--modes", default="inline,thread")
    parser.add_argument("--no-pin", action="store_true")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    parser.add_argument("--serve", nargs=2, metavar=("PORT", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(int(args.serve[0]), args.serve[1])
        return 0
    pin = not args.no_pin and (os.cpu_count() or 1) >= 2
    if pin:
        os.sched_setaffinity(0, {1})
    sizes = [float(size) for size in args.sizes.split(",")]
    # "8 MB" is the largest that fits the default 8 MiB message limit with its header.
    updates = {size: worst_update(min(int(size * 1e6), 8 * MIB - 64), args.kind) for size in sizes}
    report: dict[str, Any] = {"kind": args.kind, "sizes": {}, "stall": {}}
    for size, update in updates.items():
        report["sizes"][str(size)] = {"bytes": len(update), **costs(update)}
        print(f"{size:g} MB: {len(update)} bytes, {report['sizes'][str(size)]}", file=sys.stderr)
    for mode in args.modes.split(","):
        with tempfile.TemporaryDirectory() as directory:
            process, port = start_server(mode, Path(directory) / "collab.db", pin)
            try:
                report["stall"][mode] = {}
                for size, update in updates.items():
                    result = asyncio.run(measure(port, f"big-{size:g}", update))
                    report["stall"][mode][str(size)] = result
                    print(
                        f"{mode:6} {size:g} MB: handled in {result['handled_ms']:.0f} ms; "
                        f"probe max {result['probe_max_ms']:.1f} ms, "
                        f"p99 {result['probe_p99_ms']:.1f}, p50 {result['probe_p50_ms']:.2f} "
                        f"({result['probes']} probes)",
                        file=sys.stderr,
                    )
            finally:
                process.terminate()
                process.wait(30)
    report["keystroke"] = keystroke_path()
    print(f"keystroke path: {report['keystroke']}", file=sys.stderr)
    if args.json:
        print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
