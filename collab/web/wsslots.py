"""uvicorn's websockets-sansio protocol with its attributes in slots.

uvicorn's protocol sets 37 attributes on each connection. Past 30, CPython gives up
the instance dict's shared keys and makes it a dict of its own: 1.6 KB per socket, a
sync socket's largest single object. Declared as slots here, the same attributes take
8 bytes each in the object, and the dict holds only what a subclass adds.

The names are uvicorn's (the release pinned in collab/web/dependencies.py); one it
renames or adds goes to the dict as before, so nothing breaks, and
tests/test_wsslots.py fails to say the list is stale.
"""

from __future__ import annotations

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

SLOTS = (
    "app",
    "app_state",
    "asgi_version",
    "client",
    "close_sent",
    "close_timeout",
    "close_timer",
    "config",
    "conn",
    "connections",
    "curr_msg_data_type",
    "default_headers",
    "disconnected",
    "frames",
    "handshake_complete",
    "handshake_initiated",
    "initial_response",
    "last_ping_rtt",
    "logger",
    "loop",
    "pending_ping_payload",
    "ping_interval",
    "ping_sent_at",
    "ping_timeout",
    "ping_timer",
    "pong_timer",
    "queue",
    "read_paused",
    "request",
    "response",
    "root_path",
    "scheme",
    "scope",
    "server",
    "tasks",
    "transport",
    "writable",
)


class SlottedWebSocketsSansIOProtocol(WebSocketsSansIOProtocol):
    __slots__ = SLOTS
