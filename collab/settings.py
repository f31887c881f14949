"""One typed settings object, read from ``COLLAB_*`` environment variables.

pydantic does the parsing and the bounds; every failure becomes one `SettingsError`
line that names the variable (or the command-line flag) that holds the bad value."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from typing import Any, Literal, get_args
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

ENV_PREFIX = "COLLAB_"

# A number past these is a typo, and a huge interval would mean "never", as inf would.
MAX_SECONDS = 1e6
MAX_COUNT = 2**40

DRIVERS = {
    "sqlite+aiosqlite": "sqlite+aiosqlite:///PATH",
    "postgresql+asyncpg": "postgresql+asyncpg://USER:PASSWORD@HOST/DB",
}

_HOSTNAME = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?")


class SettingsError(ValueError):
    """A setting has a value that cannot be used; the message names it."""

    def __init__(self, message: str, details: ErrorDetails | None = None) -> None:
        super().__init__(message)
        self.details = details


def _seconds(default: float, help: str, *, min: float) -> Any:
    return Field(default, description=help, ge=min, le=MAX_SECONDS)


def _count(default: int, help: str, *, min: int, max: int = MAX_COUNT) -> Any:
    return Field(default, description=help, ge=min, le=max)


def _text(default: str, help: str, *, secret: bool = False) -> Any:
    # A secret (or a URL that may hold a password) is never repeated in a message or repr.
    return Field(default, description=help, repr=not secret)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        frozen=True,
        extra="forbid",
        allow_inf_nan=False,
        validate_default=True,
    )

    database_url: str = _text(
        "sqlite+aiosqlite:///collab.db", "SQLAlchemy async URL of the database", secret=True
    )
    host: str = _text("127.0.0.1", "address to bind")
    port: int = _count(8000, "port to bind", min=0, max=65535)
    max_message_size: int = _count(
        8 * 1024 * 1024, "largest WebSocket message accepted, in bytes (1009 above)", min=1024
    )
    max_update_depth: int = _count(
        128,
        "deepest nesting of values in a Yjs update, and of shared types in a document "
        "(1007 above); the text, HTML and Markdown readers go some 250 levels deep",
        min=1,
        max=200,
    )
    send_queue_messages: int = _count(
        4096, "messages queued for one peer before it is closed with 1013", min=1
    )
    send_queue_bytes: int = _count(
        32 * 1024 * 1024, "bytes queued for one peer before it is closed with 1013", min=1024
    )
    ping_interval: float = _seconds(
        20.0, "seconds between WebSocket protocol pings (0 disables)", min=0
    )
    ping_timeout: float = _seconds(
        20.0, "seconds to wait for a pong before closing the peer", min=0.1
    )
    ws_protocol: Literal["batching", "stock"] = Field(
        "batching",
        description="batching (uvicorn's websockets-sansio protocol extended to write a "
        "broadcast to each peer without a task switch) or stock (uvicorn's own)",
    )
    keepalive_interval: float = _seconds(
        10.0, "an idle peer is sent an empty awareness message after this many seconds", min=0.1
    )
    max_awareness_clients: int = _count(
        4, "awareness client ids one connection may introduce (more are ignored)", min=1
    )
    max_awareness_state: int = _count(
        64 * 1024, "largest awareness state of one client, in bytes (1009 above)", min=256
    )
    max_room_awareness_clients: int = _count(
        256,
        "awareness entries one room holds (more are ignored); a joiner is sent them all",
        min=1,
    )
    room_release_delay: float = _seconds(
        10.0, "seconds a room stays in memory after its last peer leaves", min=0
    )
    flush_interval: float = _seconds(
        0.1,
        "longest wait of an accepted update before a write of it begins, in seconds",
        min=0.005,
    )
    snapshot_interval: float = _seconds(
        60.0, "seconds between compactions of a changed room's log", min=0.1
    )
    snapshot_threshold: int = _count(500, "log rows of a document that trigger a compaction", min=1)
    version_quiet: float = _seconds(
        30.0, "seconds of quiet after which a changed document gets an automatic version", min=0.1
    )
    version_retention: int = _count(
        20, "automatic versions kept per document (named ones are kept)", min=0
    )
    retry_max_delay: float = _seconds(
        5.0, "longest pause between retries of a failed database write", min=0.01
    )
    max_write_lag: float = _seconds(
        5.0,
        "seconds the oldest accepted update may wait to be written; past it /readyz answers "
        "503 and writers' changes are not read until writes catch up",
        min=0.05,
    )
    shutdown_timeout: float = _seconds(
        10.0, "seconds allowed for writing rooms at shutdown", min=0.1
    )
    redis_url: str = _text(
        "",
        "redis://… to share rooms with other collab processes (unset: one process)",
        secret=True,
    )
    redis_prefix: str = _text("collab", "prefix of this deployment's Redis channel names")
    redis_heartbeat_interval: float = _seconds(
        2.0, "seconds between a process's heartbeats on Redis", min=0.05
    )
    redis_process_timeout: float = _seconds(
        10.0, "a process silent this long is gone: its peers' presence is dropped", min=0.1
    )
    redis_join_timeout: float = _seconds(
        1.0, "longest wait, opening a room, for other processes' unwritten edits", min=0
    )
    redis_retry_max_delay: float = _seconds(
        5.0, "longest pause between Redis reconnection attempts", min=0.05
    )
    auth_secret: str = _text(
        "", "HS256 secret; when set, every WebSocket and API call needs a token", secret=True
    )
    auth_public_key: str = _text(
        "", "PEM public key (or a path to one) accepting RS256/ES256 tokens too", secret=True
    )
    share_max_ttl: float = _seconds(
        604800.0,
        "longest a share link made in the editor lasts, in seconds (never past the sharer's "
        "own token)",
        min=1,
    )
    token_max_lifetime: float = _seconds(
        43200.0,
        "seconds after a token chain's first token past which POST /api/token/renew refuses "
        "(0: no renewal)",
        min=0,
    )
    token_refresh_url: str = _text(
        "",
        "where the editor gets a fresh token before its own expires: the host application's "
        "URL (http(s)://…, or a path on the editor's own origin), POSTed with the browser's "
        'credentials and the current token, answering {"token": …} (unset: '
        "POST /api/token/renew)",
    )
    allowed_origins: str = _text(
        "",
        "comma-separated Origins (scheme://host[:port]) allowed to open WebSockets and call "
        "the API besides the server's own host",
    )
    webhook_url: str = _text(
        "",
        "http(s):// URL that is sent a signed JSON POST per document event (unset: no webhooks)",
        secret=True,
    )
    webhook_secret: str = _text(
        "", "HMAC-SHA256 key of the webhook signature; required with the URL", secret=True
    )
    webhook_debounce: float = _seconds(
        2.0, "seconds after a document's last change before document.changed is sent", min=0
    )
    webhook_max_wait: float = _seconds(
        30.0,
        "seconds after a document's first change within which document.changed is sent at "
        "the latest",
        min=0,
    )
    webhook_timeout: float = _seconds(
        10.0, "seconds one webhook delivery attempt may take", min=0.001
    )
    hook_timeout: float = _seconds(
        5.0,
        "seconds an embedding host's hook may run before it is abandoned and logged",
        min=0.001,
    )
    max_connections_per_client: int = _count(
        64, "WebSockets one client address may hold at once (429 above)", min=1
    )
    messages_per_second: float = Field(
        1000.0,
        description="messages one connection may send per second (above, it is read slower)",
        ge=1,
        le=MAX_SECONDS,
    )
    bytes_per_second: int = _count(
        8 * 1024 * 1024,
        "bytes one connection may send per second (above, it is read slower)",
        min=1024,
    )
    max_json_body: int = _count(
        64 * 1024, "largest JSON request body accepted, in bytes (413 above)", min=1024
    )
    content_parsers: int = _count(
        1, "threads that parse PUT …/content bodies (Markdown, HTML), at most", min=1, max=64
    )
    content_queue: int = _count(
        16, "PUT …/content bodies that may wait for a parser (503 busy above)", min=0, max=10_000
    )
    header_timeout: float = _seconds(
        10.0, "seconds to send a request's headers (then it is closed)", min=0.1
    )
    max_header_bytes: int = _count(
        64 * 1024, "largest request line and headers, in bytes (431 above)", min=1024
    )
    max_incomplete_connections: int = _count(
        256,
        "connections still sending their request headers at once (the oldest is closed above)",
        min=1,
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="debug, info, warning or error"
    )
    log_format: Literal["text", "json"] = Field(
        "text", description="text or json (one JSON object per line)"
    )

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            details = exc.errors()[0]
            raise SettingsError(_explain(details, {}), details) from None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # ``Settings(...)`` is exactly what it is given (an embedding host's, a test's);
        # only from_env reads the environment, and only the mapping it is handed.
        return (init_settings,)

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        flags: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> Settings:
        """Settings from ``COLLAB_*`` variables, then ``overrides``. ``flags`` names the
        command-line flag an override came from (``{"port": "--port"}``), for errors."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {
            name: env[env_name(name)] for name in cls.model_fields if env_name(name) in env
        }
        values.update(overrides)
        try:
            return cls(**values)
        except SettingsError as exc:
            if exc.details is None or not flags:
                raise
            raise SettingsError(_explain(exc.details, flags), exc.details) from None

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _case_insensitive(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, value: str) -> str:
        _database_url(value)
        return value

    @field_validator("host")
    @classmethod
    def _bindable_host(cls, value: str) -> str:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            if len(value) > 253 or not _HOSTNAME.fullmatch(value):
                raise ValueError("is neither an IP address nor a host name") from None
        return value

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: str) -> str:
        for origin in value.split(","):
            if origin.strip():
                _origin(origin.strip())
        return value

    @field_validator("webhook_url")
    @classmethod
    def _webhook(cls, value: str) -> str:
        if value:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("token_refresh_url")
    @classmethod
    def _refresh_url(cls, value: str) -> str:
        if value and not value.startswith("/"):
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("must be an http(s):// URL or a path starting with /")
        if value.startswith("//"):
            raise ValueError("must be an http(s):// URL or a path starting with /")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis(cls, value: str) -> str:
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator("auth_secret")
    @classmethod
    def _long_secret(cls, value: str) -> str:
        if value and len(value.encode()) < 32:
            raise ValueError("must be at least 32 bytes long")
        return value

    @field_validator("auth_public_key")
    @classmethod
    def _pem(cls, value: str) -> str:
        if value and not _pem(value).startswith("-----BEGIN"):
            raise ValueError("is neither a PEM key nor a file holding one")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.webhook_url and not self.webhook_secret:
            raise ValueError("COLLAB_WEBHOOK_SECRET must be set with COLLAB_WEBHOOK_URL")
        if self.webhook_max_wait < self.webhook_debounce:
            raise ValueError("COLLAB_WEBHOOK_MAX_WAIT must be at least COLLAB_WEBHOOK_DEBOUNCE")
        if self.redis_url and self.redis_process_timeout <= 2 * self.redis_heartbeat_interval:
            raise ValueError(
                "COLLAB_REDIS_PROCESS_TIMEOUT must exceed twice COLLAB_REDIS_HEARTBEAT_INTERVAL"
            )
        if self.max_write_lag <= self.flush_interval:
            raise ValueError("COLLAB_MAX_WRITE_LAG must exceed COLLAB_FLUSH_INTERVAL")
        return self

    def check_database_path(self) -> None:
        """An SQLite file must be one collab can create or write, in a directory it can
        write (SQLite keeps its journal beside it). Checked when a command starts, not
        when settings are read: the directory may be made between the two."""
        url = _database_url(self.database_url)
        database = url.database
        if url.get_backend_name() != "sqlite" or not database or database == ":memory:":
            return
        if url.query.get("mode") == "memory" or database.startswith("file:"):
            return
        path = os.path.abspath(database)
        directory = os.path.dirname(path)
        problem = (
            f"directory {directory} does not exist"
            if not os.path.isdir(directory)
            else f"{path} is a directory"
            if os.path.isdir(path)
            else f"directory {directory} is not writable"
            if not os.access(directory, os.W_OK | os.X_OK)
            else f"{path} is not writable"
            if os.path.exists(path) and not os.access(path, os.R_OK | os.W_OK)
            else None
        )
        if problem:
            raise SettingsError(f"COLLAB_DATABASE_URL names an SQLite file, but {problem}")

    @property
    def public_key_pem(self) -> str:
        return _pem(self.auth_public_key)

    @property
    def origins(self) -> frozenset[str]:
        """The allowed Origins, spelled the way a browser sends them."""
        return frozenset(_origin(o.strip()) for o in self.allowed_origins.split(",") if o.strip())


