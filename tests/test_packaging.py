"""What the wheel needs: every package listed, migrations found without alembic.ini.

.ci/smoke.py builds the wheel and runs it from an empty directory; these tests keep
the pieces it relies on honest on every run of the suite."""

from __future__ import annotations

import os
import subprocess
import tomllib
from pathlib import Path

import pytest

from collab import migrate as migrations
from collab.migrate import MigrationsMissing

from .support import BIN, ROOT, PostgresServer, free_port


def test_every_package_is_in_the_wheel() -> None:
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = set(setuptools["packages"])
    on_disk = {
        ".".join(path.parent.relative_to(ROOT).parts)
        for path in (ROOT / "collab").rglob("*.py")
        if "static" not in path.parts
    }
    assert on_disk <= packages, f"add {sorted(on_disk - packages)} to pyproject.toml"
    assert setuptools["package-dir"]["collab.migrations"] == "migrations"
    assert {"collab.migrations", "collab.migrations.versions"} <= packages


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'elsewhere.db'}"
    postgres: PostgresServer = request.getfixturevalue("postgres")
    return postgres.create_database("p_" + os.urandom(6).hex())


def test_migrate_runs_from_any_directory(empty_url: str, tmp_path: Path) -> None:
    elsewhere = tmp_path / "not-a-checkout"
    elsewhere.mkdir()
    env = {**os.environ, "COLLAB_DATABASE_URL": empty_url}
    for name in ("PYTHONPATH", "ALEMBIC_CONFIG"):
        env.pop(name, None)
    migrate = [str(BIN / "collab"), "migrate"]
    result = subprocess.run(migrate, cwd=elsewhere, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "database is up to date" in result.stderr
    assert list(elsewhere.iterdir()) == []  # no alembic.ini or anything else left here
    # Migrated to head: a second run has nothing to do and says so.
    again = subprocess.run(migrate, cwd=elsewhere, env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr


def test_migrate_names_an_unreachable_database(tmp_path: Path) -> None:
    url = f"postgresql+asyncpg://collab:hunter2@127.0.0.1:{free_port()}/collab"
    result = subprocess.run(
        [str(BIN / "collab"), "migrate"],
        cwd=tmp_path,
        env={**os.environ, "COLLAB_DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("collab: error: cannot use the database postgresql")
    assert "Traceback" not in result.stderr
    assert "hunter2" not in result.stderr


def test_missing_migrations_are_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(migrations, "PACKAGED", tmp_path / "collab" / "migrations")
    monkeypatch.setattr(migrations, "PACKAGE", tmp_path / "collab")
    with pytest.raises(MigrationsMissing, match="make dist"):
        migrations.upgrade(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    assert not (tmp_path / "x.db").exists()
