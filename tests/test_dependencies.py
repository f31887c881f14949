"""Dependencies whose internals collab extends are checked at start-up."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys
from collections.abc import Callable

import pytest

from collab.web import dependencies

from .support import BIN


def test_the_installed_releases_are_the_tested_ones() -> None:
    dependencies.check(dependencies.BATCHING)
    dependencies.check(dependencies.STOCK)
    dependencies.check(dependencies.REDIS)


async def test_an_untested_redis_stops_a_service_that_uses_it(
    monkeypatch: pytest.MonkeyPatch, sqlite_url: str
) -> None:
    from collab.documents import Documents
    from collab.settings import Settings

    real = dependencies.metadata.version
    monkeypatch.setattr(
        dependencies.metadata,
        "version",
        lambda name: "9.0.0" if name == "redis" else real(name),
    )
    fix = re.escape("pip install 'redis>=8.1,<8.2'")
    shared = Documents(Settings(database_url=sqlite_url, redis_url="redis://127.0.0.1:1"))
    with pytest.raises(dependencies.UntestedDependency, match=f"redis 9.0.0 .*{fix}$"):
        await shared.start()
    alone = Documents(Settings(database_url=sqlite_url))
    async with alone.running():  # without Redis, redis-py's release does not matter
        assert alone.started


def _installed(
    monkeypatch: pytest.MonkeyPatch,
    distribution: str,
    version: str,
    real: Callable[[str], str] = dependencies.metadata.version,
) -> None:
    """``version`` installed for ``distribution``; the others as they are."""
    monkeypatch.setattr(
        dependencies.metadata,
        "version",
        lambda name: version if name == distribution else real(name),
    )


def test_an_untested_release_is_refused_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dependencies.metadata, "version", lambda name: "0.61.2")
    fix = re.escape("pip install 'uvicorn>=0.54,<0.55'")
    with pytest.raises(dependencies.UntestedDependency, match=fix):
        dependencies.check(dependencies.STOCK)
    _installed(monkeypatch, "uvicorn", "0.54.1rc1")
    dependencies.check(dependencies.STOCK)


@pytest.mark.parametrize("installed", ["0.15.0", "0.14.12", "1.0"])
def test_an_untested_pycrdt_is_refused(monkeypatch: pytest.MonkeyPatch, installed: str) -> None:
    # collab/state.py shares two of its per-document internals between documents.
    _installed(monkeypatch, "pycrdt", installed)
    fix = re.escape("pip install 'pycrdt>=0.14.13,<0.15'")
    for protocol in (dependencies.STOCK, dependencies.BATCHING):
        with pytest.raises(dependencies.UntestedDependency, match=f"pycrdt {installed} .*{fix}"):
            dependencies.check(protocol)


@pytest.mark.parametrize("installed", ["17.5", "18.0", "17.3.9", "16.0", "garbage"])
def test_an_untested_websockets_is_refused_by_the_batching_protocol_only(
    monkeypatch: pytest.MonkeyPatch, installed: str
) -> None:
    _installed(monkeypatch, "websockets", installed)
    fix = re.escape("pip install 'websockets>=17.4,<17.5' or COLLAB_WS_PROTOCOL=stock")
    with pytest.raises(dependencies.UntestedDependency, match=f"websockets {installed} .*{fix}"):
        dependencies.check(dependencies.BATCHING)
    dependencies.check(dependencies.STOCK)  # uvicorn's own protocol is uvicorn's business


@pytest.mark.parametrize("value", ["fast", "", "batching,stock", "x" * 100_000])
def test_serve_refuses_an_unknown_protocol_naming_the_choices(
    value: str, tmp_path: pathlib.Path
) -> None:
    done = subprocess.run(
        [str(BIN / "collab"), "serve", "--port", "0"],
        env={"COLLAB_WS_PROTOCOL": value, "PATH": ""},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert line.startswith("collab: error: COLLAB_WS_PROTOCOL")
    assert "batching" in line
    assert "stock" in line


def test_the_app_imports_nothing_private_of_uvicorn() -> None:
    # Only ``collab serve`` checks the pinned releases: a host that embeds collab serves
    # it on its own server, so the app itself must not need uvicorn's internals.
    code = (
        "import sys, collab.web.app\n"
        "print(sorted(m for m in sys.modules if m.startswith(('uvicorn.protocols', 'websockets'))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"
