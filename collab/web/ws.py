"""The WebSocket adapter: checks a connection before accepting it, then feeds its
frames to the protocol handler and closes it with a named code when they are bad."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol

from starlette.responses import JSONResponse
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from .. import docid
from ..auth import Grant
from ..closecodes import CloseCode
from ..documents import Documents
from ..handler import ProtocolHandler
from ..logs import Repeats
from ..peer import Departure, Peer, PeerState
from ..presence import PresenceRefused
from ..protocol import ProtocolError, UnknownMessage
from ..ratelimit import TokenBucket
from ..room import Room
from ..settings import Settings
from ..stats import Stats
from ..store import DocumentDeleted
from .access import Access
from .errors import ApiError, error_body
from .wsextension import FRAMES

log = logging.getLogger("collab.ws")

# Longest a socket's reader runs before it lets the event loop serve everything else.
READ_TURN = 0.005
# A frame that took longer than this to arrive begins a new turn (one already queued
# is received in microseconds).
IDLE = 0.001

LOAD_FAILURE_INTERVAL = 60.0  # seconds between tracebacks of one document's failed loads


Departed = tuple[Departure, int, str]  # who closed a connection, with what code and reason


class FramesSocket(Protocol):
    """The ``socket`` of collab's protocol extension (collab/web/wsprotocol.py)."""

    def closing(self) -> bool: ...

    def departure(self) -> Departed | None: ...

    def write_parts(self, head: bytes, body: bytes) -> bool: ...


class AsgiTransport:
    __slots__ = ("_reader", "_send", "_socket", "aborted", "batches", "write_now")

    def __init__(self, send: Send, reader: asyncio.Task[object], scope: Scope) -> None:
        self._send = send
        self._reader = reader
        frames = scope.get("extensions", {}).get(FRAMES)
        # collab's own protocol, which takes several messages in one send
        self.batches = frames is not None
        # The server's own, called by peers with no layer between: it runs per peer
        # per message.
        self.write_now: Callable[[bytes], bool] = (frames or {}).get("write_now", _never)
        self._socket: FramesSocket | None = (frames or {}).get("socket")
        self.aborted = False

    def write_parts(self, head: bytes, body: bytes) -> bool:
        socket = self._socket
        return socket is not None and socket.write_parts(head, body)

    def closing(self) -> bool:
        """Whether the connection is going, for a reader holding its next receive."""
        socket = self._socket
        return socket is not None and socket.closing()

    def departure(self) -> Departed | None:
        """Who closed the connection, if the server under the app did it first."""
        socket = self._socket
        return None if socket is None else socket.departure()

    async def send(self, frame: bytes) -> None:
        await self._send({"type": "websocket.send", "bytes": frame})

    async def send_many(self, frames: list[bytes]) -> None:
        if self.batches:
            await self._send({"type": "websocket.send", FRAMES: frames})
            return
        for frame in frames:
            await self._send({"type": "websocket.send", "bytes": frame})

    async def close(self, code: int, reason: str) -> None:
        await self._send({"type": "websocket.close", "code": code, "reason": reason})

    def abort(self) -> None:
        self.aborted = True
        self._reader.cancel()


def _never(frame: bytes) -> bool:
    return False


def _departure_of(code: int) -> Departed | None:
    """Who closed a connection, from its code alone (a server that does not say): a
    server's shutdown sends 1012, which a browser may not send."""
    if code == CloseCode.SERVICE_RESTART:
        return Departure.SERVER, code, ""
    return None


# Messages that change the document (sync step 2, update): a writer's wait while
# writes are behind. Sync step 1 (a request for the document) and awareness go on.
_CHANGES = (b"\x00\x01", b"\x00\x02")


class Session:
    """A socket accepted into a room, and what its tear-down needs."""

    __slots__ = ("address", "expiry", "grant", "peer", "room", "transport")

    def __init__(
        self,
        room: Room,
        peer: Peer,
        transport: AsgiTransport,
        grant: Grant,
        expiry: asyncio.TimerHandle | None,
        address: str,
    ) -> None:
        self.room = room
        self.peer = peer
        self.transport = transport
        self.grant = grant
        self.expiry = expiry
        self.address = address

    def leave(self) -> None:
        self.room.leave(self.peer)
        if self.expiry is not None:
            self.expiry.cancel()


