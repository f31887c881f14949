"""Delivering the outbox's events to the webhook URL: signed JSON POSTs, retried with
backoff until a 2xx, at least once."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import enum
import hashlib
import hmac
import json
import logging
import random
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from . import content
from .outbox import Claimed, Event, Outbox
from .settings import Settings
from .sqlstore import SqlStore
from .state import build_doc
from .store import DocumentDeleted, DocumentStore, StoredState, VersionNotFound

log = logging.getLogger("collab.webhooks")

BATCH = 16  # events attempted at once
POLL = 1.0  # seconds between looks for events recorded by other processes
RETRY_FIRST = 1.0  # seconds before the first retry; doubled each time...
RETRY_CAP = 300.0  # ...up to this
LEASE_MARGIN = 30.0  # an attempt holds its event for the timeout and this long
RESPONSE_BYTES = 4096  # of a receiver's answer read at most
USER_AGENT = "collab-webhooks/1"


class Phase(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    CLOSED = "closed"


class Outcome(enum.Enum):
    DELIVERED = "delivered"  # a 2xx answer
    REJECTED = "rejected"  # any other status, redirects included
    TIMEOUT = "timeout"
    UNREACHABLE = "unreachable"  # no connection, or no valid HTTP answer
    FAILED = "failed"  # the body could not be built (the database did not answer)


def sign(secret: str, body: bytes) -> str:
    """The ``X-Collab-Signature`` header of ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def retry_delay(attempt: int) -> float:
    """Seconds before the attempt after ``attempt`` failed: exponential, capped,
    jittered over its upper half so that a receiver back from an outage is not hit
    by every event at once."""
    ceiling = min(RETRY_CAP, RETRY_FIRST * 2.0 ** min(attempt - 1, 30))
    return ceiling * random.uniform(0.5, 1.0)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Webhooks:
    """Runs while the application does: claims due events from the outbox, builds
    their bodies from the stored documents, and delivers them."""

    def __init__(
        self,
        outbox: Outbox,
        store: DocumentStore,
        *,
        url: str,
        secret: str,
        timeout: float,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self._outbox = outbox
        self._store = store
        self._url = url
        self._secret = secret
        self._timeout = timeout
        self._phase = Phase.NEW
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None
        self._holding: set[int] = set()
        self._wakeup = asyncio.Event()
        self._wake_at = 0.0
        self._counted_at = -POLL
        self._attempts = Counter(
            "collab_webhook_attempts",
            "Webhook delivery attempts, by event and outcome",
            ["event", "outcome"],
            registry=registry,
        )
        self._pending = Gauge(
            "collab_webhook_pending",
            "Webhook events recorded and not yet delivered (all processes)",
            registry=registry,
        )
        self._latency = Histogram(
            "collab_webhook_delivery_seconds",
            "From an event being due (after the debounce) to its receiver's 2xx",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800),
            registry=registry,
        )
        self._duration = Histogram(
            "collab_webhook_attempt_seconds",
            "Duration of one webhook POST, whatever its outcome",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=registry,
        )
        outbox.listen(self._announced)

    @classmethod
    def of(
        cls, settings: Settings, store: SqlStore, registry: CollectorRegistry | None = None
    ) -> Webhooks | None:
        """The deliverer of ``store``'s outbox; None without webhooks."""
        if store.outbox is None:
            return None
        return cls(
            store.outbox,
            store,
            url=settings.webhook_url,
            secret=settings.webhook_secret,
            timeout=settings.webhook_timeout,
            registry=registry,
        )

    def start(self) -> None:
        self._expect(Phase.NEW)
        self._phase = Phase.RUNNING
        # Only the operator's URL, as given: no redirects followed, no proxy or
        # credentials taken from the environment.
        self._client = httpx.AsyncClient(
            timeout=self._timeout,
            follow_redirects=False,
            trust_env=False,
            limits=httpx.Limits(max_connections=BATCH),
            headers={"User-Agent": USER_AGENT},
        )
        self._task = asyncio.create_task(self._run(), name="webhooks")

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Webhooks]:
        self.start()
        try:
            yield self
        finally:
            await self.close()

    async def close(self) -> None:
        if self._phase is Phase.CLOSED:
            return
        started = self._phase is Phase.RUNNING
        self._phase = Phase.CLOSED
        if not started:
            return
        assert self._task is not None
        assert self._client is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        if self._holding:
            # Attempts cut short: their events are due again at once, not after the lease.
            try:
                await self._outbox.release(sorted(self._holding))
            except Exception as exc:
                log.warning(
                    "webhooks: %d events stay held until their lease ends (%s)",
                    len(self._holding),
                    exc,
                )
        await self._client.aclose()

    def _expect(self, phase: Phase) -> None:
        if self._phase is not phase:
            raise RuntimeError(f"webhooks are {self._phase.value}, expected {phase.value}")

    def _announced(self, due: dt.datetime) -> None:
        at = time.monotonic() + max(0.0, (due - utcnow()).total_seconds())
        if at < self._wake_at:
            self._wake_at = at
            self._wakeup.set()

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                await self._cycle()
                failures = 0
            except Exception as exc:
                failures += 1
                delay = min(POLL * 2**failures, 30.0)
                log.warning("webhooks: the outbox did not answer (%s); again in %.0fs", exc, delay)
                await self._sleep(delay)

    async def _cycle(self) -> None:
        now = utcnow()
        claimed = await self._outbox.claim(now, BATCH, self._timeout + LEASE_MARGIN)
        if claimed:
            self._holding.update(event.seq for event in claimed)
            await asyncio.gather(*(self._attempt(event) for event in claimed))
            return
        if time.monotonic() - self._counted_at >= POLL:
            self._pending.set(await self._outbox.backlog())
            self._counted_at = time.monotonic()
        wait = POLL
        due = await self._outbox.next_due()
        # An event already due then was not claimable (an older one of its document is
        # still out, or another process holds it): look again after POLL.
        if due is not None and due > now:
            wait = min(wait, (due - utcnow()).total_seconds())
        await self._sleep(wait)

    async def _sleep(self, seconds: float) -> None:
        """Until ``seconds`` pass, or until an event recorded here is due sooner."""
        self._wake_at = time.monotonic() + seconds
        while (left := self._wake_at - time.monotonic()) > 0:
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), left)
        self._wake_at = 0.0

    async def _attempt(self, event: Claimed) -> None:
        body = event.body
        try:
            if body is None:
                body = await self._body(event)
            started = time.monotonic()
            outcome, detail = await self._post(event, body)
            self._duration.observe(time.monotonic() - started)
        except Exception as exc:
            outcome, detail = Outcome.FAILED, f"no body: {exc}"
        self._attempts.labels(event.event.value, outcome.value).inc()
        try:
            if outcome is Outcome.DELIVERED:
                await self._outbox.delivered(event.seq)
                latency = (utcnow() - event.due_at).total_seconds()
                self._latency.observe(max(0.0, latency))
                log.info(
                    "webhook %s %s of %s delivered (attempt %d, %.0f ms after due)",
                    event.id,
                    event.event.value,
                    event.doc_id,
                    event.attempt,
                    latency * 1000,
                    extra={"doc": event.doc_id, "event": event.event.value},
                )
            else:
                delay = retry_delay(event.attempt)
                await self._outbox.failed(
                    event.seq,
                    retry_at=utcnow() + dt.timedelta(seconds=delay),
                    body=body,
                    error=detail,
                )
                log.warning(
                    "webhook %s %s of %s: attempt %d %s (%s); next in %.1fs",
                    event.id,
                    event.event.value,
                    event.doc_id,
                    event.attempt,
                    outcome.value,
                    detail,
                    delay,
                    extra={"doc": event.doc_id, "event": event.event.value},
                )
        except Exception as exc:
            # Its lease ends and it is attempted again: at least once.
            log.warning("webhook %s: its outcome was not recorded (%s)", event.id, exc)
        finally:
            self._holding.discard(event.seq)

    async def _post(self, event: Claimed, body: bytes) -> tuple[Outcome, str]:
        assert self._client is not None
        headers = {
            "Content-Type": "application/json",
            "X-Collab-Event": event.event.value,
            "X-Collab-Delivery": event.id,
            "X-Collab-Signature": sign(self._secret, body),
        }
        try:
            # httpx's timeout bounds each read; this bounds the whole exchange.
            async with asyncio.timeout(self._timeout):
                request = self._client.build_request(
                    "POST", self._url, content=body, headers=headers
                )
                response = await self._client.send(request, stream=True)
                try:
                    read = 0
                    async for chunk in response.aiter_raw():
                        read += len(chunk)
                        if read >= RESPONSE_BYTES:
                            break
                finally:
                    await response.aclose()
        except (TimeoutError, httpx.TimeoutException):
            return Outcome.TIMEOUT, f"no answer within {self._timeout:g}s"
        except httpx.HTTPError as exc:
            return Outcome.UNREACHABLE, f"{type(exc).__name__}: {exc}"[:200]
        if 200 <= response.status_code < 300:
            return Outcome.DELIVERED, str(response.status_code)
        return Outcome.REJECTED, f"HTTP {response.status_code}"

    async def _body(self, event: Claimed) -> bytes:
        """The event as its receiver sees it, with the document as stored now (for
        version.created, the version's)."""
        state = await self._state(event)
        text, tree = (None, None) if state is None else await asyncio.to_thread(_render, state)
        body: dict[str, Any] = {
            "id": event.id,
            "event": event.event.value,
            "document": event.doc_id,
            "at": event.at.isoformat().replace("+00:00", "Z"),
            "text": text,
            "content": tree,
        }
        if event.event is Event.VERSION_CREATED:
            body["version"] = await self._version(event)
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()

    async def _state(self, event: Claimed) -> StoredState | None:
        """The document as stored; None if it is deleted (or the version gone)."""
        try:
            if event.event is Event.VERSION_CREATED:
                assert event.version_id is not None
                version = await self._store.version_state(event.doc_id, event.version_id)
                return StoredState(version, [])
            if event.event is Event.DELETED:
                return None
            return await self._store.load(event.doc_id)
        except (DocumentDeleted, VersionNotFound):
            return None

    async def _version(self, event: Claimed) -> dict[str, Any] | None:
        for version in await self._store.list_versions(event.doc_id):
            if version.id == event.version_id:
                return {
                    "id": version.id,
                    "label": version.label,
                    "kind": version.kind,
                    "created_by": version.created_by,
                    "created_at": version.created_at.isoformat().replace("+00:00", "Z"),
                }
        return None


def _render(state: StoredState) -> tuple[str, Any]:
    """The text and the ProseMirror JSON of a stored document (in a thread: building a
    large one takes tens of milliseconds)."""
    doc = build_doc(state.snapshot, state.updates)
    return content.to_text(doc), content.to_json(doc)
