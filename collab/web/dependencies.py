"""Dependencies whose internals collab extends, and the versions it is tested with.

collab/web/httpprotocol.py subclasses uvicorn's httptools protocol, and
collab/web/wsprotocol.py (``COLLAB_WS_PROTOCOL=batching``) its websockets-sansio
protocol, driving the websockets connection inside it (collab/web/wsslots.py names
the attributes uvicorn sets on it, and its keepalive methods schedule_ping,
send_keepalive_ping, handle_pong and stop_keepalive are overridden to put every
socket's pings on one timer, collab/web/wskeepalive.py); both use private attributes
that any release may change. pyproject.toml pins the tested releases, and
``collab serve`` refuses to start on others rather than fail in front of users. It
refuses rather than fall back to uvicorn's own protocols: an untested uvicorn breaks
the HTTP protocol too, which has no stock equivalent (uvicorn has no header deadline),
and a fall-back would change how the server behaves under load with nothing but a log
line to say so.

collab/state.py shares two of pycrdt's per-document internals between documents
(an async lock and the event streams, for APIs collab does not call), so pycrdt is
pinned and checked too.

collab/redisbus.py drives redis-py's connections below its public client (a
connection of the pool's own making, packed commands, raw pub/sub responses), so
redis-py is pinned and checked too, when ``COLLAB_REDIS_URL`` is set (by the documents
service, so that an embedding host is checked as well).
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib import metadata

# distribution -> (lowest tested, first untested), as version tuples
TESTED = {
    "uvicorn": ((0, 54), (0, 55)),
    "websockets": ((17, 4), (17, 5)),
    "redis": ((8, 1), (8, 2)),
    "pycrdt": ((0, 14, 13), (0, 15)),
}

# What each WebSocket protocol extends (``COLLAB_WS_PROTOCOL``): with uvicorn's own,
# websockets is uvicorn's business.
STOCK = ("uvicorn", "pycrdt")
BATCHING = ("uvicorn", "websockets", "pycrdt")
REDIS = ("redis",)


class UntestedDependency(RuntimeError):
    pass


def check(names: Iterable[str] = BATCHING) -> None:
    """Raise UntestedDependency, naming the fix, if the installed release of one of
    these extended dependencies is not one collab is tested with."""
    for name in names:
        low, high = TESTED[name]
        installed = metadata.version(name)
        release = _release(installed)
        if not low <= release < high:
            other = " or COLLAB_WS_PROTOCOL=stock" if name == "websockets" else ""
            raise UntestedDependency(
                f"{name} {installed} is installed, but collab is tested with {name} "
                f">={_text(low)},<{_text(high)} (it extends its internals): "
                f"pip install '{name}>={_text(low)},<{_text(high)}'{other}"
            )


def _release(version: str) -> tuple[int, ...]:
    parts = []
    for part in version.split("."):
        digits = "".join(c for c in part if c.isdigit())
        if not digits:
            break
        parts.append(int(digits))
        if digits != part:
            break
    return tuple(parts)


def _text(release: tuple[int, ...]) -> str:
    return ".".join(map(str, release))
