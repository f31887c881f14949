"""A peer that stops reading is closed; the others' updates keep flowing and the
server's memory stays bounded, on both WebSocket protocols (COLLAB_WS_PROTOCOL)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from .conftest import WS_PROTOCOLS, ServerFactory
from .support import CollabServer, eventually
from .yclient import YClient

pytestmark = pytest.mark.timing

CHUNK = "x" * 8192
ROUNDS = 6000  # 96 MB of updates a burst: far more than the socket buffers hold


@pytest.fixture(params=WS_PROTOCOLS)
def ws_protocol(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def _burst(server: CollabServer, writer: YClient, reader: YClient, marker: str) -> None:
    # Each insert is deleted again, so the document stays small while the traffic
    # is large: a queue without a bound would grow by most of it. The writer waits
    # for the reader every 200 rounds (1.6 MB), so the reader, which shares this
    # process with the writer, never falls behind by more than its send queue holds:
    # what fills up is the slow peer's queue alone.
    text = writer.text()
    for i in range(ROUNDS):
        text.insert(0, CHUNK)
        del text[0 : len(CHUNK)]
        if i % 200 == 199:
            await _reader_keeps_up(
                server, reader, lambda: reader.doc.get_state() == writer.doc.get_state()
            )
    writer.append(marker)
    await _reader_keeps_up(server, reader, lambda: reader.content().endswith(marker))


async def _reader_keeps_up(
    server: CollabServer, reader: YClient, caught_up: Callable[[], bool]
) -> None:
    def check() -> bool:
        if reader.closed.is_set():
            log = server.log()[-3000:]
            raise AssertionError(f"the reader was closed ({reader.close_code}); server log:\n{log}")
        return caught_up()

    try:
        await eventually(check, 60, "the reader to catch up")
    except AssertionError as error:
        raise AssertionError(f"{error}; it received {reader.received} messages") from None


async def test_slow_peer_is_closed_and_others_keep_flowing(
    start_server: ServerFactory, doc_id: str
) -> None:
    # Compaction is off here: its allocator slack (RSS swinging by ~20 MB, with no
    # upward trend over 400 MB of traffic) would hide what this test looks for.
    # The writer floods on purpose: the rate limits (tested elsewhere) are lifted.
    server = start_server(
        messages_per_second="1000000",
        bytes_per_second=str(2**40),
        send_queue_bytes=str(4 * 1024 * 1024),
        snapshot_threshold="100000000",
        snapshot_interval="3600",
    )
    async with YClient(server.ws_url(doc_id)) as writer, YClient(server.ws_url(doc_id)) as reader:
        await _burst(server, writer, reader, "warm")  # allocator, database and sockets warm up
        rss_before = server.rss_bytes()
        async with YClient(server.ws_url(doc_id)) as slow:
            slow.set_presence({"user": {"name": "slow"}})
            await eventually(lambda: slow.client_id in reader.awareness)
            assert slow._ws is not None
            slow._ws.transport.pause_reading()  # stops reading; the server's buffers fill
            await _burst(server, writer, reader, "done")
            await eventually(lambda: "too slow" in server.log(), 10, "the slow peer to be closed")
            await eventually(lambda: slow.client_id not in reader.awareness, 10, "presence gone")
            growth = server.rss_bytes() - rss_before  # while the slow peer is still there
            slow.abort()
        # Measured: under 20 MB of allocator noise; an unbounded queue holds ~90 MB.
        assert growth < 40 * 1024 * 1024, f"server grew by {growth / 1e6:.0f} MB"
        assert reader.content() == writer.content() == "warmdone"
