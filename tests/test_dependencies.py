"""Dependencies whose internals collab extends are checked at start-up."""

from __future__ import annotations

import re

import pytest

from collab.web import dependencies


def test_the_installed_releases_are_the_tested_ones() -> None:
    dependencies.check()


def test_an_untested_release_is_refused_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dependencies.metadata, "version", lambda name: "0.61.2")
    fix = re.escape("pip install 'uvicorn>=0.54,<0.55'")
    with pytest.raises(dependencies.UntestedDependency, match=fix):
        dependencies.check()
    monkeypatch.setattr(dependencies.metadata, "version", lambda name: "0.54.1rc1")
    dependencies.check()
