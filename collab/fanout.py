"""Fan-out between collab processes that serve the same documents.

Each process that has a room open subscribes to that document's channel on a shared
message bus (the transport: Redis pub/sub in production). What a process accepts from
its own peers (updates and awareness) it publishes once, stamped with its process id;
what it receives from others it applies to its room with the origin ``BUS``, so it is
sent to local peers and never published back or logged again.

Three exchanges of state vectors keep processes converged without any bus history:

- joining: a process opening a room loads it from the database, then asks the others
  for what it lacks and waits (bounded) for their replies before its first peer syncs;
- resynchronising: after the transport reconnects, every open room asks again, and
  whoever answers also asks back, so edits made on either side of the outage cross;
- a process that falls silent (no heartbeat for ``process_timeout``) is gone: its
  peers' presence is dropped, and rooms it changed are checked against the database,
  since it may have died holding accepted edits it had not written.

A room that no other process has open publishes nothing: behind a load balancer that
sends each document to one process, the bus costs nothing per edit. Whoever opens the
room later asks for its state first, and the answer holds every unpublished edit.
Alone is known from the number of subscribers a publish reached (our own join query,
or a probe when another process leaves), counted only if nothing arrived from another
process in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

from pycrdt import Doc, write_var_uint

from . import yupdate
from .protocol import EMPTY_UPDATE, ProtocolError, Reader
from .room import DEFAULT_MAX_DEPTH, Origin, Prepared, Room
from .state import StoredDoc
from .store import DocumentDeleted
from .workers import Workers

log = logging.getLogger("collab.fanout")

# The origin of updates received from the bus: never published back, never logged.
BUS = "bus"
VERSION = 1


def relay(process_id: str) -> str:
    """The owner (and origin) of presence relayed from another process."""
    return f"{BUS}/{process_id}"


def is_relayed(origin: Origin) -> bool:
    return isinstance(origin, str) and (origin == BUS or origin.startswith(BUS + "/"))


class Kind(bytes, enum.Enum):
    UPDATE = b"U"  # a: a Yjs update accepted by the sender
    AWARENESS = b"A"  # a: an awareness update from the sender's peers
    QUERY = b"Q"  # a: the sender's state vector; b: b"\x01" to be asked back
    REPLY = b"R"  # a: the update the target lacks; b: the sender's peers' awareness
    DELETED = b"X"  # the document was deleted
    LEFT = b"L"  # the sender closed its room
    PROBE = b"P"  # nothing: published to count the room's subscribers
    HEARTBEAT = b"H"  # on the process channel: the sender is alive
    BYE = b"B"  # on the process channel: the sender is shutting down


@dataclass(frozen=True, slots=True)
class Message:
    kind: Kind
    sender: str
    target: str = ""
    a: bytes = b""
    b: bytes = b""

    def encode(self) -> bytes:
        return b"".join(
            (
                bytes((VERSION,)),
                self.kind.value,
                _var_bytes(self.sender.encode()),
                _var_bytes(self.target.encode()),
                _var_bytes(self.a),
                _var_bytes(self.b),
            )
        )

    @classmethod
    def decode(cls, data: bytes) -> Message:
        if len(data) < 2 or data[0] != VERSION:
            raise ProtocolError("not a collab bus message of this version")
        try:
            kind = Kind(data[1:2])
        except ValueError:
            raise ProtocolError(f"unknown bus message kind {data[1:2]!r}") from None
        reader = Reader(data[2:])
        try:
            sender = reader.var_bytes().decode()
            target = reader.var_bytes().decode()
        except UnicodeDecodeError:
            raise ProtocolError("bus message ids are not UTF-8") from None
        message = cls(kind, sender, target, reader.var_bytes(), reader.var_bytes())
        if not reader.done():
            raise ProtocolError("trailing bytes after a bus message")
        return message


def _var_bytes(data: bytes) -> bytes:
    return write_var_uint(len(data)) + data


class Transport(Protocol):
    """A publish/subscribe bus. It calls ``Fanout.received`` for every message on a
    subscribed channel, ``Fanout.connected`` once (re)connected with every channel
    subscribed, and ``Fanout.disconnected`` when the connection is lost."""

    @property
    def is_connected(self) -> bool: ...

    def start(self, fanout: Fanout) -> None: ...

    async def subscribe(self, channel: str) -> None:
        """Return once messages on ``channel`` are delivered (at once while down)."""
        ...

    async def unsubscribe(self, channel: str) -> None: ...

    async def publish(self, channel: str, data: bytes) -> int:
        """Publish now; the number of subscribers that got it (0 while down)."""
        ...

    def publish_soon(self, channel: str, data: bytes) -> None:
        """Queue a message, keeping order; dropped while down (a resync follows)."""
        ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


@dataclass(eq=False)
class _Link:
    """A document this process subscribes to: its Doc once loaded, its room once open."""

    doc_id: str
    doc: Doc[Any] | None = None
    room: Room | None = None
    backlog: list[Message] = field(default_factory=list)
    early_presence: list[tuple[bytes, str]] = field(default_factory=list)
    replies: int = 0
    replied: asyncio.Event = field(default_factory=asyncio.Event)
    updated_by: dict[str, float] = field(default_factory=dict)  # process -> last update
    shared: bool = True  # another process may have the room open: publish
    heard: int = 0  # messages from other processes, to tell a stale subscriber count
    # While a large update's checks run in a worker thread: the messages that arrived
    # for the document since, to be handled after it, in order.
    held: list[Message] | None = None


@dataclass
class FanoutStats:
    published: int = 0
    received: int = 0
    resyncs: int = 0
    processes_gone: int = 0


Loader = Callable[[str], Awaitable[Doc[Any] | StoredDoc]]
# Told the rooms a vanished process had changed, to check against the database.
GoneHandler = Callable[[list[Room]], Coroutine[Any, Any, None]]
# Which of these open documents were deleted (asked after a reconnection).
DeletedFinder = Callable[[list[str]], Awaitable[set[str]]]


class Fanout:
    def __init__(
        self,
        transport: Transport,
        *,
        prefix: str = "collab",
        heartbeat_interval: float = 2.0,
        process_timeout: float = 10.0,
        join_timeout: float = 1.0,
        on_deleted: Callable[[str], None] = lambda doc_id: None,
        on_process_gone: GoneHandler | None = None,
        find_deleted: DeletedFinder | None = None,
        clock: Callable[[], float] = time.monotonic,
        workers: Workers | None = None,
    ) -> None:
        self.transport = transport
        # Where a large update's pure-Python checks run (None: on the event loop).
        self._workers = workers
        self.id = uuid.uuid4().hex[:12]
        self._own_tag = _var_bytes(self.id.encode())  # how our messages start, after the kind
        self.prefix = prefix
        self.heartbeat_interval = heartbeat_interval
        self.process_timeout = process_timeout
        self.join_timeout = join_timeout
        self.stats = FanoutStats()
        self._on_deleted = on_deleted
        self._on_process_gone = on_process_gone
        self._find_deleted = find_deleted
        self._clock = clock
        self._links: dict[str, _Link] = {}
        self._seen: dict[str, float] = {}  # process id -> when last heard from
        self._departed: set[str] = set()  # processes declared gone for their silence
        self._doc_prefix = f"{prefix}:doc:"
        self.process_channel = f"{prefix}:processes"
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def is_connected(self) -> bool:
        return self.transport.is_connected

    @property
    def processes(self) -> int:
        """Other processes heard from within the timeout."""
        return len(self._seen)

    def channel(self, doc_id: str) -> str:
        return self._doc_prefix + doc_id

    def start(self) -> None:
        self.transport.start(self)
        self._tasks.append(asyncio.get_running_loop().create_task(self._heartbeat_loop()))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        with contextlib.suppress(Exception):
            if self.transport.is_connected:
                await self.transport.publish(self.process_channel, self._encode(Kind.BYE))
        await self.transport.close()

    # Rooms

    async def load(self, doc_id: str, loader: Loader) -> Doc[Any]:
        """Load a document: subscribe, read the database, then ask the processes that
        have it open for what the database lacks, waiting up to ``join_timeout``."""
        link = self._links[doc_id] = _Link(doc_id)
        channel = self.channel(doc_id)
        try:
            await self.transport.subscribe(channel)
            stored = await loader(doc_id)
            # Other processes' edits are applied to it from now on: build it.
            doc = stored if isinstance(stored, Doc) else stored.build()
        except BaseException:
            if self._links.get(doc_id) is link:
                del self._links[doc_id]
                await self._unsubscribe(doc_id)
            raise
        link.doc = doc
        for message in link.backlog:
            self._dispatch(link, message)
        link.backlog.clear()
        if self._links.get(doc_id) is not link:
            raise DocumentDeleted(doc_id)
        if not self.transport.is_connected:
            return doc
        heard = link.heard
        others = await self.transport.publish(channel, self._query(doc, reciprocate=False)) - 1
        if others == 0 and link.heard == heard:
            link.shared = False
        if others > 0:
            started = self._clock()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.join_timeout):
                    while link.replies < others:
                        link.replied.clear()
                        await link.replied.wait()
            log.debug(
                "room %r: %d of %d processes answered in %.1f ms",
                doc_id,
                link.replies,
                others,
                (self._clock() - started) * 1000,
                extra={"doc": doc_id},
            )
        return doc

    def attach(self, room: Room) -> None:
        link = self._links.get(room.doc_id)
        if link is None:  # detached while loading: deleted
            return
        link.room = room
        room.update_listeners.append(self._on_update)
        room.awareness_listeners.append(self._on_awareness)
        for update, owner in link.early_presence:
            room.apply_awareness(update, owner)
        link.early_presence.clear()

    async def detach(self, doc_id: str) -> None:
        link = self._links.pop(doc_id, None)
        if link is not None:
            if link.shared:
                self.transport.publish_soon(self.channel(doc_id), self._encode(Kind.LEFT))
            await self._unsubscribe(doc_id)

    async def _unsubscribe(self, doc_id: str) -> None:
        # The room may have been opened again meanwhile, subscribing anew.
        if doc_id not in self._links:
            await self.transport.unsubscribe(self.channel(doc_id))

    def changed_by_silent(self) -> list[Room]:
        """Open rooms changed by processes that have missed a heartbeat: they may have
        died holding edits they had not written."""
        heard = self._clock() - 2 * self.heartbeat_interval
        return [
            link.room
            for link in self._links.values()
            if link.room is not None
            and any(self._seen.get(p, heard) <= heard for p in link.updated_by)
        ]

    def deleted(self, doc_id: str) -> None:
        """A document was deleted here: tell the other processes, and stop listening."""
        self.transport.publish_soon(self.channel(doc_id), self._encode(Kind.DELETED))
        if self._links.pop(doc_id, None) is not None:
            self._spawn(self._unsubscribe(doc_id))

    def _on_update(self, room: Room, update: bytes, origin: Origin) -> None:
        if not is_relayed(origin) and self._is_shared(room.doc_id):
            self._publish(room.doc_id, Kind.UPDATE, update)

    def _on_awareness(self, room: Room, update: bytes, origin: Origin) -> None:
        if not is_relayed(origin) and self._is_shared(room.doc_id):
            self._publish(room.doc_id, Kind.AWARENESS, update)

    def _is_shared(self, doc_id: str) -> bool:
        link = self._links.get(doc_id)
        return link is not None and link.shared

    async def _probe(self, link: _Link) -> None:
        """Find out whether another process still has the room open."""
        heard = link.heard
        reached = await self.transport.publish(self.channel(link.doc_id), self._encode(Kind.PROBE))
        if reached == 1 and link.heard == heard and self._links.get(link.doc_id) is link:
            link.shared = False

    def _publish(self, doc_id: str, kind: Kind, a: bytes = b"", target: str = "") -> None:
        self.stats.published += 1
        self.transport.publish_soon(self.channel(doc_id), self._encode(kind, a, target=target))

    def _encode(self, kind: Kind, a: bytes = b"", b: bytes = b"", target: str = "") -> bytes:
        return Message(kind, self.id, target, a, b).encode()

    def _query(self, doc: Doc[Any], *, reciprocate: bool, target: str = "") -> bytes:
        return self._encode(
            Kind.QUERY, doc.get_state(), b"\x01" if reciprocate else b"", target=target
        )

    # Transport events

    def connected(self) -> None:
        """(Re)connected: every open room exchanges state with the other processes."""
        now = self._clock()
        self._seen = dict.fromkeys(self._seen, now)
        rooms = [link for link in self._links.values() if link.doc is not None]
        if rooms:
            self.stats.resyncs += 1
            log.info("bus connected: resynchronising %d open rooms", len(rooms))
        else:
            log.info("bus connected")
        for link in rooms:
            assert link.doc is not None
            link.shared = True
            self.transport.publish_soon(
                self.channel(link.doc_id), self._query(link.doc, reciprocate=True)
            )
            self._spawn(self._probe(link))
        self.transport.publish_soon(self.process_channel, self._encode(Kind.HEARTBEAT))
        # A delete made elsewhere while this process was cut off was never heard of.
        self._spawn(self._drop_deleted([link.doc_id for link in rooms]))

    def _resync_with(self, process: str) -> None:
        """A process declared gone is heard from again (it had stalled): every room
        exchanges state and presence with it."""
        rooms = [link for link in self._links.values() if link.doc is not None]
        log.info("process %s is back: resynchronising %d open rooms with it", process, len(rooms))
        for link in rooms:
            assert link.doc is not None
            self.transport.publish_soon(
                self.channel(link.doc_id), self._query(link.doc, reciprocate=True, target=process)
            )

    async def _drop_deleted(self, doc_ids: list[str]) -> None:
        if self._find_deleted is None or not doc_ids:
            return
        try:
            deleted = await self._find_deleted(doc_ids)
        except Exception as exc:
            log.warning("could not check open rooms for deletions: %s", exc)
            return
        for doc_id in deleted:
            if doc_id in self._links:
                log.info(
                    "document %r was deleted while the bus was down", doc_id, extra={"doc": doc_id}
                )
                self._drop(doc_id)

    def _drop(self, doc_id: str) -> None:
        self._links.pop(doc_id, None)
        self._on_deleted(doc_id)
        self._spawn(self._unsubscribe(doc_id))

    def disconnected(self, reason: str) -> None:
        log.warning("bus connection lost (%s): serving local peers, reconnecting", reason)

    def received(self, channel: str, data: bytes) -> None:
        if data[2 : 2 + len(self._own_tag)] == self._own_tag:
            return  # our own message, back from the bus: skipped before decoding
        try:
            message = Message.decode(data)
        except ProtocolError as exc:
            log.warning("ignoring a malformed bus message on %r: %s", channel, exc)
            return
        if message.sender == self.id or message.target not in ("", self.id):
            return
        self.stats.received += 1
        if message.sender not in self._seen and message.sender in self._departed:
            self._departed.discard(message.sender)
            self._resync_with(message.sender)
        self._seen[message.sender] = self._clock()
        if channel == self.process_channel:
            if message.kind is Kind.BYE:
                self._gone(message.sender, "shut down")
            return
        if not channel.startswith(self._doc_prefix):
            return
        link = self._links.get(channel[len(self._doc_prefix) :])
        if link is None:
            return
        link.heard += 1
        link.shared = True
        if link.doc is None:
            link.backlog.append(message)
        else:
            self._dispatch(link, message)

    def _dispatch(self, link: _Link, message: Message) -> None:
        if link.held is not None:
            link.held.append(message)
        elif self._large(link, message):
            link.held = []
            self._spawn(self._dispatch_large(link, message))
        else:
            self._dispatch_now(link, message)

    def _large(self, link: _Link, message: Message) -> bool:
        """Whether the message carries an update for the room that is checked in a
        worker thread, as a client's would be: checked on the loop, a worst-case one
        held every room of this process for seconds."""
        workers = self._workers
        return (
            workers is not None
            and link.room is not None
            and message.kind in (Kind.UPDATE, Kind.REPLY)
            and workers.large(len(message.a))
        )

    async def _dispatch_large(self, link: _Link, message: Message) -> None:
        """Handle ``message`` once its update is checked in a worker thread, then what
        arrived for the document meanwhile, in order (the next large one the same way)."""
        held = link.held
        workers = self._workers
        assert held is not None
        assert workers is not None
        following: Message | None = message
        try:
            while following is not None:
                message, following = following, None
                room = link.room
                try:
                    prepared = None if room is None else await room.prepare(message.a, workers)
                except ProtocolError as exc:
                    self._ignored(link, message, exc)
                except Exception:
                    # The workers shut down, or a bug: checked on the loop instead, so
                    # that neither it nor what waits behind it is lost.
                    log.exception(
                        "checking a large update for %r in a worker thread failed",
                        link.doc_id,
                        extra={"doc": link.doc_id},
                    )
                    self._dispatch_now(link, message)
                else:
                    # Checked for a room closed (or replaced) meanwhile: checked again.
                    self._dispatch_now(link, message, prepared if link.room is room else None)
                while held and following is None:
                    next_one = held.pop(0)
                    if self._large(link, next_one):
                        following = next_one
                    else:
                        self._dispatch_now(link, next_one)
        finally:
            link.held = None

    def _dispatch_now(
        self, link: _Link, message: Message, prepared: Prepared | None = None
    ) -> None:
        try:
            self._handle(link, message, prepared)
        except ProtocolError as exc:
            self._ignored(link, message, exc)

    def _ignored(self, link: _Link, message: Message, exc: ProtocolError) -> None:
        log.warning(
            "ignoring a %s message for %r from process %s: %s",
            message.kind.name,
            link.doc_id,
            message.sender,
            exc,
            extra={"doc": link.doc_id},
        )

    def _handle(self, link: _Link, message: Message, prepared: Prepared | None) -> None:
        kind = message.kind
        if kind is Kind.UPDATE:
            link.updated_by[message.sender] = self._clock()
            self._apply(link, message.a, prepared)
        elif kind is Kind.AWARENESS:
            self._apply_presence(link, message.a, relay(message.sender))
        elif kind is Kind.QUERY:
            self._answer(link, message)
        elif kind is Kind.REPLY:
            if message.a != EMPTY_UPDATE:
                link.updated_by[message.sender] = self._clock()
            self._apply(link, message.a, prepared)
            self._replace_presence(link, message.b, relay(message.sender))
            link.replies += 1
            link.replied.set()
        elif kind is Kind.LEFT:
            self._spawn(self._probe(link))
        elif kind is Kind.DELETED:
            log.info(
                "document %r was deleted by process %s",
                link.doc_id,
                message.sender,
                extra={"doc": link.doc_id},
            )
            self._drop(link.doc_id)

    def _apply(self, link: _Link, update: bytes, prepared: Prepared | None = None) -> None:
        if link.room is not None:
            link.room.apply_update(update, BUS, strict=False, prepared=prepared)
            return
        assert link.doc is not None
        # Checked as a client's would be (MalformedUpdate is a ProtocolError): the room
        # that takes this document over will hold what yrs made of it.
        yupdate.check(update, DEFAULT_MAX_DEPTH)
        try:
            link.doc.apply_update(update)
        except ValueError as exc:
            raise ProtocolError(f"malformed update: {exc}") from None

    def _apply_presence(self, link: _Link, update: bytes, owner: str) -> None:
        if link.room is not None:
            link.room.apply_awareness(update, owner)
        else:
            link.early_presence.append((update, owner))

    def _replace_presence(self, link: _Link, update: bytes, owner: str) -> None:
        # A reply lists all the sender's presence: whoever it leaves out has gone.
        room = link.room
        if room is None:
            if update:
                link.early_presence.append((update, owner))
            return
        changed, removal = room.presence.replace_owned(update, owner)
        if changed is not None:
            room.broadcast_awareness(changed, owner)
        if removal is not None:
            room.broadcast_awareness(removal, owner)

    def _answer(self, link: _Link, query: Message) -> None:
        assert link.doc is not None
        yupdate.check_state_vector(query.a)
        try:
            missing = link.doc.get_update(query.a)
        except ValueError as exc:
            raise ProtocolError(f"malformed state vector: {exc}") from None
        presence = b""
        if link.room is not None:
            presence = link.room.presence.encode_owned(link.room.peers) or b""
        self.stats.published += 1
        self.transport.publish_soon(
            self.channel(link.doc_id),
            self._encode(Kind.REPLY, missing, presence, target=query.sender),
        )
        if query.b:
            self.stats.published += 1
            self.transport.publish_soon(
                self.channel(link.doc_id),
                self._query(link.doc, reciprocate=False, target=query.sender),
            )

    # Liveness

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            if not self.transport.is_connected:
                continue
            self.transport.publish_soon(self.process_channel, self._encode(Kind.HEARTBEAT))
            now = self._clock()
            for process, seen in list(self._seen.items()):
                if now - seen > self.process_timeout:
                    self._gone(process, f"silent for {now - seen:.1f} s")

    def _gone(self, process: str, why: str) -> None:
        if self._seen.pop(process, None) is None and why != "shut down":
            return
        self.stats.processes_gone += 1
        owner = relay(process)
        dropped = 0
        changed: list[Room] = []
        for link in self._links.values():
            room = link.room
            if room is None:
                continue
            removal = room.presence.remove_owned_by(owner)
            if removal is not None:
                dropped += 1
                room.broadcast_awareness(removal, owner)
            if link.updated_by.pop(process, None) is not None:
                changed.append(room)
        log.info(
            "process %s is gone (%s): its presence dropped from %d rooms", process, why, dropped
        )
        if why != "shut down":
            self._departed.add(process)
            if changed and self._on_process_gone is not None:
                self._spawn(self._on_process_gone(changed))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.append(task)
        task.add_done_callback(self._tasks.remove)
