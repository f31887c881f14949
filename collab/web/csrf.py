"""Cross-site request forgery: a page of another site may make the browser send a
request that carries the ``collab_token`` cookie. Every request that may change
something (POST, PUT, PATCH, DELETE) passes here before routing:

- an ``Origin`` that is neither this host nor one of ``COLLAB_ALLOWED_ORIGINS`` is
  refused (403 ``origin_refused``), whatever the credential;
- with the cookie as its credential, it must carry an allowed ``Origin`` and, with a
  body, the content type the route takes: a form or ``text/plain`` post (the kinds a
  page may send without the browser asking first) never gets through;
- a body of another type than the route takes is refused (415), whatever the
  credential; a body without one is taken as the route's type.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from .access import Access
from .errors import ApiError, error_body

log = logging.getLogger("collab.csrf")

CHANGES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class CsrfGuard:
    """ASGI middleware. ``body_type(path)`` names the media type the route at
    ``path`` takes as its body."""

    def __init__(self, app: ASGIApp, *, access: Access, body_type: Callable[[str], str]) -> None:
        self.app = app
        self.access = access
        self.body_type = body_type

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in CHANGES:
            try:
                self._check(HTTPConnection(scope), scope["path"])
            except ApiError as refused:
                client = scope.get("client")
                address = f"{client[0]}:{client[1]}" if client else "unknown"
                log.warning(
                    "refused %s %s from %s: %s",
                    scope["method"],
                    scope["path"][:200],
                    address,
                    refused.detail,
                    extra={"client": address, "status": refused.status, "error": refused.error},
                )
                response = JSONResponse(error_body(refused.error, refused.detail), refused.status)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _check(self, conn: HTTPConnection, path: str) -> None:
        cookie = self.access.by_cookie(conn)
        self.access.check_origin(conn, required=cookie)
        if not _has_body(conn):
            return
        expected = self.body_type(path)
        given = conn.headers.get("content-type", "").partition(";")[0].strip().lower()
        if given != expected and (given or cookie):
            raise ApiError(
                415,
                "unsupported_media_type",
                f"this route takes {expected}, not {given[:100] or 'a body without a type'}",
            )


def _has_body(conn: HTTPConnection) -> bool:
    length = conn.headers.get("content-length")
    if length is not None:
        return length.strip() not in ("", "0")
    return "transfer-encoding" in conn.headers