def env_name(field_name: str) -> str:
    return ENV_PREFIX + field_name.upper()


def describe() -> list[tuple[str, str, str]]:
    """(variable, default, meaning) for every setting, for --help and the README."""
    return [
        (
            env_name(name),
            str(f.default) if f.default != "" else "(unset)",
            f.description or "",
        )
        for name, f in Settings.model_fields.items()
    ]


def _database_url(value: str) -> URL:
    try:
        url = make_url(value)
    except ArgumentError:
        raise ValueError("is not a database URL") from None
    if url.drivername not in DRIVERS:
        forms = " or ".join(DRIVERS.values())
        raise ValueError(f"names the driver {url.drivername[:40]!r}; collab supports {forms}")
    return url


def _origin(value: str) -> str:
    """``value`` as a browser's Origin header spells it (lower case, no default port);
    ValueError unless it is ``scheme://host[:port]`` with http or https."""
    problem = f"lists {value[:80]!r}, not scheme://host[:port] with http or https"
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise ValueError(problem) from None
    if (
        parts.scheme.lower() not in ("http", "https")
        or not parts.hostname
        or parts.username is not None
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
    ):
        raise ValueError(problem)
    scheme = parts.scheme.lower()
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    default = {"http": 80, "https": 443}[scheme]
    return f"{scheme}://{host}" + (f":{port}" if port not in (None, default) else "")