class SyncEndpoint:
    """ASGI app for ``/ws/{doc_id}``."""

    def __init__(
        self,
        documents: Documents,
        settings: Settings,
        stats: Stats,
        access: Access,
    ) -> None:
        self.documents = documents
        self.settings = settings
        self.stats = stats
        self.access = access
        self.health = documents.health
        self.load_failures = Repeats(LOAD_FAILURE_INTERVAL)
        # The buckets' capacities, one int for all sockets rather than one each.
        self.message_burst = 2 * settings.messages_per_second
        self.byte_burst = settings.max_message_size + settings.bytes_per_second

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # A socket waits for its next message for hours: set-up and tear-down run in
        # functions that have returned by then, and this frame, the read loop, is the
        # only one of collab's it keeps alive.
        session = await self._open(scope, receive, send)
        if session is None:
            return
        peer = session.peer
        transport = session.transport
        try:
            try:
                workers = self.documents.workers
                handler = ProtocolHandler(peer, session.room, self.stats, workers)
                large = workers.above
                settings = self.settings
                max_size = settings.max_message_size
                stats = self.stats
                health = self.health
                persistence = self.documents.persistence
                doc_id = session.room.doc_id
                # Flow control, not a policy: a peer over its rate is not read again
                # until its budget refills, so TCP slows its sender down; it is never
                # closed for it.
                messages = TokenBucket(settings.messages_per_second, self.message_burst)
                volume = TokenBucket(settings.bytes_per_second, self.byte_burst)
                clock = time.monotonic  # a function; the loop's time is a bound method
                ready = clock()
                turn_ends = ready + READ_TURN
                while peer.state is PeerState.OPEN:
                    message: Message = await receive()
                    received = clock()
                    if received - ready > IDLE:
                        # It waited for this frame: a new turn, not a reader that keeps
                        # the loop to itself (nor one a frozen process kept waiting).
                        turn_ends = received + READ_TURN
                    if message["type"] == "websocket.disconnect":
                        _disconnected(peer, transport, message)
                        break
                    data = message.get("bytes")
                    if data is None:
                        _refuse(peer, "a text frame")
                        peer.close(
                            CloseCode.UNSUPPORTED_DATA, "text frames are not part of the protocol"
                        )
                        continue
                    if len(data) > max_size:
                        _refuse(peer, f"a {len(data)}-byte message")
                        peer.close(CloseCode.MESSAGE_TOO_BIG)
                        continue
                    if health.behind and peer.can_write and data.startswith(_CHANGES):
                        await self._hold(peer, transport)
                        if peer.state is not PeerState.OPEN or transport.closing():
                            continue  # not applied: its client sends it again when it reconnects
                    stats.frames_received += 1
                    stats.bytes_received += len(data)
                    try:
                        if len(data) >= large:
                            await handler.receive_large(data)
                        else:
                            handler.receive(data)
                    except PresenceRefused as exc:
                        _refuse(peer, exc.args[0])
                        peer.close(exc.code, exc.reason)
                    except UnknownMessage as exc:
                        _refuse(peer, f"an unknown message ({exc})")
                        peer.close(CloseCode.UNSUPPORTED_DATA, str(exc))
                    except ProtocolError as exc:
                        _refuse(peer, f"a malformed message ({exc})")
                        peer.close(CloseCode.INVALID_PAYLOAD, "malformed message")
                    wait = messages.charge()
                    wait_bytes = volume.charge(len(data))
                    ready = clock()
                    if wait or wait_bytes:
                        wait = max(wait, wait_bytes)
                        stats.throttled_seconds += wait
                        await asyncio.sleep(wait)
                        ready = clock()
                        turn_ends = ready + READ_TURN
                    elif ready >= turn_ends:
                        # Frames already queued are received without suspending: a fast
                        # sender would keep the loop from everything else (the writes of
                        # what it sends among them) until its queue ran dry. Giving way
                        # for a pass is not always enough for the writes: each of their
                        # steps needs a pass. A late room's write gets as long a turn.
                        if peer.can_write and persistence.late(doc_id):
                            await persistence.give_way(doc_id, READ_TURN)
                        else:
                            await asyncio.sleep(0)
                        ready = clock()
                        turn_ends = ready + READ_TURN
            except asyncio.CancelledError:
                if not transport.aborted:
                    raise
                reader = asyncio.current_task()
                assert reader is not None
                reader.uncancel()
            finally:
                session.leave()
            await peer.wait_closed()
            self._closed(session)
        finally:
            self._release(session)

    async def _open(self, scope: Scope, receive: Receive, send: Send) -> Session | None:
        """Check a connection, open its document, accept it and join it to its room;
        None if it was refused or closed (and so needs no tear-down)."""
        websocket = WebSocket(scope, receive, send)
        doc_id: str = scope["path_params"]["doc_id"]
        address = scope["client"][0] if scope.get("client") else ""
        client = _client(scope)
        if not docid.is_valid(doc_id):
            log.warning(
                "refused %s: invalid document id %r",
                client,
                doc_id[:200],
                extra={"client": client, "doc": doc_id[:200], "status": 400, "error": "bad_doc_id"},
            )
            await _deny(websocket, 400, "bad_doc_id", docid.RULE)
            return None
        # Everything is checked before the socket is accepted: a refused client gets
        # an HTTP error and not one byte of the document.
        try:
            self.access.check_origin(websocket)
            grant = await self.access.grant(websocket, doc_id)
            self.access.open_connection(address)
        except ApiError as refused:
            self.stats.peers_closed[_REFUSAL_REASONS.get(refused.status, "auth")] += 1
            log.warning(
                "refused %s on %r: %s",
                client,
                doc_id,
                refused.detail,
                extra={
                    "client": client,
                    "doc": doc_id,
                    "status": refused.status,
                    "error": refused.error,
                },
            )
            await _deny(websocket, refused.status, refused.error, refused.detail)
            return None
        session: Session | None = None  # once there is one, __call__ tears it down
        try:
            try:
                room = await self.documents.acquire(doc_id)
            except DocumentDeleted:
                log.warning(
                    "refused %s: document %r is deleted",
                    client,
                    doc_id,
                    extra={"client": client, "doc": doc_id, "status": 410, "error": "deleted"},
                )
                await _deny(websocket, 410, "deleted", "this document was deleted")
                return None
            except Exception as exc:
                self._load_failed(doc_id, client, exc)
                await websocket.accept()
                await websocket.close(CloseCode.INTERNAL_ERROR, "could not load the document")
                return None
            try:
                await websocket.accept()
                reader = asyncio.current_task()
                assert reader is not None
                transport = AsgiTransport(send, reader, scope)
                _drop_handshake(scope, transport)
                settings = self.settings
                peer = Peer(
                    transport,
                    client=client,
                    user=grant.sub,
                    can_write=grant.can_write,
                    max_messages=settings.send_queue_messages,
                    max_bytes=settings.send_queue_bytes,
                )
                _log_open(room, peer, grant)
                self.stats.peers_opened += 1
                expiry = _close_at_expiry(peer, grant)
                room.join(peer)
                self.documents.connected(room, peer)
                session = Session(room, peer, transport, grant, expiry, address)
                return session
            finally:
                if session is None:
                    self.documents.release(room)
        finally:
            if session is None:
                self.access.close_connection(address)

    def _load_failed(self, doc_id: str, client: str, exc: Exception) -> None:
        # Called while exc is handled: log.exception logs its traceback. Clients retry
        # a document that fails to load every second or so: its traceback once per
        # interval, one line for each failure in between.
        full, since = self.load_failures.hit(doc_id)
        if full:
            log.exception(
                "could not open room %r for %s%s",
                doc_id,
                client,
                f" ({since} more failures since the last traceback)" if since else "",
                extra={"client": client, "doc": doc_id, "failures": since},
            )
        else:
            log.warning(
                "could not open room %r for %s: %s (failure %d since the traceback)",
                doc_id,
                client,
                f"{type(exc).__name__}: {exc}".splitlines()[0][:200],
                since,
                extra={"client": client, "doc": doc_id, "failures": since},
            )

    def _closed(self, session: Session) -> None:
        peer = session.peer
        room = session.room
        self.stats.peer_closed(peer)
        self.documents.disconnected(room, peer)
        departure = peer.departure.value if peer.departure is not None else "client"
        duration = time.monotonic() - peer.opened_at
        log.info(
            "close doc=%s peer=%s client=%s duration=%.1fs code=%s reason=%r by=%s",
            room.doc_id,
            peer.id,
            peer.client,
            duration,
            peer.close_code,
            peer.close_reason,
            departure,
            extra={
                "doc": room.doc_id,
                "peer": peer.id,
                "client": peer.client,
                "user": session.grant.sub,
                "duration_ms": round(duration * 1000),
                "code": peer.close_code,
                "reason": peer.close_reason,
                "by": departure,
            },
        )

    def _release(self, session: Session) -> None:
        try:
            self.documents.release(session.room)
        finally:
            self.access.close_connection(session.address)

    async def _hold(self, peer: Peer, transport: AsgiTransport) -> None:
        """Wait, with the peer's socket unread, until writes catch up (or it goes)."""
        health = self.health
        log.debug("peer %s (%s) held until writes catch up", peer.id, peer.client)
        while health.behind and peer.state is PeerState.OPEN and not transport.closing():
            await health.next_sample()


