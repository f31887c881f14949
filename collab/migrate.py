"""Running Alembic migrations, and refusing to serve an out-of-date database."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger("collab.migrate")

# The newest migration (a test checks it is Alembic's head). Serving compares the
# database with it, so that a server does not import Alembic (a tenth of its start).
HEAD = "0005"

PACKAGE = Path(__file__).resolve().parent
# A wheel holds the migrations as the ``collab.migrations`` package; a source checkout
# keeps them in the top-level ``migrations/`` that pyproject.toml maps there and that
# ``alembic upgrade head`` (alembic.ini) uses.
PACKAGED = PACKAGE / "migrations"
CHECKOUT = PACKAGE.parent / "migrations"


class SchemaOutOfDate(RuntimeError):
    pass


class MigrationsMissing(RuntimeError):
    pass


class DatabaseUnavailable(RuntimeError):
    pass


def _unavailable(url: URL, exc: Exception) -> DatabaseUnavailable:
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    where = url.render_as_string(hide_password=True)
    return DatabaseUnavailable(f"cannot use the database {where}: {cause}")


def script_location() -> Path:
    if (PACKAGED / "env.py").is_file():
        return PACKAGED
    if (PACKAGE.parent / "pyproject.toml").is_file() and (CHECKOUT / "env.py").is_file():
        return CHECKOUT
    raise MigrationsMissing(
        f"collab's migrations are not installed (no {PACKAGED / 'env.py'}): "
        "reinstall collab from a wheel built by `make dist`, or `pip install -e .` in a checkout"
    )


def alembic_config(database_url: str) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(script_location()))
    config.set_main_option("path_separator", "os")
    config.attributes["database_url"] = database_url
    config.attributes["configure_logger"] = False
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    from alembic import command

    config = alembic_config(database_url)
    try:
        command.upgrade(config, revision)
    except (OSError, DBAPIError) as exc:
        raise _unavailable(make_url(database_url), exc) from exc
    log.info("database migrated to %s", revision)


def downgrade(database_url: str, revision: str) -> None:
    from alembic import command

    command.downgrade(alembic_config(database_url), revision)


async def check_schema(engine: AsyncEngine) -> None:
    """Raise SchemaOutOfDate, naming the fix, unless the database is at ``HEAD``;
    DatabaseUnavailable if it cannot be read."""
    head = HEAD

    def current(conn: Connection) -> str | None:
        # What Alembic's MigrationContext reads, without importing Alembic.
        if not inspect(conn).has_table("alembic_version"):
            return None
        revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        return None if revision is None else str(revision)

    try:
        async with engine.connect() as conn:
            revision = await conn.run_sync(current)
    except (OSError, DBAPIError) as exc:
        raise _unavailable(engine.url, exc) from exc
    if revision != head:
        state = "not migrated" if revision is None else f"at revision {revision}, not {head}"
        raise SchemaOutOfDate(
            f"the database {engine.url.render_as_string(hide_password=True)} is {state}: "
            "run `collab migrate` first"
        )