def _pem(key: str) -> str:
    key = key.strip()
    if key and not key.startswith("-----BEGIN") and os.path.isfile(key):
        with open(key) as file:
            return file.read().strip()
    return key


_PROBLEMS = {
    "int_parsing": "is not a valid int",
    "int_parsing_size": "is not a valid int (too many digits)",
    "int_from_float": "is not a valid int",
    "int_type": "is not a valid int",
    "float_parsing": "is not a valid float",
    "float_type": "is not a valid float",
    "finite_number": "is not a finite number",
    "string_type": "is not a string",
    "extra_forbidden": "is not a setting",
}


# Settings whose errors quote the part of the value that is wrong.
_QUOTES_ITS_VALUE = {"allowed_origins"}


def _explain(error: ErrorDetails, flags: Mapping[str, str]) -> str:
    """One line naming where the bad value came from and what is wrong with it."""
    ctx = error.get("ctx", {})
    if not error["loc"]:
        return str(ctx.get("error", error["msg"]))
    field = str(error["loc"][0])
    info = Settings.model_fields.get(field)
    kind = error["type"]
    if kind == "value_error":
        problem = str(ctx["error"])
    elif kind in ("greater_than_equal", "less_than_equal"):
        bound = "minimum" if kind == "greater_than_equal" else "maximum"
        problem = f"is {'below' if bound == 'minimum' else 'above'} the {bound} " + str(
            ctx.get("ge", ctx.get("le"))
        )
    elif kind == "literal_error" and info is not None:
        problem = "is not one of: " + ", ".join(get_args(info.annotation))
    else:
        problem = _PROBLEMS.get(kind, error["msg"])
    name = flags.get(field, env_name(field))
    if (info is not None and not info.repr) or field in _QUOTES_ITS_VALUE:
        return f"{name} {problem}"
    shown = repr(error["input"])
    shown = shown if len(shown) <= 80 else shown[:80] + "…"
    return f"{name} {shown} {problem}" if field in flags else f"{name}={shown} {problem}"
