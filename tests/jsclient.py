"""Drive the stock JS Yjs client (tests/js/client.mjs) from the Python tests."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
from pathlib import Path
from typing import Any

from .support import eventually

HERE = Path(__file__).resolve().parent / "js"


class JsClient:
    script = "client.mjs"

    def __init__(
        self, ws_base: str, doc_id: str, token: str | None = None, clock_speed: float = 1
    ) -> None:
        """``clock_speed`` > 1 runs the client's clock and timers that many times faster
        (js/fastclock.mjs): its 30 s timeouts pass in 30/clock_speed s."""
        self.args = [ws_base, doc_id] + ([token] if token else [])
        self.clock_speed = clock_speed
        self.events: list[dict[str, Any]] = []
        self.state: dict[str, Any] = {}
        self.process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> JsClient:
        node = shutil.which("node")
        assert node, "node is not installed"
        clock = ["--import", "./fastclock.mjs"] if self.clock_speed != 1 else []
        self.process = await asyncio.create_subprocess_exec(
            node,
            *clock,
            str(HERE / self.script),
            *self.args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=HERE,
            env={**os.environ, "CLOCK_SPEED": str(self.clock_speed)},
        )
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.exit()

    async def _read(self) -> None:
        assert self.process is not None
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            event = json.loads(line)
            self.events.append(event)
            if event["event"] == "state":
                self.state = event

    async def command(self, cmd: str, **args: Any) -> None:
        assert self.process is not None
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps({"cmd": cmd, **args}) + "\n").encode())
        await self.process.stdin.drain()

    async def refresh(self) -> dict[str, Any]:
        count = sum(1 for e in self.events if e["event"] == "state")
        await self.command("state")
        await eventually(
            lambda: sum(1 for e in self.events if e["event"] == "state") > count,
            what="the JS client's state",
        )
        return self.state

    async def wait_synced(self, timeout: float = 15) -> None:
        await eventually(
            lambda: any(e["event"] == "synced" and e["synced"] for e in self.events),
            timeout,
            "the JS client to sync",
        )

    async def dump(self) -> bytes:
        """The whole document as the JS client holds it, as one v1 update."""
        count = sum(1 for e in self.events if e["event"] == "dump")
        await self.command("dump")
        await eventually(
            lambda: sum(1 for e in self.events if e["event"] == "dump") > count,
            what="the JS client's document",
        )
        dumps = [e for e in self.events if e["event"] == "dump"]
        return base64.b64decode(dumps[-1]["update"])

    async def text(self) -> str:
        return str((await self.refresh())["text"])

    async def exit(self) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        try:
            await self.command("exit")
            await asyncio.wait_for(self.process.wait(), 5)
        except (TimeoutError, ConnectionError):
            self.process.kill()
            await self.process.wait()
        if self._reader is not None:
            await self._reader

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()


class JsTabs(JsClient):
    """Tabs of one browser (tests/js/tabs.mjs): stock providers of one document that
    share awareness over their BroadcastChannel."""

    script = "tabs.mjs"

    async def tabs(self) -> list[dict[str, Any]]:
        return list((await self.refresh())["tabs"])
