"""The schema comes only from Alembic, on PostgreSQL and SQLite alike."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import create_async_engine

from collab import migrate as migrations
from collab.migrate import SchemaOutOfDate, check_schema

from .support import BIN, ROOT, PostgresServer


def _tables(url: str) -> set[str]:
    async def read() -> set[str]:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                names = await conn.run_sync(lambda c: inspect(c).get_table_names())
                return set(names)
        finally:
            await engine.dispose()

    return asyncio.run(read())


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
    postgres: PostgresServer = request.getfixturevalue("postgres")
    return postgres.create_database("m_" + os.urandom(6).hex())


def test_upgrade_to_head_and_back(empty_url: str) -> None:
    subprocess.run(
        [str(BIN / "alembic"), "upgrade", "head"],
        cwd=ROOT,
        env={**os.environ, "COLLAB_DATABASE_URL": empty_url},
        check=True,
        capture_output=True,
    )
    assert {"documents", "snapshots", "updates", "alembic_version"} <= _tables(empty_url)
    migrations.downgrade(empty_url, "base")
    assert _tables(empty_url) <= {"alembic_version"}
    migrations.upgrade(empty_url)
    assert "documents" in _tables(empty_url)


async def test_unmigrated_database_is_refused(empty_url: str) -> None:
    engine = create_async_engine(empty_url)
    try:
        with pytest.raises(SchemaOutOfDate, match="collab migrate"):
            await check_schema(engine)
    finally:
        await engine.dispose()


def test_serve_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(BIN / "collab"), "serve", "--port", "1"],
        env={**os.environ, "COLLAB_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "not migrated: run `collab migrate`" in result.stderr


def test_the_head_serving_checks_is_alembics() -> None:
    from alembic.script import ScriptDirectory

    url = "sqlite+aiosqlite:///unused.db"
    script = ScriptDirectory.from_config(migrations.alembic_config(url))
    assert script.get_current_head() == migrations.HEAD


def test_serving_imports_only_what_it_uses() -> None:
    """A server imports no Alembic (it compares with HEAD), and no redis-py or HTTP
    client unless Redis or webhooks are configured: a tenth of its start each."""
    probe = (
        "import sys, collab.web.app, collab.cli; collab.web.app.create_app(); "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'alembic', 'redis', 'httpx'}))"
    )
    found = subprocess.run(
        [str(BIN / "python"), "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if not k.startswith("COLLAB_")},
    )
    assert found.stdout.strip() == "[]"
