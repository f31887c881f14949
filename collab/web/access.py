"""Who may connect: browser origins, tokens and their scopes, connections per client.
Every check here runs before a WebSocket is accepted, and for every API call."""

from __future__ import annotations

import collections
import enum
import logging
from urllib.parse import urlsplit

from starlette.requests import HTTPConnection

from ..auth import OPEN, AuthError, Grant, TokenVerifier
from ..hooks import Authenticate, HookFailed, HookRunner
from .errors import ApiError

log = logging.getLogger("collab.access")

COOKIE = "collab_token"


class Access:
    def __init__(
        self,
        verifier: TokenVerifier | None,
        *,
        origins: frozenset[str] = frozenset(),
        max_connections_per_client: int = 64,
        authenticate: Authenticate | None = None,
        runner: HookRunner | None = None,
    ) -> None:
        if authenticate is not None and runner is None:
            raise ValueError("an authenticate hook needs a runner")
        self.verifier = verifier
        self.authenticate = authenticate
        self.runner = runner
        self.origins = origins
        self.max_connections_per_client = max_connections_per_client
        self._connections: collections.Counter[str] = collections.Counter()

    async def grant(
        self, conn: HTTPConnection, doc_id: str | None = None, *, write: bool = False
    ) -> Grant:
        """The caller's grant; ApiError 401 without a valid token (or when the host's
        authenticate hook refuses), 403 if it does not cover ``doc_id`` (or cannot
        write when ``write``), 503 if the hook fails.

        A token is checked as a JWT when a secret or key is configured; without one,
        the authenticate hook (if the host gave one) decides."""
        token = _token(conn)
        if self.verifier is not None and (token is not None or self.authenticate is None):
            if token is None:
                raise ApiError(401, "unauthorized", "a token is required")
            try:
                grant = self.verifier.verify(token)
            except AuthError as exc:
                raise ApiError(401, "unauthorized", str(exc)) from None
        elif self.authenticate is not None:
            grant = await self._authenticate(conn, doc_id)
        else:
            return OPEN
        if doc_id is not None and not grant.covers(doc_id):
            raise ApiError(403, "forbidden", f"the token does not cover {doc_id!r}")
        if write and not grant.can_write:
            raise ApiError(403, "read_only", "the token is read-only")
        return grant

    def check_origin(self, conn: HTTPConnection, *, required: bool = False) -> None:
        """Refuse a browser's request from another site (a cookie would otherwise carry
        a token for a page of another site): ApiError 403 unless the Origin is this
        host (always: the bundled editor is served from it) or one of
        ``COLLAB_ALLOWED_ORIGINS``. Clients that send no Origin are not
        browsers, unless ``required``."""
        origin = conn.headers.get("origin")
        if origin is None:
            if required:
                raise ApiError(403, "origin_refused", "a request with the cookie needs an Origin")
            return
        origin = origin.rstrip("/")
        if origin in self.origins:
            return
        if urlsplit(origin).netloc == conn.headers.get("host"):
            return
        raise ApiError(403, "origin_refused", f"requests from {origin[:200]} are not allowed")

    def by_cookie(self, conn: HTTPConnection) -> bool:
        """True when the caller's credential is the cookie: the one a browser attaches
        to requests that other sites' pages make."""
        credential = _credential(conn)
        if credential is None or self.verifier is None:
            # The host's own sign-in (its session cookie, say) is as ambient; without
            # a verifier a token the request names is not what grants it anything.
            return self.authenticate is not None
        return credential is Credential.COOKIE

    async def _authenticate(self, conn: HTTPConnection, doc_id: str | None) -> Grant:
        assert self.authenticate is not None
        assert self.runner is not None
        try:
            grant = await self.runner.call("authenticate", self.authenticate(conn, doc_id))
        except HookFailed:
            raise ApiError(
                503, "auth_unavailable", "the sign-in check failed; try again later"
            ) from None
        if grant is None:
            raise ApiError(401, "unauthorized", "not signed in, or not allowed")
        if not isinstance(grant, Grant):
            log.error(
                "the authenticate hook returned %s, not a Grant or None; refusing",
                type(grant).__name__,
            )
            raise ApiError(503, "auth_unavailable", "the sign-in check failed; try again later")
        return grant

    def open_connection(self, client: str) -> None:
        if self._connections[client] >= self.max_connections_per_client:
            raise ApiError(
                429,
                "too_many_connections",
                f"at most {self.max_connections_per_client} connections per client",
            )
        self._connections[client] += 1

    def close_connection(self, client: str) -> None:
        self._connections[client] -= 1
        if self._connections[client] <= 0:
            del self._connections[client]


class Credential(enum.Enum):
    """Where a request carries its token, in the order they are looked for."""

    QUERY = "query"
    HEADER = "header"
    COOKIE = "cookie"


def _credential(conn: HTTPConnection) -> Credential | None:
    return _token_and_credential(conn)[1]


def _token(conn: HTTPConnection) -> str | None:
    return _token_and_credential(conn)[0]


def token_of(conn: HTTPConnection) -> str | None:
    """The token the request carries, wherever it carries it."""
    return _token(conn)


def _token_and_credential(conn: HTTPConnection) -> tuple[str | None, Credential | None]:
    token = conn.query_params.get("token")
    if token:
        return token, Credential.QUERY
    scheme, _, credentials = conn.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip(), Credential.HEADER
    cookie = conn.cookies.get(COOKIE)
    return (cookie, Credential.COOKIE) if cookie else (None, None)
