from __future__ import annotations

import pytest
from pycrdt import Doc, Text, create_sync_message

from collab import protocol
from collab.protocol import (
    AuthMessage,
    AwarenessMessage,
    ProtocolError,
    QueryAwarenessMessage,
    SyncMessage,
    SyncType,
    UnknownMessage,
)


def test_round_trips() -> None:
    doc: Doc = Doc()
    doc.get("t", type=Text).insert(0, "hi")
    update = doc.get_update()
    assert protocol.decode(protocol.sync_update(update)) == SyncMessage(SyncType.UPDATE, update)
    assert protocol.decode(protocol.sync_step2(update)) == SyncMessage(SyncType.STEP2, update)
    assert protocol.decode(create_sync_message(doc)) == SyncMessage(SyncType.STEP1, doc.get_state())
    assert protocol.decode(protocol.awareness(b"\x00")) == AwarenessMessage(b"\x00")
    assert protocol.decode(b"\x03") == QueryAwarenessMessage()
    assert protocol.decode(protocol.permission_denied("read-only")) == AuthMessage(0, "read-only")
    assert protocol.decode(protocol.KEEPALIVE) == AwarenessMessage(b"\x00")


@pytest.mark.parametrize(
    "frame", [b"", b"\x00", b"\x00\x02", b"\x00\x02\x05ab", b"\x01\x80", b"\x02\x00\x02\xff\xfe"]
)
def test_malformed(frame: bytes) -> None:
    with pytest.raises(ProtocolError):
        protocol.decode(frame)


@pytest.mark.parametrize("frame", [b"\x04", b"\x00\x03\x00", b"\x7f\x00"])
def test_unknown(frame: bytes) -> None:
    with pytest.raises(UnknownMessage):
        protocol.decode(frame)


def test_large_varint_lengths_are_bounded() -> None:
    with pytest.raises(ProtocolError, match="truncated"):
        protocol.decode(b"\x00\x02\xff\xff\xff\xff\x0f")
