"""The ``collab`` command: serve, migrate."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

from . import __version__, logs
from . import settings as settings_module
from .settings import Settings, SettingsError

if TYPE_CHECKING:
    from starlette.types import ASGIApp

    from .hooks import Hooks


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    command: str = args.command
    try:
        overrides = {k: v for k, v in vars(args).items() if k in ("host", "port") and v is not None}
        settings = Settings.from_env(flags={k: f"--{k}" for k in overrides}, **overrides)
        if command in ("serve", "migrate"):
            settings.check_database_path()
    except SettingsError as exc:
        print(f"collab: error: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level, settings.log_format)
    if command == "migrate":
        return _migrate(settings)
    if command == "token":
        return _token(settings, args)
    return _serve(settings, args.hooks)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="collab", description="collaborative document server")
    parser.add_argument("--version", action="version", version=f"collab {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    epilog = "settings (environment):\n" + "\n".join(
        f"  {name:<28} {meaning} (default: {default})"
        for name, default, meaning in settings_module.describe()
    )
    serve = commands.add_parser(
        "serve",
        help="serve HTTP and WebSocket",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("--host", help="address to bind (COLLAB_HOST, default 127.0.0.1)")
    serve.add_argument("--port", help="port to bind (COLLAB_PORT, default 8000)")
    serve.add_argument(
        "--hooks",
        metavar="MODULE:NAME",
        help="install the collab.Hooks object NAME of MODULE (found from the current "
        "directory or PYTHONPATH), e.g. myapp.hooks:hooks",
    )
    commands.add_parser("migrate", help="upgrade the database to the newest schema")
    token = commands.add_parser(
        "token", help="print an access token signed with COLLAB_AUTH_SECRET"
    )
    token.add_argument("--sub", required=True, help="the user the token names")
    token.add_argument(
        "--doc",
        action="append",
        dest="docs",
        metavar="PATTERN",
        help="document ids it covers, as glob patterns (repeatable; default: all)",
    )
    token.add_argument("--name", help="the name the editor shows for the user (default: --sub)")
    token.add_argument("--read-only", action="store_true", help="may read, not change")
    token.add_argument("--ttl", type=float, default=3600, help="seconds it is valid (3600)")
    return parser


def _migrate(settings: Settings) -> int:
    from . import migrate

    try:
        migrate.upgrade(settings.database_url)
    except (migrate.MigrationsMissing, migrate.DatabaseUnavailable) as exc:
        print(f"collab: error: {exc}", file=sys.stderr)
        return 1
    print("collab: database is up to date", file=sys.stderr)
    return 0


def _token(settings: Settings, args: argparse.Namespace) -> int:
    from .auth import issue

    if not settings.auth_secret:
        print("collab: error: COLLAB_AUTH_SECRET is not set", file=sys.stderr)
        return 2
    if args.ttl <= 0:
        print("collab: error: --ttl must be positive", file=sys.stderr)
        return 2
    docs = args.docs or ["*"]
    print(
        issue(
            settings.auth_secret,
            args.sub,
            docs,
            read_only=args.read_only,
            ttl=args.ttl,
            name=args.name,
        )
    )
    return 0


def _serve(settings: Settings, hooks_name: str | None = None) -> int:
    import uvicorn
    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    from .migrate import DatabaseUnavailable, MigrationsMissing, SchemaOutOfDate, check_schema
    from .sqlstore import create_engine
    from .web import dependencies
    from .web.app import create_app
    from .web.httpprotocol import header_deadline_protocol
    from .web.server import serve

    try:
        hooks = _load_hooks(hooks_name) if hooks_name else None
    except _HooksError as exc:
        print(f"collab: error: --hooks: {exc}", file=sys.stderr)
        return 2
    batching = settings.ws_protocol == "batching"
    try:
        dependencies.check(dependencies.BATCHING if batching else dependencies.STOCK)
    except dependencies.UntestedDependency as exc:
        print(f"collab: error: {exc}", file=sys.stderr)
        return 1

    async def check() -> None:
        engine = create_engine(settings.database_url)
        try:
            await check_schema(engine)
        finally:
            await engine.dispose()

    try:
        asyncio.run(check())
    except (SchemaOutOfDate, DatabaseUnavailable, MigrationsMissing) as exc:
        print(f"collab: error: {exc}", file=sys.stderr)
        return 1
    ws: type[asyncio.Protocol] | str = "websockets-sansio"
    if batching:
        from .web.wsprotocol import BatchingWebSocketProtocol

        ws = BatchingWebSocketProtocol
    logging.getLogger("collab").info(
        "WebSocket protocol: %s",
        "batching (collab's)" if batching else "stock (uvicorn's websockets-sansio)",
    )
    app = create_app(settings, hooks=hooks)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop" if sys.platform != "win32" else "asyncio",
        http=header_deadline_protocol(
            settings.header_timeout, settings.max_incomplete_connections, settings.max_header_bytes
        ),
        ws=ws,
        ws_max_size=settings.max_message_size,
        ws_ping_interval=settings.ping_interval or None,
        ws_ping_timeout=settings.ping_timeout,
        ws_per_message_deflate=False,
        timeout_graceful_shutdown=int(settings.shutdown_timeout),
        log_config=None,
        access_log=False,
        proxy_headers=False,  # the app runs them (see CollabApp.proxy_headers)
    )
    proxy_headers = ProxyHeadersMiddleware(_scope_only, config.forwarded_allow_ips)
    app.proxy_headers = cast("ASGIApp", proxy_headers)
    return serve(config)


async def _scope_only(scope: object, receive: object, send: object) -> None:
    """The app under the proxy-headers middleware: collab reads the scope it rewrote."""


class _HooksError(Exception):
    pass


def _load_hooks(name: str) -> Hooks:
    """The ``collab.Hooks`` object named ``module:attribute``."""
    import importlib

    from .hooks import Hooks

    module_name, _, attribute = name.partition(":")
    if not module_name or not attribute:
        raise _HooksError(f"{name!r} is not MODULE:NAME (e.g. myapp.collab:hooks)")
    # As uvicorn finds an app: from the current directory, then the path.
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise _HooksError(f"cannot import {module_name!r}: {type(exc).__name__}: {exc}") from None
    hooks = getattr(module, attribute, None)
    if not isinstance(hooks, Hooks):
        raise _HooksError(f"{name} is {type(hooks).__name__}, not a collab.Hooks")
    return hooks
