"""A peer that stops reading is closed; the others' updates keep flowing and the
server's memory stays bounded."""

from __future__ import annotations

import asyncio

from .conftest import ServerFactory
from .support import eventually
from .yclient import YClient


async def test_slow_peer_is_closed_and_others_keep_flowing(
    start_server: ServerFactory, doc_id: str
) -> None:
    server = start_server(send_queue_bytes=str(4 * 1024 * 1024))
    async with (
        YClient(server.ws_url(doc_id)) as writer,
        YClient(server.ws_url(doc_id)) as reader,
        YClient(server.ws_url(doc_id)) as slow,
    ):
        slow.set_presence({"user": {"name": "slow"}})
        await eventually(lambda: slow.client_id in reader.awareness)
        assert slow._ws is not None
        slow._ws.transport.pause_reading()  # stops reading; the server's buffers fill
        rss_before = server.rss_bytes()
        # 48 MB of updates, far more than socket buffers hold, while the document
        # stays small (each insert is deleted again): an unbounded queue would grow
        # by tens of megabytes.
        chunk = "x" * 8192
        text = writer.text()
        for i in range(3000):
            text.insert(0, chunk)
            del text[0 : len(chunk)]
            if i % 50 == 0:
                await asyncio.sleep(0.005)
        writer.append("done")
        await eventually(lambda: reader.content() == "done", 60, "the reader to get everything")
        await eventually(lambda: "too slow" in server.log(), 10, "the slow peer to be closed")
        await eventually(lambda: slow.client_id not in reader.awareness, 10, "its presence to go")
        growth = server.rss_bytes() - rss_before
        # Bounded by the queues (4 MB a peer), the socket buffers and the allocator's
        # slack; the slow peer's share alone would be 48 MB without its bound.
        assert growth < 40 * 1024 * 1024, f"server grew by {growth / 1e6:.0f} MB"
        slow.abort()
