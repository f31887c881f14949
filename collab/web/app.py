"""The composition root: builds the store, persistence, rooms and routes, and runs
them for the life of the application."""

from __future__ import annotations

import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator, Callable
from functools import partial
from pathlib import Path

from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from ..auth import TokenVerifier
from ..closecodes import CloseCode
from ..fanout import Fanout
from ..health import Health
from ..migrate import check_schema
from ..persistence import Persistence
from ..presence import PresenceLimits
from ..redisbus import RedisTransport
from ..room import Room
from ..rooms import RoomRegistry
from ..settings import Settings
from ..sqlstore import SqlStore, create_engine
from ..stats import Stats
from . import api
from .access import Access
from .csrf import CsrfGuard
from .errors import ApiError, api_error, http_error
from .metrics import RuntimeCollector, Timings, metrics_endpoint, register_process
from .openapi import openapi
from .ws import CollabApp, SyncEndpoint

log = logging.getLogger("collab.app")

STATIC = Path(__file__).resolve().parent.parent / "static"


def create_app(settings: Settings) -> Starlette:
    stats = Stats()
    metrics = CollectorRegistry()
    register_process(metrics)
    timings = Timings(metrics)
    engine = create_engine(settings.database_url)
    store = SqlStore(engine)
    persistence = Persistence(
        store,
        flush_interval=settings.flush_interval,
        snapshot_interval=settings.snapshot_interval,
        snapshot_threshold=settings.snapshot_threshold,
        retry_max_delay=settings.retry_max_delay,
        observe=timings.observe,
        version_quiet=settings.version_quiet,
        version_retention=settings.version_retention,
        shared=bool(settings.redis_url),
    )
    health = Health(persistence, store.ping, max_write_lag=settings.max_write_lag)
    fanout = _fanout(settings, persistence, lambda doc_id: forget(doc_id))

    def forget(doc_id: str) -> None:
        """A deleted document leaves memory: its unwritten updates, its room, its peers."""
        persistence.discard(doc_id)
        registry.evict(doc_id, CloseCode.DOCUMENT_DELETED)

    def attach(room: Room) -> None:
        persistence.attach(room)
        if fanout is not None:
            fanout.attach(room)

    async def release(room: Room) -> bool:
        if not await persistence.release(room):
            return False
        if fanout is not None:
            await fanout.detach(room.doc_id)
        return True

    async def salvage(room: Room) -> bool:
        if fanout is not None:
            await fanout.detach(room.doc_id)
        return await persistence.salvage(room)

    registry = RoomRegistry(
        persistence.load if fanout is None else partial(fanout.load, loader=persistence.load),
        attach=attach,
        releaser=release,
        salvager=salvage,
        release_delay=settings.room_release_delay,
        keepalive_interval=settings.keepalive_interval,
        observe=timings.observe,
        max_update_depth=settings.max_update_depth,
        presence_limits=PresenceLimits(
            clients_per_peer=settings.max_awareness_clients,
            state_bytes=settings.max_awareness_state,
            clients_per_room=settings.max_room_awareness_clients,
        ),
    )
    metrics.register(RuntimeCollector(registry, persistence, health, stats, fanout))
    verifier = (
        TokenVerifier(settings.auth_secret, settings.public_key_pem)
        if settings.auth_secret or settings.auth_public_key
        else None
    )
    access = Access(
        verifier,
        origins=settings.origins,
        max_connections_per_client=settings.max_connections_per_client,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await check_schema(engine)
        if verifier is None:
            log.warning(
                "COLLAB_AUTH_SECRET is not set: anyone who can reach this server may read "
                "and change every document"
            )
        # What exists now lives as long as the process: out of the collector's way, a
        # full collection scans only what the rooms and peers made (a 60-80 ms pause
        # every few seconds under load before).
        gc.collect()
        gc.freeze()
        persistence.start()
        health.start()
        registry.start()
        if fanout is not None:
            fanout.start()
        log.info("serving on %s", engine.url.render_as_string(hide_password=True))
        try:
            yield
        finally:
            deadline = time.monotonic() + settings.shutdown_timeout
            rooms = await registry.close(CloseCode.SERVICE_RESTART)
            written = await persistence.close(rooms, deadline)
            log.info("shutdown: %d rooms written%s", len(rooms), "" if written else " (incomplete)")
            if fanout is not None:
                # Another process may have died holding edits it had not written.
                for room in fanout.changed_by_silent():
                    if time.monotonic() < deadline:
                        await persistence.write_missing(room)
                await fanout.close()
            await health.stop()
            await store.close()

    app = CollabApp(
        routes=[
            *api.routes(),
            Route("/metrics", metrics_endpoint),
            Route("/openapi.json", openapi),
            *_pages(),
        ],
        sync=SyncEndpoint(registry, settings, stats, access, health),
        lifespan=lifespan,
        exception_handlers={ApiError: api_error, HTTPException: http_error},
        middleware=[Middleware(CsrfGuard, access=access, body_type=api.body_type)],
    )
    app.state.settings = settings
    app.state.persistence = persistence
    app.state.health = health
    app.state.registry = registry
    app.state.fanout = fanout
    app.state.forget = forget
    app.state.metrics = metrics
    app.state.access = access
    return app


def _fanout(
    settings: Settings, persistence: Persistence, forget: Callable[[str], None]
) -> Fanout | None:
    if not settings.redis_url:
        return None

    async def check_storage(rooms: list[Room]) -> None:
        for room in rooms:
            await persistence.write_missing(room)

    transport = RedisTransport(
        settings.redis_url,
        retry_max_delay=settings.redis_retry_max_delay,
        idle_timeout=max(3 * settings.redis_heartbeat_interval, 5.0),
    )
    return Fanout(
        transport,
        prefix=settings.redis_prefix,
        heartbeat_interval=settings.redis_heartbeat_interval,
        process_timeout=settings.redis_process_timeout,
        join_timeout=settings.redis_join_timeout,
        on_deleted=forget,
        on_process_gone=check_storage,
        find_deleted=persistence.store.deleted_among,
    )


def _pages() -> list[BaseRoute]:
    async def index(_request: Request) -> Response:
        return _page("index.html")

    async def editor(_request: Request) -> Response:
        return _page("editor.html")

    return [
        Route("/", index),
        Route("/d/{doc_id:path}", editor),
        Mount("/assets", StaticFiles(directory=STATIC / "assets", check_dir=False), name="assets"),
    ]


def _page(name: str) -> Response:
    path = STATIC / name
    if not path.is_file():
        raise ApiError(503, "no_frontend", "the editor is not built: run `make run` (npm build)")
    return FileResponse(path, headers={"Cache-Control": "no-cache"})
