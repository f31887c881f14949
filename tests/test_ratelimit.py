"""Flow control: a connection over its message or byte rate is read more slowly, and
keeps its connection; every update it sent arrives and is stored."""

from __future__ import annotations

import asyncio
import time

import pytest

from collab.ratelimit import TokenBucket

from .conftest import ServerFactory
from .jsclient import JsClient
from .support import eventually
from .yclient import YClient

pytestmark = pytest.mark.timing


def test_a_charge_over_budget_is_taken_and_says_how_long_to_wait() -> None:
    now = [0.0]
    bucket = TokenBucket(rate=10, capacity=20, clock=lambda: now[0])
    assert [bucket.charge() for _ in range(20)] == [0.0] * 20  # the burst
    assert bucket.charge() == 0.1  # one message in debt: a tenth of a second
    assert bucket.charge(4) == 0.5
    now[0] = 0.5
    assert bucket.charge() == 0.1  # the debt paid, the next one owes again
    now[0] = 100.0
    assert bucket.charge(20) == 0.0  # refilled to the capacity, no more


async def test_a_client_at_five_times_the_message_rate_is_slowed_not_closed(
    start_server: ServerFactory, doc_id: str
) -> None:
    rate = 400
    server = start_server(messages_per_second=str(rate))
    count = 5 * rate * 2  # five times the rate for two seconds
    async with YClient(server.ws_url(doc_id)) as writer, YClient(server.ws_url(doc_id)) as reader:
        started = time.monotonic()
        for i in range(count):
            writer.append(f"{i},")
            if i % 50 == 49:
                await asyncio.sleep(50 / (5 * rate))
        expected = writer.content()
        sent = time.monotonic()
        await eventually(lambda: reader.content() == expected, 60, "every update to arrive")
        took = time.monotonic() - started
        assert not writer.closed.is_set()
    # The burst (twice the rate) is read at once, the rest at the rate.
    achieved = (count - 2 * rate) / took
    print(f"sent in {sent - started:.1f} s, read in {took:.1f} s: {achieved:.0f} msg/s")
    assert 0.6 * rate < achieved < 1.1 * rate
    assert "rate limit" not in server.log()
    server.stop()
    again = start_server()
    async with YClient(again.ws_url(doc_id)) as fresh:
        assert fresh.content() == expected  # stored, every one


async def test_a_flooder_is_slowed_and_the_others_are_not(
    start_server: ServerFactory, doc_id: str
) -> None:
    server = start_server(messages_per_second="50")
    async with YClient(server.ws_url(doc_id)) as calm, YClient(server.ws_url(doc_id)) as flood:
        for i in range(300):  # the burst of 100, then 4 s at 50 a second
            flood.set_presence({"n": i})
        await eventually(lambda: calm.awareness.get(flood.client_id, {}).get("n", 0) > 100)
        calm.append("still here")
        async with YClient(server.ws_url(doc_id)) as late:
            await eventually(lambda: late.content() == "still here", 2, "the calm peer's edit")
            assert late.awareness[flood.client_id]["n"] < 299  # the flood is still queued
        await eventually(lambda: calm.awareness[flood.client_id] == {"n": 299}, 15, "the flood")
        assert not flood.closed.is_set()


async def test_the_stock_provider_writing_as_fast_as_it_can_keeps_its_connection(
    start_server: ServerFactory, doc_id: str
) -> None:
    server = start_server()  # the default limits: 1,000 messages a second
    typed = "".join(chr(ord("a") + i % 26) for i in range(6000))
    async with YClient(server.ws_url(doc_id)) as reader, JsClient(server.ws_base, doc_id) as js:
        await js.wait_synced()
        started = time.monotonic()
        await js.command("type", text=typed)
        await eventually(lambda: reader.content() == typed, 60, "every keystroke to arrive")
        took = time.monotonic() - started
        assert [e for e in js.events if e["event"] == "close"] == []
        assert (await js.refresh())["connections"] == 1
    achieved = (len(typed) - 2000) / took
    print(f"6000 keystrokes read in {took:.1f} s: {achieved:.0f} msg/s after the burst")
    assert achieved < 1100


async def test_a_client_over_the_byte_rate_is_slowed_not_closed(
    start_server: ServerFactory, doc_id: str
) -> None:
    rate = 256 * 1024
    server = start_server(bytes_per_second=str(rate), max_message_size=str(64 * 1024))
    chunk = "x" * (32 * 1024)
    count = 40  # 1.25 MB: the burst (64 KB + the rate) at once, the rest at the rate
    async with YClient(server.ws_url(doc_id)) as writer, YClient(server.ws_url(doc_id)) as reader:
        started = time.monotonic()
        for _ in range(count):
            writer.append(chunk)
        await eventually(lambda: len(reader.content()) == count * len(chunk), 60, "all of it")
        took = time.monotonic() - started
        assert not writer.closed.is_set()
    achieved = (count * len(chunk) - 64 * 1024 - rate) / took
    print(f"{count * len(chunk) / 1e6:.2f} MB read in {took:.1f} s: {achieved / 1024:.0f} KiB/s")
    assert 0.6 * rate < achieved < 1.1 * rate
