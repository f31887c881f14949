"""The frames ``write_now`` puts on the wire are the ones websockets would write."""

from __future__ import annotations

import pytest
from websockets.frames import Frame, Opcode

from collab.web.wsprotocol import binary_frame


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 1_000_000])
def test_binary_frame_matches_websockets(size: int) -> None:
    payload = bytes(i % 251 for i in range(size))
    expected = Frame(Opcode.BINARY, payload).serialize(mask=False, extensions=[])
    assert binary_frame(payload) == expected
