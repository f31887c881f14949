"""Bad input closes only the offending socket, with a named code and a log line;
the room, its other peers and the document are untouched."""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest
from pycrdt import write_var_uint
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from collab import protocol
from collab.closecodes import CloseCode

from .conftest import ServerFactory
from .support import CollabServer, eventually
from .yclient import YClient


@pytest.mark.parametrize(
    "bad_id", ["", ".hidden", "a/b", "x" * 129, "sp ace", "semi;colon", "%2e%2e", "ünï"]
)
async def test_invalid_doc_id_is_refused_before_accept(
    shared_server: CollabServer, bad_id: str
) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(shared_server.ws_base + "/" + quote(bad_id, safe="/%")):
            pass
    assert refused.value.response.status_code == 400
    assert b'"error":"bad_doc_id"' in (refused.value.response.body or b"")


async def test_longest_valid_id_is_accepted(shared_server: CollabServer) -> None:
    async with YClient(shared_server.ws_url("a." + "x" * 126)) as client:
        assert client.synced.is_set()


# Each frame below is sent by a peer that must be closed with the given code, and
# logged as having sent what is named.
BAD_FRAMES = {
    "text frame": ("hello", CloseCode.UNSUPPORTED_DATA, "a text frame"),
    "unknown message type": (b"\x07\x00", CloseCode.UNSUPPORTED_DATA, "an unknown message"),
    "unknown sync type": (b"\x00\x09\x00", CloseCode.UNSUPPORTED_DATA, "an unknown message"),
    "truncated sync": (b"\x00\x02\x10abc", CloseCode.INVALID_PAYLOAD, "a malformed message"),
    "garbage update": (
        protocol.sync_update(b"garbage-bytes-here"),
        CloseCode.INVALID_PAYLOAD,
        "a malformed message",
    ),
    "empty frame": (b"", CloseCode.INVALID_PAYLOAD, "a malformed message"),
    "overlong varint": (b"\xff" * 12, CloseCode.INVALID_PAYLOAD, "a malformed message"),
    "bad state vector": (
        protocol.sync_step1(b"\xff\xff"),
        CloseCode.INVALID_PAYLOAD,
        "a malformed message",
    ),
    "awareness not json": (
        protocol.awareness(write_var_uint(1) + b"\x05\x01" + write_var_uint(3) + b"{x:"),
        CloseCode.INVALID_PAYLOAD,
        "a malformed message",
    ),
    "awareness count lies": (
        protocol.awareness(write_var_uint(1000)),
        CloseCode.INVALID_PAYLOAD,
        "a malformed message",
    ),
    "trailing bytes": (
        protocol.sync_update(protocol.EMPTY_UPDATE) + b"\x00",
        CloseCode.INVALID_PAYLOAD,
        "a malformed message",
    ),
}


def _refusals(log: str, doc_id: str) -> list[str]:
    """What the log says the peers of ``doc_id`` sent that closed them: the server's
    log accumulates every test's lines, so only this document's peers count."""
    peers = set(re.findall(rf"open doc={re.escape(doc_id)} peer=(\S+)", log))
    return [
        what
        for peer, what in re.findall(r"peer (\S+) \(.*?\) sent (.*); closing it", log)
        if peer in peers
    ]


@pytest.mark.parametrize("case", sorted(BAD_FRAMES))
async def test_bad_frame_closes_only_its_socket(
    shared_server: CollabServer, doc_id: str, case: str
) -> None:
    server = shared_server
    frame, code, logged = BAD_FRAMES[case]
    async with YClient(server.ws_url(doc_id)) as good, YClient(server.ws_url(doc_id)) as bad:
        good.append("kept ")
        good.set_presence({"user": {"name": "good"}})
        await eventually(lambda: bad.content() == "kept " and good.client_id in bad.awareness)
        await bad.send_raw(frame)
        await bad.wait_closed()
        assert bad.close_code == code
        good.append("still flowing")
        async with YClient(server.ws_url(doc_id)) as late:
            await eventually(lambda: late.content() == "kept still flowing")
            await eventually(lambda: good.client_id in late.awareness)
        assert not good.closed.is_set()
    await eventually(lambda: bool(_refusals(server.log(), doc_id)), what="a log line")
    (refusal,) = _refusals(server.log(), doc_id)
    assert refusal.startswith(logged)


async def test_oversized_message_is_closed_with_1009(
    start_server: ServerFactory, doc_id: str
) -> None:
    server = start_server(max_message_size=str(64 * 1024))
    async with YClient(server.ws_url(doc_id)) as good, YClient(server.ws_url(doc_id)) as bad:
        good.append("before")
        await eventually(lambda: bad.content() == "before")
        bad.append("x" * 100_000)
        await bad.wait_closed()
        assert bad.close_code == CloseCode.MESSAGE_TOO_BIG
        good.append(" after")
        async with YClient(server.ws_url(doc_id)) as late:
            await eventually(lambda: late.content() == "before after")
    assert "over the size limit" in server.log()
