"""Live collaboration through a real server: Python and stock JS Yjs clients converge,
on both WebSocket protocols (COLLAB_WS_PROTOCOL)."""

from __future__ import annotations

import asyncio
import random

import pytest
from pycrdt import Doc, Provider, Text
from websockets.asyncio.client import connect

from collab.settings import Settings

from .conftest import WS_PROTOCOLS, ServerFactory
from .jsclient import JsClient
from .support import CollabServer, eventually
from .yclient import YClient, clients


@pytest.fixture(params=WS_PROTOCOLS)
def ws_protocol(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_the_server_speaks_the_protocol_asked_for(
    server: CollabServer, ws_protocol: str
) -> None:
    assert f"WebSocket protocol: {ws_protocol} (" in server.log()


async def test_concurrent_python_clients_converge(server: CollabServer, doc_id: str) -> None:
    async with clients(server.ws_url(doc_id), 4) as peers:

        async def edit(client: YClient, name: str) -> None:
            text = client.text()
            for i in range(25):
                current = str(text)
                # Insert only between tokens, so that the final check can find each one.
                boundaries = [0] + [j + 1 for j, ch in enumerate(current) if ch == ";"]
                text.insert(random.choice(boundaries), f"{name}{i};")
                await asyncio.sleep(random.random() / 100)

        await asyncio.gather(*(edit(c, "abcd"[i]) for i, c in enumerate(peers)))
        expected = sum(len(f"x{i};") for i in range(25)) * 4
        await eventually(
            lambda: all(len(c.content()) == expected for c in peers), what="all edits everywhere"
        )
        assert len({c.content() for c in peers}) == 1
        final = peers[0].content()
        assert all(f"{name}{i};" in final for name in "abcd" for i in range(25))


async def test_joiner_receives_the_document(server: CollabServer, doc_id: str) -> None:
    async with YClient(server.ws_url(doc_id)) as first:
        first.append("already here")
        async with YClient(server.ws_url(doc_id)) as second:
            await eventually(lambda: second.content() == "already here")


async def test_stock_pycrdt_provider(server: CollabServer, doc_id: str) -> None:
    class Channel:
        def __init__(self, ws: object) -> None:
            self.ws = ws

        @property
        def path(self) -> str:
            return doc_id

        def __aiter__(self) -> Channel:
            return self

        async def __anext__(self) -> bytes:
            try:
                return await self.ws.recv()  # type: ignore[attr-defined, no-any-return]
            except Exception:
                raise StopAsyncIteration from None

        async def send(self, message: bytes) -> None:
            await self.ws.send(message)  # type: ignore[attr-defined]

    async with YClient(server.ws_url(doc_id)) as ours:
        ours.append("from YClient. ")
        async with connect(server.ws_url(doc_id)) as ws:
            doc: Doc = Doc()
            text = doc.get("text", type=Text)
            async with Provider(doc, Channel(ws)) as provider:  # type: ignore[arg-type]
                await asyncio.wait_for(provider.synced.wait(), 10)
                await eventually(lambda: str(text) == "from YClient. ")
                text += "from pycrdt Provider."
                await eventually(lambda: ours.content() == "from YClient. from pycrdt Provider.")


async def test_js_and_python_clients_converge(server: CollabServer, doc_id: str) -> None:
    async with (
        JsClient(server.ws_base, doc_id) as js1,
        JsClient(server.ws_base, doc_id) as js2,
        YClient(server.ws_url(doc_id)) as py1,
        YClient(server.ws_url(doc_id)) as py2,
    ):
        await js1.wait_synced()
        await js2.wait_synced()
        words = {"js1": [], "js2": [], "py1": [], "py2": []}  # type: dict[str, list[str]]
        for i in range(20):
            for name in words:
                words[name].append(f"<{name}-{i}>")
            await js1.command("insert", text=words["js1"][-1], index=0)
            await js2.command("insert", text=words["js2"][-1])
            py1.text().insert(0, words["py1"][-1])
            py2.append(words["py2"][-1])
            await asyncio.sleep(0.005)
        expected = sum(len(w) for ws in words.values() for w in ws)

        async def converged() -> bool:
            texts = [await js1.text(), await js2.text(), py1.content(), py2.content()]
            return all(len(t) == expected for t in texts) and len(set(texts)) == 1

        await eventually(converged, 20, "JS and Python clients to converge")
        final = py1.content()
        assert all(w in final for ws in words.values() for w in ws)


async def test_js_presence_appears_and_disappears(server: CollabServer, doc_id: str) -> None:
    async with YClient(server.ws_url(doc_id)) as watcher:
        async with JsClient(server.ws_base, doc_id) as js:
            await js.wait_synced()
            await js.command("presence", state={"user": {"name": "Ada", "color": "#f00"}})
            await eventually(
                lambda: any(
                    s.get("user", {}).get("name") == "Ada" for s in watcher.awareness.values()
                ),
                what="the JS client's presence",
            )
            watcher.set_presence({"user": {"name": "Py"}})

            async def js_sees_watcher() -> bool:
                return str(watcher.client_id) in (await js.refresh())["awareness"]

            await eventually(js_sees_watcher, what="the Python client's presence in the JS client")
        await eventually(lambda: not watcher.awareness, what="the JS client's presence to go")


async def test_many_rooms_at_once(server: CollabServer) -> None:
    rooms = [f"room-{i}" for i in range(30)]
    opened: dict[str, list[YClient]] = {}
    for room in rooms:
        pair = [YClient(server.ws_url(room)), YClient(server.ws_url(room))]
        for client in pair:
            await client.connect()
        opened[room] = pair
    try:
        await asyncio.gather(
            *(asyncio.wait_for(c.synced.wait(), 10) for pair in opened.values() for c in pair)
        )
        for room, (a, b) in opened.items():
            a.append(f"{room}:a ")
            b.append(f"{room}:b ")
        for room, (a, b) in opened.items():
            await eventually(
                lambda a=a, b=b: (
                    len(a.content()) == len(b.content()) > 0
                    and a.content() == b.content()
                    and a.content().count(":") == 2
                )
            )
            assert sorted(a.content().split()) == [f"{room}:a", f"{room}:b"]
    finally:
        await asyncio.gather(*(c.close() for pair in opened.values() for c in pair))


async def test_lone_idle_client_hears_keepalives(start_server: ServerFactory, doc_id: str) -> None:
    server = start_server(keepalive_interval="0.3")
    async with YClient(server.ws_url(doc_id)) as client:
        before = client.received
        await eventually(lambda: client.received >= before + 3, 5, "keep-alive frames")
        assert not client.closed.is_set()


async def test_idle_stock_client_stays_on_one_connection(
    start_server: ServerFactory, doc_id: str
) -> None:
    # y-websocket closes a socket that has been silent for 30 s; with the default
    # keep-alive interval a lone idle client must never get there. Both sides run
    # SPEED times faster: the server's interval divided, the client's clock multiplied,
    # so 40 s of the client's time pass in 40/SPEED s.
    speed = 10
    default = Settings.model_fields["keepalive_interval"].default
    server = start_server(keepalive_interval=str(default / speed))
    async with JsClient(server.ws_base, doc_id, clock_speed=speed) as js:
        await js.wait_synced()
        await asyncio.sleep(40 / speed)
        state = await js.refresh()
        assert state["status"] == "connected"
        assert state["connections"] == 1
        assert not [e for e in js.events if e["event"] == "close"]
