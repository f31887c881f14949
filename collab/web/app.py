"""The composition root: builds the documents service, the access checks and the
routes, as one ASGI app that runs standalone or mounted in a host application."""

from __future__ import annotations

import contextlib
import html
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from ..auth import TokenVerifier
from ..closecodes import CloseCode
from ..content.parsers import Parsers
from ..documents import Documents
from ..hooks import Hooks
from ..logs import Repeats
from ..settings import Settings
from ..stats import Stats
from ..tokens import TokenMinter
from . import api, sharing
from .access import Access
from .csrf import CsrfGuard
from .errors import ApiError, api_error, error_body, http_error
from .metrics import RuntimeCollector, Timings, metrics_endpoint, register_process
from .openapi import openapi
from .ws import SyncEndpoint

log = logging.getLogger("collab.app")

STATIC = Path(__file__).resolve().parent.parent / "static"

NOT_STARTED = (
    "collab's lifespan has not run, so nothing could be stored: pass collab.lifespan to "
    "the host application (FastAPI(lifespan=collab.lifespan)), or enter it in the host's"
)

Lifespan = Callable[[Any], AbstractAsyncContextManager[None]]


class CollabApp(Starlette):
    """collab's ASGI app: Starlette, but

    - a WebSocket on ``{prefix}/ws/{doc_id}`` goes straight to the sync endpoint,
      before the middleware stack and the router (a sync socket lives for hours;
      routed through them it would keep their suspended frames alive for as long);
    - until ``lifespan`` has started the documents service every request and socket
      is refused (503, close 1011): mounted in a host that never ran it, collab would
      otherwise accept edits it can never store.
    """

    WS = "/ws/"

    def __init__(
        self, *, documents: Documents, sync: SyncEndpoint, lifespan: Lifespan, **kw: Any
    ) -> None:
        super().__init__(lifespan=lifespan, **kw)
        self.documents = documents
        self.sync = sync
        self.lifespan = lifespan
        self._refusals = Repeats(60.0)
        # Set by ``collab serve``: uvicorn's handling of X-Forwarded-For and
        # X-Forwarded-Proto from trusted proxies, run here rather than as uvicorn's
        # outermost middleware, whose frame a sync socket would keep for hours.
        self.proxy_headers: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.proxy_headers is not None:
            await self.proxy_headers(scope, receive, send)  # rewrites the scope, returns
        kind = scope["type"]
        if kind != "lifespan" and not self.documents.started:
            await self._refuse(scope, receive, send)
            return
        if kind == "websocket":
            path = route_path(scope)
            if path.startswith(self.WS):
                scope["app"] = self
                scope["path_params"] = {"doc_id": path[len(self.WS) :]}
                await self.sync(scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        full, since = self._refusals.hit("lifespan")
        if full:
            log.error(
                "%s (refused %s %s%s)",
                NOT_STARTED,
                scope["type"],
                scope.get("path", ""),
                f"; {since} more refused since" if since else "",
            )
        if scope["type"] == "websocket":
            if (await receive())["type"] == "websocket.connect":
                await send({"type": "websocket.accept"})
                await send(
                    {
                        "type": "websocket.close",
                        "code": CloseCode.INTERNAL_ERROR,
                        "reason": "collab is not started",
                    }
                )
            return
        response = JSONResponse(error_body("not_started", NOT_STARTED), 503)
        await response(scope, receive, send)


def route_path(scope: Scope) -> str:
    """The request's path inside collab: without the prefix it is mounted under."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def create_app(settings: Settings | None = None, *, hooks: Hooks | None = None) -> CollabApp:
    """collab as an ASGI app. ``settings`` default to the ``COLLAB_*`` environment.

    Its ``lifespan`` attribute starts and stops it: uvicorn runs it when collab is
    the application; a host that mounts collab passes it as (or enters it in) its own.
    """
    if settings is None:
        settings = Settings.from_env()
    stats = Stats()
    metrics = CollectorRegistry()
    register_process(metrics)
    timings = Timings(metrics)
    documents = Documents(settings, hooks=hooks, observe=timings.observe, metrics=metrics)
    metrics.register(
        RuntimeCollector(
            documents.registry, documents.persistence, documents.health, stats, documents.fanout
        )
    )
    verifier = (
        TokenVerifier(settings.auth_secret, settings.public_key_pem)
        if settings.auth_secret or settings.auth_public_key
        else None
    )
    access = Access(
        verifier,
        origins=settings.origins,
        max_connections_per_client=settings.max_connections_per_client,
        authenticate=documents.hooks.authenticate,
        runner=documents.runner,
    )

    parsers = Parsers(settings.content_parsers, settings.content_queue)

    @contextlib.asynccontextmanager
    async def lifespan(_app: object) -> AsyncIterator[None]:
        async with documents.running():
            if verifier is None and documents.hooks.authenticate is None:
                log.warning(
                    "COLLAB_AUTH_SECRET is not set: anyone who can reach this server may "
                    "read and change every document"
                )
            try:
                yield
            finally:
                parsers.close()

    app = CollabApp(
        routes=[
            *api.routes(),
            *sharing.routes(),
            Route("/metrics", metrics_endpoint),
            Route("/openapi.json", openapi),
            *_pages(),
        ],
        documents=documents,
        sync=SyncEndpoint(documents, settings, stats, access),
        lifespan=lifespan,
        exception_handlers={ApiError: api_error, HTTPException: http_error},
        middleware=[Middleware(CsrfGuard, access=access, body_type=api.body_type)],
    )
    app.state.settings = settings
    app.state.documents = documents
    app.state.metrics = metrics
    app.state.access = access
    app.state.parsers = parsers
    app.state.minter = (
        TokenMinter(
            settings.auth_secret,
            share_max_ttl=settings.share_max_ttl,
            max_lifetime=settings.token_max_lifetime,
        )
        if settings.auth_secret
        else None
    )
    return app


def _pages() -> list[BaseRoute]:
    async def index(request: Request) -> Response:
        return _page("index.html", request)

    async def editor(request: Request) -> Response:
        return _page("editor.html", request)

    return [
        Route("/", index),
        Route("/d/{doc_id:path}", editor),
        Mount("/assets", StaticFiles(directory=STATIC / "assets", check_dir=False), name="assets"),
    ]


_HEAD = "<head>"


def _page(name: str, request: Request) -> Response:
    """An editor page, told the prefix collab is mounted under: its assets, API and
    sockets are found relative to it."""
    path = STATIC / name
    if not path.is_file():
        raise ApiError(
            503,
            "no_frontend",
            "the editor is not built: `make run` builds it in a checkout; a wheel from "
            "`make dist` has it inside",
        )
    root = html.escape(request.scope.get("root_path", "").rstrip("/"), quote=True)
    page = path.read_text(encoding="utf-8").replace(
        _HEAD,
        f'{_HEAD}<base href="{root}/"><meta name="collab-base" content="{root}">',
        1,
    )
    return HTMLResponse(page, headers={"Cache-Control": "no-cache"})
