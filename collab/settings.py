"""One typed settings object, read from ``COLLAB_*`` environment variables."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class SettingsError(ValueError):
    """A setting has a value that cannot be used; the message names it."""


@dataclass(frozen=True)
class Settings:
    database_url: str = field(
        default="sqlite+aiosqlite:///collab.db",
        metadata={"help": "SQLAlchemy async URL of the database"},
    )
    host: str = field(default="127.0.0.1", metadata={"help": "address to bind"})
    port: int = field(default=8000, metadata={"help": "port to bind", "min": 0, "max": 65535})
    max_message_size: int = field(
        default=8 * 1024 * 1024,
        metadata={"help": "largest WebSocket message accepted, in bytes (1009 above)", "min": 1024},
    )
    max_update_depth: int = field(
        default=128,
        metadata={
            "help": "deepest nesting of values in a Yjs update (1007 above); JS clients "
            "fail to open documents nested some thousands deep",
            "min": 1,
            "max": 1000,
        },
    )
    send_queue_messages: int = field(
        default=4096,
        metadata={"help": "messages queued for one peer before it is closed with 1013", "min": 1},
    )
    send_queue_bytes: int = field(
        default=32 * 1024 * 1024,
        metadata={"help": "bytes queued for one peer before it is closed with 1013", "min": 1024},
    )
    ping_interval: float = field(
        default=20.0,
        metadata={"help": "seconds between WebSocket protocol pings (0 disables)", "min": 0},
    )
    ping_timeout: float = field(
        default=20.0,
        metadata={"help": "seconds to wait for a pong before closing the peer", "min": 0.1},
    )
    keepalive_interval: float = field(
        default=10.0,
        metadata={
            "help": "an idle peer is sent an empty awareness message after this many seconds",
            "min": 0.1,
        },
    )
    max_awareness_clients: int = field(
        default=4,
        metadata={
            "help": "awareness client ids one connection may introduce (1008 above)",
            "min": 1,
        },
    )
    max_awareness_state: int = field(
        default=64 * 1024,
        metadata={
            "help": "largest awareness state of one client, in bytes (1009 above)",
            "min": 256,
        },
    )
    max_room_awareness_clients: int = field(
        default=256,
        metadata={
            "help": "awareness entries one room holds (more are ignored); a joiner is sent "
            "them all",
            "min": 1,
        },
    )
    room_release_delay: float = field(
        default=10.0,
        metadata={"help": "seconds a room stays in memory after its last peer leaves", "min": 0},
    )
    flush_interval: float = field(
        default=0.1,
        metadata={
            "help": "longest wait of an accepted update before a write of it begins, in seconds",
            "min": 0.005,
        },
    )
    snapshot_interval: float = field(
        default=60.0,
        metadata={"help": "seconds between compactions of a changed room's log", "min": 0.1},
    )
    snapshot_threshold: int = field(
        default=500,
        metadata={"help": "log rows of a document that trigger a compaction", "min": 1},
    )
    version_quiet: float = field(
        default=30.0,
        metadata={
            "help": "seconds of quiet after which a changed document gets an automatic version",
            "min": 0.1,
        },
    )
    version_retention: int = field(
        default=20,
        metadata={"help": "automatic versions kept per document (named ones are kept)", "min": 0},
    )
    retry_max_delay: float = field(
        default=5.0,
        metadata={"help": "longest pause between retries of a failed database write", "min": 0.01},
    )
    max_write_lag: float = field(
        default=5.0,
        metadata={
            "help": "seconds the oldest accepted update may wait to be written; past it /readyz "
            "answers 503 and writers' changes are not read until writes catch up",
            "min": 0.05,
        },
    )
    shutdown_timeout: float = field(
        default=10.0,
        metadata={"help": "seconds allowed for writing rooms at shutdown", "min": 0.1},
    )
    redis_url: str = field(
        default="",
        metadata={
            "help": "redis://… to share rooms with other collab processes (unset: one process)",
            "secret": True,
        },
    )
    redis_prefix: str = field(
        default="collab",
        metadata={"help": "prefix of this deployment's Redis channel names"},
    )
    redis_heartbeat_interval: float = field(
        default=2.0,
        metadata={"help": "seconds between a process's heartbeats on Redis", "min": 0.05},
    )
    redis_process_timeout: float = field(
        default=10.0,
        metadata={
            "help": "a process silent this long is gone: its peers' presence is dropped",
            "min": 0.1,
        },
    )
    redis_join_timeout: float = field(
        default=1.0,
        metadata={
            "help": "longest wait, opening a room, for other processes' unwritten edits",
            "min": 0,
        },
    )
    redis_retry_max_delay: float = field(
        default=5.0,
        metadata={"help": "longest pause between Redis reconnection attempts", "min": 0.05},
    )
    auth_secret: str = field(
        default="",
        metadata={
            "help": "HS256 secret; when set, every WebSocket and API call needs a token",
            "secret": True,
        },
    )
    auth_public_key: str = field(
        default="",
        metadata={
            "help": "PEM public key (or a path to one) accepting RS256/ES256 tokens too",
            "secret": True,
        },
    )
    allowed_origins: str = field(
        default="",
        metadata={
            "help": "comma-separated Origins allowed to open WebSockets and call the API "
            "(empty: the same host)"
        },
    )
    webhook_url: str = field(
        default="",
        metadata={
            "help": "http(s):// URL that is sent a signed JSON POST per document event "
            "(unset: no webhooks)",
            "secret": True,
        },
    )
    webhook_secret: str = field(
        default="",
        metadata={
            "help": "HMAC-SHA256 key of the webhook signature; required with the URL",
            "secret": True,
        },
    )
    webhook_debounce: float = field(
        default=2.0,
        metadata={
            "help": "seconds after a document's last change before document.changed is sent",
            "min": 0,
        },
    )
    webhook_max_wait: float = field(
        default=30.0,
        metadata={
            "help": "seconds after a document's first change within which document.changed "
            "is sent at the latest",
            "min": 0,
        },
    )
    webhook_timeout: float = field(
        default=10.0,
        metadata={"help": "seconds one webhook delivery attempt may take", "min": 0.001},
    )
    hook_timeout: float = field(
        default=5.0,
        metadata={
            "help": "seconds an embedding host's hook may run before it is abandoned and logged",
            "min": 0.001,
        },
    )
    max_connections_per_client: int = field(
        default=64,
        metadata={"help": "WebSockets one client address may hold at once (429 above)", "min": 1},
    )
    messages_per_second: float = field(
        default=1000.0,
        metadata={
            "help": "messages one connection may send per second (above, it is read slower)",
            "min": 1,
        },
    )
    bytes_per_second: int = field(
        default=8 * 1024 * 1024,
        metadata={
            "help": "bytes one connection may send per second (above, it is read slower)",
            "min": 1024,
        },
    )
    max_json_body: int = field(
        default=64 * 1024,
        metadata={"help": "largest JSON request body accepted, in bytes (413 above)", "min": 1024},
    )
    header_timeout: float = field(
        default=10.0,
        metadata={"help": "seconds to send a request's headers (then it is closed)", "min": 0.1},
    )
    max_incomplete_connections: int = field(
        default=256,
        metadata={
            "help": "connections still sending their request headers at once (the oldest is "
            "closed above)",
            "min": 1,
        },
    )
    log_level: str = field(
        default="info",
        metadata={
            "help": "debug, info, warning or error",
            "choices": ("debug", "info", "warning", "error"),
        },
    )
    log_format: str = field(
        default="text",
        metadata={"help": "text or json (one JSON object per line)", "choices": ("text", "json")},
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            name = env_name(f.name)
            if f.name in overrides:
                values[f.name] = overrides[f.name]
            elif name in env:
                values[f.name] = _parse(f, env[name])
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            meta = f.metadata
            if isinstance(value, float) and not math.isfinite(value):
                # inf would pass "min" and mean never (an infinite flush interval writes
                # nothing until shutdown); nan passes every comparison.
                raise SettingsError(f"{env_name(f.name)}={value} is not a finite number")
            if "min" in meta and value < meta["min"]:
                raise SettingsError(
                    f"{env_name(f.name)}={value} is below the minimum {meta['min']}"
                )
            if "max" in meta and value > meta["max"]:
                raise SettingsError(
                    f"{env_name(f.name)}={value} is above the maximum {meta['max']}"
                )
            if "choices" in meta and value not in meta["choices"]:
                choices = ", ".join(meta["choices"])
                raise SettingsError(f"{env_name(f.name)}={value!r} is not one of: {choices}")
        if self.auth_secret and len(self.auth_secret.encode()) < 32:
            raise SettingsError("COLLAB_AUTH_SECRET must be at least 32 bytes long")
        if self.auth_public_key and not self.public_key_pem.startswith("-----BEGIN"):
            raise SettingsError(
                "COLLAB_AUTH_PUBLIC_KEY is neither a PEM key nor a file holding one"
            )
        if self.redis_url and not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise SettingsError("COLLAB_REDIS_URL must start with redis://, rediss:// or unix://")
        if self.redis_url and self.redis_process_timeout <= 2 * self.redis_heartbeat_interval:
            raise SettingsError(
                "COLLAB_REDIS_PROCESS_TIMEOUT must exceed twice COLLAB_REDIS_HEARTBEAT_INTERVAL"
            )
        if self.webhook_url and not self.webhook_url.startswith(("http://", "https://")):
            raise SettingsError("COLLAB_WEBHOOK_URL must start with http:// or https://")
        if self.webhook_url and not self.webhook_secret:
            raise SettingsError("COLLAB_WEBHOOK_SECRET must be set with COLLAB_WEBHOOK_URL")
        if self.webhook_max_wait < self.webhook_debounce:
            raise SettingsError("COLLAB_WEBHOOK_MAX_WAIT must be at least COLLAB_WEBHOOK_DEBOUNCE")
        if self.max_write_lag <= self.flush_interval:
            raise SettingsError("COLLAB_MAX_WRITE_LAG must exceed COLLAB_FLUSH_INTERVAL")
        if "+" not in self.database_url.split("://", 1)[0]:
            raise SettingsError(
                f"COLLAB_DATABASE_URL={self.database_url!r} must name an async driver, "
                "e.g. sqlite+aiosqlite:///collab.db or postgresql+asyncpg://user@host/db"
            )

    @property
    def public_key_pem(self) -> str:
        key = self.auth_public_key.strip()
        if key and not key.startswith("-----BEGIN") and os.path.isfile(key):
            with open(key) as file:
                return file.read().strip()
        return key

    @property
    def origins(self) -> frozenset[str]:
        return frozenset(
            o.strip().rstrip("/") for o in self.allowed_origins.split(",") if o.strip()
        )


def env_name(field_name: str) -> str:
    return "COLLAB_" + field_name.upper()


def describe() -> list[tuple[str, str, str]]:
    """(variable, default, meaning) for every setting, for --help and the README."""
    return [
        (
            env_name(f.name),
            str(f.default) if f.default != "" else "(unset)",
            str(f.metadata.get("help", "")),
        )
        for f in dataclasses.fields(Settings)
    ]


def _parse(f: dataclasses.Field[Any], raw: str) -> Any:
    kind = (
        f.type if isinstance(f.type, type) else {"int": int, "float": float}.get(str(f.type), str)
    )
    try:
        return (
            kind(raw.strip())
            if kind is not str
            else raw.strip().lower()
            if "choices" in f.metadata
            else raw
        )
    except ValueError:
        raise SettingsError(f"{env_name(f.name)}={raw!r} is not a valid {kind.__name__}") from None
