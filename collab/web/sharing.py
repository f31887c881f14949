"""Routes that sign tokens for callers that hold one: a share link for one document,
and the renewal of the caller's own token before it expires. Both need the HS256
secret (collab signs only with it); without one they refuse with 409."""

from __future__ import annotations

import logging
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ..auth import AuthError, Mode
from ..tokens import Refused, TokenMinter
from .access import Access, token_of
from .api import _doc_id, _json_object
from .errors import ApiError

log = logging.getLogger("collab.sharing")

NO_SECRET = (
    "this server signs no tokens (COLLAB_AUTH_SECRET is not set): share the page's "
    "address, or get tokens from the application that issues them"
)


def routes() -> list[BaseRoute]:
    return [
        Route("/api/documents/{doc_id}/share", share, methods=["POST"]),
        Route("/api/token/renew", renew, methods=["POST"]),
    ]


async def share(request: Request) -> Response:
    """A link to one document for someone else: read-only or read-write (never more
    than the caller has), for ``ttl`` seconds (never past the caller's own expiry)."""
    minter = _minter(request)
    doc_id = await _doc_id(request, write=True)
    grant = await _access(request).grant(request, doc_id, write=True)
    body = await _json_object(request)
    mode = body.get("mode", Mode.READ_ONLY.value)
    if mode not in (Mode.READ_ONLY.value, Mode.READ_WRITE.value):
        raise ApiError(400, "bad_mode", 'mode must be "ro" or "rw"')
    ttl = body.get("ttl")
    if ttl is not None and (
        isinstance(ttl, bool)
        or not isinstance(ttl, int | float)
        or not 1 <= ttl <= minter.share_max_ttl
    ):
        raise ApiError(
            400, "bad_ttl", f"ttl must be a number of seconds from 1 to {minter.share_max_ttl:g}"
        )
    try:
        token, expires = minter.share(grant, doc_id, Mode(mode), ttl)
    except Refused as exc:
        raise ApiError(403, "forbidden", str(exc)) from None
    link = f"{str(request.base_url).rstrip('/')}/d/{doc_id}?{urlencode({'token': token})}"
    log.info("%s shared %r %s until %d", grant.sub, doc_id, mode, expires, extra={"doc": doc_id})
    return JSONResponse({"token": token, "url": link, "mode": mode, "expires_at": expires}, 201)


async def renew(request: Request) -> Response:
    """The caller's token again with a fresh expiry, so that an open editor keeps
    working; refused past ``COLLAB_TOKEN_MAX_LIFETIME`` since the first one."""
    minter = _minter(request)
    if request.app.state.settings.token_refresh_url:
        raise ApiError(
            409,
            "renewed_elsewhere",
            "tokens are renewed by the application that issues them (COLLAB_TOKEN_REFRESH_URL)",
        )
    access = _access(request)
    grant = await access.grant(request)
    token = token_of(request)
    if token is None:
        raise ApiError(400, "no_token", "the host's sign-in renews itself; there is no token")
    try:
        renewed, expires = minter.renew(token)
    except Refused as exc:
        raise ApiError(403, "renewal_refused", str(exc)) from None
    except AuthError as exc:  # signed with the public key's pair, not the secret
        raise ApiError(401, "unauthorized", str(exc)) from None
    log.info("renewed the token of %s until %d", grant.sub, expires)
    return JSONResponse({"token": renewed, "expires_at": expires})


def _minter(request: Request) -> TokenMinter:
    minter: TokenMinter | None = request.app.state.minter
    if minter is None:
        raise ApiError(409, "no_secret", NO_SECRET)
    return minter


def _access(request: Request) -> Access:
    access: Access = request.app.state.access
    return access
