"""Tokens that collab signs itself, for callers that already hold one: a share link's
token (one document, at most the caller's access, for at most as long) and the
renewal of a token about to expire (the same claims, a fresh ``exp``, never past a
maximum lifetime counted from the first token of the chain)."""

from __future__ import annotations

import time
from typing import Any

import jwt

from .auth import LEEWAY_SECONDS, AuthError, Grant, Mode

# The lifetime given to a renewed token whose first one said nothing of its own
# (no ``iat``).
DEFAULT_RENEWED_TTL = 3600.0


class Refused(Exception):
    """The request cannot be granted; the message says why."""


class TokenMinter:
    def __init__(self, secret: str, *, share_max_ttl: float, max_lifetime: float) -> None:
        if not secret:
            raise ValueError("a token minter needs the HS256 secret")
        self._secret = secret
        self.share_max_ttl = share_max_ttl
        self.max_lifetime = max_lifetime

    def share(
        self, grant: Grant, doc_id: str, mode: Mode, ttl: float | None, now: float | None = None
    ) -> tuple[str, float]:
        """A token for ``doc_id`` alone, in ``mode``, and its expiry: never more
        access than ``grant`` has, never past its expiry. Whoever opens it is a guest
        (``anonymous``): the editor asks their name."""
        if not grant.covers(doc_id):
            raise Refused(f"your access does not cover {doc_id!r}")
        if mode is Mode.READ_WRITE and not grant.can_write:
            raise Refused("a read-only access cannot share read-write")
        now = time.time() if now is None else now
        expires = now + (self.share_max_ttl if ttl is None else ttl)
        if grant.exp is not None:
            expires = min(expires, grant.exp)
        if expires <= now:
            raise Refused("your own access has expired")
        claims: dict[str, Any] = {
            "sub": f"link:{grant.sub}"[:200],
            "docs": [doc_id],
            "mode": mode.value,
            "anonymous": True,
            "iat": int(now),
            "auth_time": int(now),
            "exp": int(expires),
            # A link ends when it was made to: renewals never take it further.
            "renew_until": int(expires),
        }
        return jwt.encode(claims, self._secret, algorithm="HS256"), float(int(expires))

    def renew(self, token: str, now: float | None = None) -> tuple[str, float]:
        """The same claims with a fresh ``exp``: as long a lifetime as the token had
        (``exp - iat``), ending no later than ``max_lifetime`` after the chain's
        first token (its ``auth_time``, else its ``iat``, else now). AuthError for a
        token this server did not sign with its secret, or one that has expired;
        Refused past the maximum lifetime."""
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._secret,
                algorithms=["HS256"],
                leeway=LEEWAY_SECONDS,
                options={"require": ["sub", "exp"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("token expired") from None
        except jwt.InvalidTokenError as exc:
            raise AuthError(f"only tokens signed with the secret renew: {exc}") from None
        now = time.time() if now is None else now
        issued = _number(claims.get("iat"))
        first = _number(claims.get("auth_time"))
        if first is None:
            first = issued if issued is not None else now
        lifetime = claims["exp"] - issued if issued is not None else DEFAULT_RENEWED_TTL
        expires = min(now + max(lifetime, 1.0), first + self.max_lifetime)
        until = _number(claims.get("renew_until"))
        if until is not None:
            expires = min(expires, until)
        if expires <= now + 1:
            raise Refused(
                "this access ends now (a link ends when it was made to, and any access "
                f"{self.max_lifetime:g} seconds after it was first granted); ask for a new link"
            )
        claims.pop("nbf", None)
        claims.update(iat=int(now), auth_time=int(first), exp=int(expires))
        return jwt.encode(claims, self._secret, algorithm="HS256"), float(int(expires))


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
