"""Who may connect: browser origins, tokens and their scopes, connections per client.
Every check here runs before a WebSocket is accepted, and for every API call."""

from __future__ import annotations

import collections
import enum
import logging
from urllib.parse import urlsplit

from starlette.requests import HTTPConnection

from ..auth import OPEN, AuthError, Grant, TokenVerifier
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
    ) -> None:
        self.verifier = verifier
        self.origins = origins
        self.max_connections_per_client = max_connections_per_client
        self._connections: collections.Counter[str] = collections.Counter()

    def grant(
        self, conn: HTTPConnection, doc_id: str | None = None, *, write: bool = False
    ) -> Grant:
        """The caller's grant; ApiError 401 without a valid token, 403 if it does not
        cover ``doc_id`` (or cannot write when ``write``)."""
        if self.verifier is None:
            return OPEN
        token = _token(conn)
        if token is None:
            raise ApiError(401, "unauthorized", "a token is required")
        try:
            grant = self.verifier.verify(token)
        except AuthError as exc:
            raise ApiError(401, "unauthorized", str(exc)) from None
        if doc_id is not None and not grant.covers(doc_id):
            raise ApiError(403, "forbidden", f"the token does not cover {doc_id!r}")
        if write and not grant.can_write:
            raise ApiError(403, "read_only", "the token is read-only")
        return grant

    def check_origin(self, conn: HTTPConnection, *, required: bool = False) -> None:
        """Refuse a browser's request from another site (a cookie would otherwise carry
        a token for a page of another site): ApiError 403 unless the Origin is this
        host or one of ``COLLAB_ALLOWED_ORIGINS``. Clients that send no Origin are not
        browsers, unless ``required``."""
        origin = conn.headers.get("origin")
        if origin is None:
            if required:
                raise ApiError(403, "origin_refused", "a request with the cookie needs an Origin")
            return
        origin = origin.rstrip("/")
        if origin in self.origins:
            return
        if not self.origins and urlsplit(origin).netloc == conn.headers.get("host"):
            return
        raise ApiError(403, "origin_refused", f"requests from {origin[:200]} are not allowed")

    def by_cookie(self, conn: HTTPConnection) -> bool:
        """True when the caller's credential is the cookie: the one a browser attaches
        to requests that other sites' pages make."""
        return self.verifier is not None and _credential(conn) is Credential.COOKIE

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


def _token_and_credential(conn: HTTPConnection) -> tuple[str | None, Credential | None]:
    token = conn.query_params.get("token")
    if token:
        return token, Credential.QUERY
    scheme, _, credentials = conn.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip(), Credential.HEADER
    cookie = conn.cookies.get(COOKIE)
    return (cookie, Credential.COOKIE) if cookie else (None, None)
