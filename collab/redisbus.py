"""The fan-out's transport on Redis pub/sub (redis-py asyncio).

Pub/sub rather than streams: the database already keeps every update, so the bus only
has to carry live traffic. Pub/sub delivers it with one hop and no storage to trim;
what it drops (a process that was disconnected) is recovered by the state-vector
exchange every room makes when the connection comes back, not by replaying a stream.

One connection subscribes. Another publishes: what is queued is written in one batch
and the replies are read by a second task, so a publish costs no round trip of its own
(redis-py's client or pipeline spends ~80 µs of CPU a call, more than the fan-out of an
update). Any error, on either side, ends the session: the transport reconnects with
backoff and the fan-out resynchronises every open room.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from typing import TYPE_CHECKING

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.connection import Connection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

if TYPE_CHECKING:
    from .fanout import Fanout

log = logging.getLogger("collab.redis")

BATCH = 512
SUBSCRIBE_CHUNK = 1000


class BusFailure(ConnectionError):
    pass


class RedisTransport:
    def __init__(
        self,
        url: str,
        *,
        retry_max_delay: float = 5.0,
        idle_timeout: float = 10.0,
        queue_limit: int = 100_000,
    ) -> None:
        self.url = url
        self.retry_max_delay = retry_max_delay
        # Our own heartbeats come back to us: a subscription silent for this long is dead.
        self.idle_timeout = idle_timeout
        self.queue_limit = queue_limit
        self._fanout: Fanout | None = None
        self._channels: set[str] = set()
        self._confirming: dict[str, asyncio.Future[None]] = {}
        self._queue: collections.deque[tuple[str, bytes]] = collections.deque()
        self._wake = asyncio.Event()
        self._client: Redis | None = None
        self._pubsub: PubSub | None = None
        self._publisher: Connection | None = None
        self._unanswered = 0  # publishes written whose replies are not read yet
        self._answer = asyncio.Event()
        self._heard = 0.0
        self._connected = False
        self._failure: Exception | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def is_connected(self) -> bool:
        return self._connected

    def start(self, fanout: Fanout) -> None:
        self._fanout = fanout
        self._channels.add(fanout.process_channel)
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._run(), name="collab-redis")]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._disconnect()

    async def subscribe(self, channel: str) -> None:
        self._channels.add(channel)
        if self._pubsub is None:
            return
        waiter = self._confirming.get(channel)
        if waiter is None:
            waiter = self._confirming[channel] = asyncio.get_running_loop().create_future()
        try:
            await self._pubsub.subscribe(channel)
        except Exception as exc:
            self._fail(exc)
            return
        await waiter

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)
        if self._pubsub is not None:
            try:
                await self._pubsub.unsubscribe(channel)
            except Exception as exc:
                self._fail(exc)

    async def publish(self, channel: str, data: bytes) -> int:
        if not self._connected or self._client is None:
            return 0
        try:
            return int(await self._client.publish(channel, data))
        except Exception as exc:
            self._fail(exc)
            return 0

    def publish_soon(self, channel: str, data: bytes) -> None:
        if not self._connected:
            return
        if len(self._queue) >= self.queue_limit:
            self._fail(BusFailure(f"more than {self.queue_limit} messages waiting to be published"))
            return
        self._queue.append((channel, data))
        self._wake.set()

    async def ping(self) -> None:
        if not self._connected or self._client is None:
            raise BusFailure(f"not connected: {self._failure or 'connecting'}")
        await self._client.ping()

    def _fail(self, exc: Exception) -> None:
        if self._failure is None:
            self._failure = exc

    async def _run(self) -> None:
        assert self._fanout is not None
        delay = 0.1
        while True:
            reason = "the session ended"
            try:
                await self._session()
            except Exception as exc:
                reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
            if self._connected:
                self._connected = False
                self._fanout.disconnected(reason)
                delay = 0.1
            else:
                log.debug("connecting to Redis failed: %s; retrying in %.1f s", reason, delay)
            self._queue.clear()
            await self._disconnect()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.retry_max_delay)

    async def _session(self) -> None:
        assert self._fanout is not None
        self._failure = None
        client: Redis = Redis.from_url(
            self.url, retry=Retry(NoBackoff(), 0), socket_timeout=5, socket_connect_timeout=5
        )
        self._client = client
        await client.ping()
        publisher = self._publisher = client.connection_pool.make_connection()  # type: ignore[no-untyped-call]
        await publisher.connect()
        pubsub = self._pubsub = client.pubsub()
        unconfirmed = set(self._channels)
        channels = sorted(unconfirmed)
        for start in range(0, len(channels), SUBSCRIBE_CHUNK):
            await pubsub.subscribe(*channels[start : start + SUBSCRIBE_CHUNK])
        self._heard = time.monotonic()
        loop = asyncio.get_running_loop()
        helpers = [
            loop.create_task(self._publish_loop(publisher)),
            loop.create_task(self._read_answers(publisher)),
            loop.create_task(self._watch()),
        ]
        try:
            done, _ = await asyncio.wait(
                [loop.create_task(self._listen(pubsub, unconfirmed)), *helpers],
                return_when=asyncio.FIRST_COMPLETED,
            )
            for task in done:
                task.result()
        finally:
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)

    async def _listen(self, pubsub: PubSub, unconfirmed: set[str]) -> None:
        assert self._fanout is not None
        count = len(unconfirmed)
        while True:
            response = await pubsub.parse_response(block=True)
            self._heard = time.monotonic()
            if not isinstance(response, list) or len(response) < 3:
                continue
            kind, channel = response[0], response[1].decode()
            if kind == b"message":
                self._fanout.received(channel, response[2])
            elif kind == b"subscribe":
                waiter = self._confirming.pop(channel, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)
                if unconfirmed:
                    unconfirmed.discard(channel)
                    if not unconfirmed:
                        self._connected = True
                        log.info("connected to Redis, %d channels", count)
                        self._fanout.connected()

    async def _watch(self) -> None:
        """End the session on a publish failure, or when the subscription falls silent."""
        while True:
            await asyncio.sleep(min(1.0, self.idle_timeout / 4))
            if self._failure is not None:
                raise self._failure
            silent = time.monotonic() - self._heard
            if silent > self.idle_timeout:
                raise BusFailure(f"no message for {silent:.1f} s, not even our own")

    async def _publish_loop(self, publisher: Connection) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue and self._connected:
                batch = [self._queue.popleft() for _ in range(min(BATCH, len(self._queue)))]
                commands = [("PUBLISH", channel, data) for channel, data in batch]
                await publisher.send_packed_command(
                    publisher.pack_commands(commands), check_health=False
                )
                self._unanswered += len(batch)
                self._answer.set()

    async def _read_answers(self, publisher: Connection) -> None:
        while True:
            await self._answer.wait()
            self._answer.clear()
            while self._unanswered:
                await publisher.read_response()
                self._unanswered -= 1

    async def _disconnect(self) -> None:
        for waiter in self._confirming.values():
            if not waiter.done():
                waiter.set_result(None)
        self._confirming.clear()
        pubsub, client, publisher = self._pubsub, self._client, self._publisher
        self._pubsub = self._client = self._publisher = None
        self._unanswered = 0
        with contextlib.suppress(Exception):
            if publisher is not None:
                await publisher.disconnect()
        with contextlib.suppress(Exception):
            if pubsub is not None:
                await pubsub.aclose()  # type: ignore[no-untyped-call]
        with contextlib.suppress(Exception):
            if client is not None:
                await client.aclose()
