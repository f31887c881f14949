"""The uvicorn server behind ``collab serve``: a signal is a clean stop, and the
address is logged once it listens.

uvicorn re-raises a captured SIGTERM or SIGINT after its graceful shutdown, so the
process dies of the signal (exit status 143 or 130) however cleanly it stopped, and a
service manager marks the unit failed. Here the signal only asks for the shutdown, and
the exit status says how it went. ``capture_signals`` is the hook ``Server.serve`` of
the pinned uvicorn release uses (see collab/web/dependencies.py).
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
from collections.abc import Iterator

import uvicorn

log = logging.getLogger("collab.server")

SIGNALS = (signal.SIGINT, signal.SIGTERM)

# Exit statuses of ``collab serve``
CLEAN = 0
UNCLEAN = 1  # stopped, but the application's shutdown failed or was cut short
STARTUP_FAILURE = 3  # as uvicorn's own: it never served


class Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            for server in self.servers:
                for listener in server.sockets:
                    log.info("listening on http://%s", address(listener.getsockname()))

    def exit_status(self) -> int:
        if not self.started:
            return STARTUP_FAILURE
        if self.force_exit:
            log.error("forced to stop before the shutdown ran: open rooms were not written")
            return UNCLEAN
        if getattr(self.lifespan, "shutdown_failed", False):
            log.error("the shutdown failed (see above): open rooms may not have been written")
            return UNCLEAN
        return CLEAN


def serve(config: uvicorn.Config) -> int:
    """Serve until SIGTERM or SIGINT; return the process's exit status."""
    server = Server(config)
    server.run()
    return server.exit_status()


def address(name: tuple[str, int] | tuple[str, int, int, int]) -> str:
    host, port = name[0], name[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
