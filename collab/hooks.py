"""What an embedding application can plug in: the hooks, the events they are told
of, and the runner that keeps a slow or failing hook away from rooms, peers and
writes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from .auth import Grant

if TYPE_CHECKING:
    from starlette.requests import HTTPConnection

log = logging.getLogger("collab.hooks")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class DocumentLoaded:
    """A document was opened in this process (its room loaded from the store)."""

    doc_id: str


@dataclass(frozen=True, slots=True)
class DocumentChanged:
    """A document changed: debounced, one event for the changes of a quiet spell.

    ``origins`` names who made them: users (the ``sub`` of their grant) for edits
    from sockets, or the non-peer sources ("api", "restore", a server-side edit's
    ``origin``).
    """

    doc_id: str
    updates: int
    origins: frozenset[str]


@dataclass(frozen=True, slots=True)
class DocumentStored:
    """Changes of a document reached the database."""

    doc_id: str
    updates: int


@dataclass(frozen=True, slots=True)
class DocumentDeleted:
    doc_id: str


@dataclass(frozen=True, slots=True)
class PeerConnected:
    doc_id: str
    peer: str
    user: str
    read_only: bool
    client: str


@dataclass(frozen=True, slots=True)
class PeerDisconnected:
    doc_id: str
    peer: str
    user: str
    code: int | None
    reason: str
    duration_ms: float


Authenticate = Callable[["HTTPConnection", "str | None"], Awaitable[Grant | None]]
Hook = Callable[[Any], Awaitable[object]]


@dataclass(frozen=True)
class Hooks:
    """The host application's hooks; each optional and async.

    ``authenticate(conn, doc_id)`` decides who may open a document, and how: a
    ``Grant``, or None to refuse with 401. ``doc_id`` is None for calls that name no
    document (the list). When a token is configured too, a request carrying a token
    is checked as a JWT and the hook decides the others.

    The others are told of events (the dataclasses above). ``on_change`` is debounced
    per document: it is called ``change_debounce`` seconds after the last change of a
    document, and at most ``change_max_wait`` seconds after the first. Every hook is
    bounded by ``COLLAB_HOOK_TIMEOUT``; one that raises or hangs is logged and
    abandoned, and never holds up a room, a peer or a write.
    """

    authenticate: Authenticate | None = None
    on_load: Callable[[DocumentLoaded], Awaitable[object]] | None = None
    on_change: Callable[[DocumentChanged], Awaitable[object]] | None = None
    on_store: Callable[[DocumentStored], Awaitable[object]] | None = None
    on_delete: Callable[[DocumentDeleted], Awaitable[object]] | None = None
    on_connect: Callable[[PeerConnected], Awaitable[object]] | None = None
    on_disconnect: Callable[[PeerDisconnected], Awaitable[object]] | None = None
    change_debounce: float = 1.0
    change_max_wait: float = 10.0

    def __post_init__(self) -> None:
        for name in (
            "authenticate",
            "on_load",
            "on_change",
            "on_store",
            "on_delete",
            "on_connect",
            "on_disconnect",
        ):
            hook = getattr(self, name)
            if hook is not None and not callable(hook):
                raise TypeError(f"Hooks.{name} must be an async callable")
        if not 0 <= self.change_debounce <= self.change_max_wait:
            raise ValueError("Hooks needs 0 <= change_debounce <= change_max_wait")


class HookFailed(Exception):
    """A hook raised or ran past its time; the message says which."""


class HookRunner:
    """Runs hooks as tasks of their own, each bounded in time, at most ``max_running``
    at once (past that, notifications are dropped with a warning: a host whose hooks
    hang must not make collab hold thousands of tasks)."""

    def __init__(self, hooks: Hooks, *, timeout: float, max_running: int = 1000) -> None:
        self.hooks = hooks
        self.timeout = timeout
        self.max_running = max_running
        self.dropped = 0
        self.failures = 0
        self._running: set[asyncio.Task[None]] = set()

    def notify(self, name: str, event: object) -> None:
        """Call hook ``name`` with ``event`` in the background, if it is set."""
        hook: Hook | None = getattr(self.hooks, name)
        if hook is None:
            return
        if len(self._running) >= self.max_running:
            self.dropped += 1
            log.warning("hook %s dropped: %d hooks still running", name, len(self._running))
            return
        task = asyncio.get_running_loop().create_task(self._notify(name, hook, event))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _notify(self, name: str, hook: Hook, event: object) -> None:
        with contextlib.suppress(HookFailed):
            await self.call(name, hook(event))

    async def call(self, name: str, call: Coroutine[Any, Any, T] | Awaitable[T]) -> T:
        """Await a hook's call within the timeout; HookFailed, logged, if it raises or
        runs past it."""
        try:
            return await asyncio.wait_for(call, self.timeout)
        except TimeoutError:
            self.failures += 1
            log.error("hook %s ran past %.1f s and was abandoned", name, self.timeout)
            raise HookFailed(f"hook {name} timed out") from None
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.failures += 1
            log.exception("hook %s raised %s", name, type(exc).__name__)
            raise HookFailed(f"hook {name} raised {type(exc).__name__}") from None

    async def close(self, deadline: float) -> None:
        """Let running hooks finish until ``deadline`` (loop time), then cancel them."""
        running = list(self._running)
        if not running:
            return
        loop = asyncio.get_running_loop()
        _, late = await asyncio.wait(running, timeout=max(0.0, deadline - loop.time()))
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late)


class ChangeDebouncer:
    """Per document: one ``on_change`` a quiet spell, ``debounce`` seconds after its
    last change and at most ``max_wait`` after its first; never two at once for one
    document. Cheap per update: a dict lookup and a clock read."""

    def __init__(
        self,
        fire: Callable[[DocumentChanged], Coroutine[Any, Any, None]],
        debounce: float,
        max_wait: float,
    ) -> None:
        self._fire = fire
        self.debounce = debounce
        self.max_wait = max_wait
        self._spells: dict[str, _Spell] = {}

    def changed(self, doc_id: str, origin: str) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        spell = self._spells.get(doc_id)
        if spell is None:
            spell = self._spells[doc_id] = _Spell(now)
        spell.last = now
        spell.updates += 1
        spell.origins.add(origin)
        if spell.timer is None and spell.task is None:
            spell.timer = loop.call_at(now + self.debounce, self._due, doc_id)

    def _due(self, doc_id: str) -> None:
        spell = self._spells[doc_id]
        spell.timer = None
        loop = asyncio.get_running_loop()
        due = min(spell.last + self.debounce, spell.first + self.max_wait)
        if loop.time() < due:
            spell.timer = loop.call_at(due, self._due, doc_id)
            return
        del self._spells[doc_id]
        event = DocumentChanged(doc_id, spell.updates, frozenset(spell.origins))
        task = loop.create_task(self._fire(event))
        # Changes during the call wait for it: a document's calls never overlap.
        self._spells[doc_id] = waiting = _Spell(loop.time())
        waiting.task = task
        waiting.updates = 0
        task.add_done_callback(lambda _: self._finished(doc_id))

    def _finished(self, doc_id: str) -> None:
        spell = self._spells.get(doc_id)
        if spell is None:
            return
        spell.task = None
        if spell.updates == 0:
            del self._spells[doc_id]
            return
        loop = asyncio.get_running_loop()
        spell.timer = loop.call_at(
            min(spell.last + self.debounce, spell.first + self.max_wait), self._due, doc_id
        )

    async def flush(self) -> None:
        """Shutdown: call now for every document with changes not yet reported."""
        pending = []
        for doc_id, spell in list(self._spells.items()):
            if spell.timer is not None:
                spell.timer.cancel()
            if spell.task is not None:
                pending.append(spell.task)
            if spell.updates:
                event = DocumentChanged(doc_id, spell.updates, frozenset(spell.origins))
                pending.append(asyncio.ensure_future(self._fire(event)))
        self._spells.clear()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)


class _Spell:
    __slots__ = ("first", "last", "origins", "task", "timer", "updates")

    def __init__(self, now: float) -> None:
        self.first = now
        self.last = now
        self.updates = 0
        self.origins: set[str] = set()
        self.timer: asyncio.TimerHandle | None = None
        self.task: asyncio.Task[None] | None = None