# Metrics labels of refused upgrades, by HTTP status.
_REFUSAL_REASONS = {401: "auth", 403: "auth", 429: "rate_limit"}


def _disconnected(peer: Peer, transport: AsgiTransport, message: Message) -> None:
    code = int(message.get("code", CloseCode.NORMAL))
    closed = transport.departure() if transport.batches else _departure_of(code)
    if closed is None:
        peer.disconnected(code)
    else:
        departure, code, reason = closed
        peer.disconnected(code, reason, departure)
    if code == CloseCode.MESSAGE_TOO_BIG:
        _refuse(peer, "a message over the size limit")


def _log_open(room: Room, peer: Peer, grant: Grant) -> None:
    # Logging may read its caller's frame (collab's own set-up turns that off; an
    # embedding host's may not), and a frame read from a coroutine that then waits
    # for hours is kept as an object (360 bytes): the read loop logs through
    # functions.
    log.info(
        "open doc=%s peer=%s client=%s user=%s mode=%s",
        room.doc_id,
        peer.id,
        peer.client,
        grant.sub,
        grant.mode.value,
        extra={
            "doc": room.doc_id,
            "peer": peer.id,
            "client": peer.client,
            "user": grant.sub,
            "mode": grant.mode.value,
        },
    )


def _close_at_expiry(peer: Peer, grant: Grant) -> asyncio.TimerHandle | None:
    """Close the peer when its token expires, so short-lived tokens revoke access."""
    if grant.exp is None:
        return None
    loop = asyncio.get_running_loop()
    delay = max(0.0, grant.exp - time.time())
    return loop.call_later(delay, peer.close, CloseCode.UNAUTHORIZED, "token expired")


def _refuse(peer: Peer, what: str) -> None:
    log.warning(
        "peer %s (%s) sent %s; closing it",
        peer.id,
        peer.client,
        what,
        extra={"peer": peer.id, "client": peer.client},
    )


def _drop_handshake(scope: Scope, transport: AsgiTransport) -> None:
    """The checks have read the handshake (its headers, query string, the scope's
    extensions); a socket that lives for hours need not keep it. collab's own protocol
    reads nothing of the scope after the accept, so there the scope is emptied (1.4 KB
    a socket); elsewhere the server or a host's middleware may read it later, and only
    the headers go."""
    if transport.batches:
        scope.clear()  # a cleared dict gives back its table; one emptied key by key does not
        return
    headers = scope.get("headers")
    if isinstance(headers, list):
        headers.clear()


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "unknown"


async def _deny(websocket: WebSocket, status: int, error: str, detail: str) -> None:
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(JSONResponse(error_body(error, detail), status))
    else:
        await websocket.close(CloseCode.POLICY_VIOLATION, detail)
