"""Access tokens: signed JWTs naming a user, the documents it may open (glob patterns
over ids) and whether it may change them."""

from __future__ import annotations

import enum
import fnmatch
import time
from collections.abc import Sequence
from dataclasses import dataclass

import jwt

LEEWAY_SECONDS = 5


class Mode(enum.StrEnum):
    READ_WRITE = "rw"
    READ_ONLY = "ro"


class AuthError(Exception):
    """A token is missing, malformed, badly signed or expired; the message says which."""


MAX_NAME = 200


@dataclass(frozen=True, slots=True)
class Grant:
    """Who a caller is and what it may do: from a token's claims, or made by the
    host's authenticate hook (``Grant("carol", name="Carol", mode="ro")``)."""

    sub: str
    docs: tuple[str, ...] = ("*",)
    mode: Mode = Mode.READ_WRITE
    exp: float | None = None
    name: str | None = None  # what the editor shows; ``sub`` when None
    # A guest (a share link's token): the editor asks for a name to show.
    anonymous: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.sub, str) or not self.sub:
            raise ValueError("a Grant's sub must be a non-empty string")
        if self.name is not None and (not isinstance(self.name, str) or len(self.name) > MAX_NAME):
            raise ValueError(f"a Grant's name must be a string of at most {MAX_NAME} characters")
        object.__setattr__(self, "docs", tuple(self.docs))
        object.__setattr__(self, "mode", Mode(self.mode))

    @property
    def display_name(self) -> str:
        return self.name or self.sub

    @property
    def can_write(self) -> bool:
        return self.mode is Mode.READ_WRITE

    def covers(self, doc_id: str) -> bool:
        return any(fnmatch.fnmatchcase(doc_id, pattern) for pattern in self.docs)


# With no secret configured the server is open: everyone may do everything.
OPEN = Grant(sub="anonymous", docs=("*",), mode=Mode.READ_WRITE, exp=None)


class TokenVerifier:
    def __init__(self, secret: str, public_key: str = "") -> None:
        self._keys: list[tuple[str, list[str]]] = []
        if secret:
            self._keys.append((secret, ["HS256"]))
        if public_key:
            self._keys.append((public_key, ["RS256", "ES256"]))
        if not self._keys:
            raise ValueError("a token verifier needs a secret or a public key")

    def verify(self, token: str) -> Grant:
        claims = None
        error: Exception | None = None
        for key, algorithms in self._keys:
            try:
                claims = jwt.decode(
                    token,
                    key,
                    algorithms=algorithms,
                    leeway=LEEWAY_SECONDS,
                    options={"require": ["sub", "exp"]},
                )
                break
            except jwt.ExpiredSignatureError:
                raise AuthError("token expired") from None
            except jwt.ImmatureSignatureError:
                raise AuthError("token not valid yet") from None
            except jwt.InvalidTokenError as exc:
                error = exc
        if claims is None:
            raise AuthError(f"invalid token: {error}")
        return _grant(claims)


def _grant(claims: dict[str, object]) -> Grant:
    sub, docs, mode, exp = claims.get("sub"), claims.get("docs"), claims.get("mode"), claims["exp"]
    if not isinstance(sub, str) or not sub:
        raise AuthError("invalid token: sub must be a non-empty string")
    if not isinstance(docs, list) or not all(isinstance(d, str) for d in docs):
        raise AuthError("invalid token: docs must be a list of patterns")
    if mode not in ("rw", "ro"):
        raise AuthError('invalid token: mode must be "rw" or "ro"')
    if not isinstance(exp, int | float):
        raise AuthError("invalid token: exp must be a number")
    name = claims.get("name")
    if name is not None and (not isinstance(name, str) or len(name) > MAX_NAME):
        raise AuthError(f"invalid token: name must be a string of at most {MAX_NAME} characters")
    anonymous = claims.get("anonymous", False)
    if not isinstance(anonymous, bool):
        raise AuthError("invalid token: anonymous must be true or false")
    return Grant(
        sub=sub,
        docs=tuple(docs),
        mode=Mode(mode),
        exp=float(exp),
        name=name or None,
        anonymous=anonymous,
    )


def issue(
    secret: str,
    sub: str,
    docs: Sequence[str],
    *,
    read_only: bool = False,
    ttl: float = 3600,
    name: str | None = None,
) -> str:
    """A token signed with ``secret`` (HS256), as `collab token` prints it."""
    claims: dict[str, object] = {
        "sub": sub,
        "docs": list(docs),
        "mode": Mode.READ_ONLY.value if read_only else Mode.READ_WRITE.value,
        "iat": int(time.time()),
        "exp": int(time.time() + ttl),
    }
    if name:
        claims["name"] = name
    return jwt.encode(claims, secret, algorithm="HS256")
