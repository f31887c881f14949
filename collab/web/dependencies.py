"""Dependencies whose internals collab extends, and the versions it is tested with.

collab/web/wsprotocol.py and collab/web/httpprotocol.py subclass uvicorn's
websockets-sansio and httptools protocols and use their private attributes; any
uvicorn release may change those. pyproject.toml pins the tested releases, and
``collab serve`` refuses to start on others rather than fail in front of users.
"""

from __future__ import annotations

from importlib import metadata

# distribution -> (lowest tested, first untested), as version tuples
TESTED = {"uvicorn": ((0, 54), (0, 55))}


class UntestedDependency(RuntimeError):
    pass


def check() -> None:
    """Raise UntestedDependency, naming the fix, if an extended dependency's installed
    release is not one collab is tested with."""
    for name, (low, high) in TESTED.items():
        installed = metadata.version(name)
        release = _release(installed)
        if not low <= release < high:
            raise UntestedDependency(
                f"{name} {installed} is installed, but collab is tested with {name} "
                f">={_text(low)},<{_text(high)} (it extends its internals): "
                f"pip install '{name}>={_text(low)},<{_text(high)}'"
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
