"""Running Alembic migrations, and refusing to serve an out-of-date database."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger("collab.migrate")

ROOT = Path(__file__).resolve().parent.parent


class SchemaOutOfDate(RuntimeError):
    pass


def alembic_config(database_url: str) -> Config:
    ini = ROOT / "alembic.ini"
    if not ini.exists():
        raise FileNotFoundError(
            f"{ini} not found: collab runs its migrations from a source checkout (pip install -e .)"
        )
    config = Config(str(ini))
    config.attributes["database_url"] = database_url
    config.attributes["configure_logger"] = False
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)
    log.info("database migrated to %s", revision)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)


async def check_schema(engine: AsyncEngine) -> None:
    """Raise SchemaOutOfDate, naming the fix, unless the database is at head."""
    url = engine.url.render_as_string(hide_password=False)
    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()

    def current(conn: Connection) -> str | None:
        return MigrationContext.configure(conn).get_current_revision()

    async with engine.connect() as conn:
        revision = await conn.run_sync(current)
    if revision != head:
        state = "not migrated" if revision is None else f"at revision {revision}, not {head}"
        raise SchemaOutOfDate(
            f"the database {engine.url.render_as_string(hide_password=True)} is {state}: "
            "run `collab migrate` (or `alembic upgrade head`) first"
        )
