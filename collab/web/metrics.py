"""Prometheus metrics: the core's counters and gauges read at scrape time, the
durations of database operations, the process's own series and the build. Each
process exposes its own."""

from __future__ import annotations

import platform
from collections.abc import Iterator
from importlib import metadata

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    GCCollector,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response

from .. import __version__
from ..fanout import Fanout
from ..health import Health
from ..persistence import Persistence
from ..rooms import RoomRegistry
from ..stats import Stats

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


# Libraries whose release a bug report needs, as collab_build_info labels.
_LIBRARIES = ("pycrdt", "starlette", "uvicorn", "websockets", "sqlalchemy")


def register_process(registry: CollectorRegistry) -> None:
    """On collab's own registry, what prometheus_client's default one has (the
    ``process_*``, ``python_info`` and ``python_gc_*`` series), and
    ``collab_build_info``. One registry per app: ``create_app`` may run several
    times in one process."""
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    build = Info("collab_build", "collab's release and those it runs on", registry=registry)
    build.info(build_info())


def build_info() -> dict[str, str]:
    versions = {name: metadata.version(name) for name in _LIBRARIES}
    return {"version": __version__, "python": platform.python_version(), **versions}


class Timings:
    """Durations of database operations, observed as they happen."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._histograms = {
            operation: Histogram(name, help_text, buckets=_BUCKETS, registry=registry)
            for operation, name, help_text in (
                ("flush", "collab_flush_seconds", "Time to write one room's queued updates"),
                ("snapshot", "collab_snapshot_seconds", "Time to compact a document's log"),
                ("load", "collab_room_load_seconds", "Time to open a room from the database"),
            )
        }

    def observe(self, operation: str, seconds: float) -> None:
        self._histograms[operation].observe(seconds)


class RuntimeCollector(Collector):
    """The core's counters and gauges, read when Prometheus scrapes."""

    def __init__(
        self,
        rooms: RoomRegistry,
        persistence: Persistence,
        health: Health,
        stats: Stats,
        fanout: Fanout | None = None,
    ) -> None:
        self.rooms = rooms
        self.persistence = persistence
        self.health = health
        self.stats = stats
        self.fanout = fanout

    def collect(self) -> Iterator[Metric]:
        stats = self.stats
        peers = [peer for room in self.rooms.rooms.values() for peer in room.peers]
        yield GaugeMetricFamily("collab_rooms_open", "Rooms held in memory", len(self.rooms.rooms))
        yield GaugeMetricFamily("collab_peers_connected", "Connected peers", len(peers))
        yield GaugeMetricFamily(
            "collab_unwritten_updates",
            "Accepted updates waiting to be written to the database",
            self.persistence.pending_updates,
        )
        # The same state /readyz answers from.
        yield GaugeMetricFamily(
            "collab_database_healthy",
            "1 while the database answers, writes succeed and are not behind",
            1 if self.health.database_healthy else 0,
        )
        yield GaugeMetricFamily(
            "collab_write_lag_seconds",
            "Age of the oldest accepted update not yet written to the database",
            self.health.write_lag,
        )
        yield CounterMetricFamily(
            "collab_peers_opened", "Peers accepted since start", stats.peers_opened
        )
        closed = CounterMetricFamily(
            "collab_peers_closed", "Peers closed, by reason", labels=["reason"]
        )
        for reason, count in sorted(stats.peers_closed.items()):
            closed.add_metric([reason], count)
        yield closed
        yield CounterMetricFamily(
            "collab_updates_received",
            "Document updates accepted from peers",
            stats.updates_received,
        )
        yield CounterMetricFamily(
            "collab_updates_refused",
            "Document updates refused (read-only peers)",
            stats.updates_refused,
        )
        yield CounterMetricFamily(
            "collab_messages_received", "WebSocket messages received", stats.frames_received
        )
        yield CounterMetricFamily(
            "collab_throttled_seconds",
            "Seconds connections over their message or byte rate were not read",
            stats.throttled_seconds,
        )
        yield CounterMetricFamily(
            "collab_messages_sent",
            "WebSocket messages sent",
            stats.frames_sent + sum(peer.frames_sent for peer in peers),
        )
        yield CounterMetricFamily(
            "collab_received_bytes", "Bytes of WebSocket messages received", stats.bytes_received
        )
        yield CounterMetricFamily(
            "collab_sent_bytes",
            "Bytes of WebSocket messages sent",
            stats.bytes_sent + sum(peer.bytes_sent for peer in peers),
        )
        if self.fanout is not None:
            yield from _fanout_metrics(self.fanout)


def _fanout_metrics(fanout: Fanout) -> Iterator[Metric]:
    counts = fanout.stats
    yield GaugeMetricFamily(
        "collab_redis_connected", "1 while connected to Redis", int(fanout.is_connected)
    )
    yield GaugeMetricFamily(
        "collab_redis_processes", "Other collab processes heard from", fanout.processes
    )
    for name, help_text, value in (
        ("published", "Messages published to other processes", counts.published),
        ("received", "Messages received from other processes", counts.received),
        ("resyncs", "Reconnections after which open rooms were resynchronised", counts.resyncs),
        ("processes_gone", "Other processes that went silent or shut down", counts.processes_gone),
    ):
        yield CounterMetricFamily(f"collab_redis_{name}", help_text, value)


async def metrics_endpoint(request: Request) -> Response:
    registry: CollectorRegistry = request.app.state.metrics
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
