"""Operations: metrics move with traffic, logs, graceful shutdown during editing."""

from __future__ import annotations

import json
import platform
import signal
from collections.abc import Awaitable
from importlib import metadata

import httpx
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

import collab
from collab.closecodes import CloseCode
from collab.settings import Settings
from collab.web.app import create_app

from .conftest import ServerFactory
from .support import CollabServer, eventually
from .yclient import YClient


async def _scrape(server: CollabServer) -> dict[str, float]:
    async with httpx.AsyncClient() as http:
        response = await http.get(server.url + "/metrics", timeout=5)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


async def test_metrics_move_as_traffic_flows(server: CollabServer, doc_id: str) -> None:
    before = await _scrape(server)
    async with YClient(server.ws_url(doc_id)) as alice, YClient(server.ws_url(doc_id)) as bob:
        for i in range(20):
            alice.append(f"{i} ")
        await eventually(lambda: bob.content().count(" ") == 20)
        during = await _scrape(server)
        assert during["collab_peers_connected"] == 2
        async with httpx.AsyncClient() as http:
            summary = (await http.get(server.url + "/api/stats", timeout=5)).json()
        assert summary["peers_by_room"][doc_id] == 2
        assert during["collab_rooms_open"] >= 1
        bad = YClient(server.ws_url(doc_id))
        await bad.connect()
        await bad.send_raw(b"\x00\x02\xff")
        await bad.wait_closed()

    async def peers() -> float:
        return (await _scrape(server))["collab_peers_connected"]

    await eventually(lambda: _is(peers(), 0))
    after = await _scrape(server)

    def delta(name: str) -> float:
        return after.get(name, 0) - before.get(name, 0)

    assert delta("collab_updates_received_total") >= 20
    assert delta("collab_messages_sent_total") >= 20  # to bob, at least
    assert delta("collab_received_bytes_total") > 20 * 4
    assert delta("collab_sent_bytes_total") > 20 * 4
    assert delta("collab_peers_opened_total") == 3
    assert delta("collab_peers_closed_total{reason=malformed}") == 1
    assert delta("collab_peers_closed_total{reason=client}") == 2

    async def flushes() -> float:
        return (await _scrape(server)).get("collab_flush_seconds_count", 0)

    await eventually(lambda: _more(flushes(), 0))
    assert after["collab_database_healthy"] == 1


async def test_metrics_include_the_process_and_the_build(server: CollabServer) -> None:
    samples = await _scrape(server)
    for name in (
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_start_time_seconds",
        "python_gc_objects_collected_total{generation=0}",
    ):
        assert samples[name] > 0, name
    [python] = [k for k in samples if k.startswith("python_info{")]
    assert f"version={platform.python_version()}" in python
    [build] = [k for k in samples if k.startswith("collab_build_info{")]
    assert samples[build] == 1
    assert f"version={collab.__version__}" in build
    assert f"pycrdt={metadata.version('pycrdt')}" in build
    assert f"python={platform.python_version()}" in build


def test_apps_in_one_process_each_have_their_own_registry(sqlite_url: str) -> None:
    settings = Settings.from_env(database_url=sqlite_url)
    first, second = create_app(settings), create_app(settings)
    for app in (first, second):
        text = generate_latest(app.state.metrics).decode()
        assert text.count("\nprocess_cpu_seconds_total ") == 1
        assert text.count("\ncollab_build_info{") == 1
    assert first.state.metrics is not second.state.metrics


async def test_json_logs_one_object_per_line(start_server: ServerFactory, doc_id: str) -> None:
    server = start_server(log_format="json", log_level="info")
    async with YClient(server.ws_url(doc_id)) as client:
        client.append("secret words")
    server.stop()
    lines = [json.loads(line) for line in server.log().splitlines() if line.strip()]
    opened = [line for line in lines if line["message"].startswith("open doc=")]
    assert opened
    assert {"time", "level", "logger", "message"} <= set(opened[0])
    assert "secret words" not in server.log()  # no document content in logs


async def test_sigterm_during_editing_keeps_every_edit(
    start_server: ServerFactory, database_url: str
) -> None:
    # Nothing is written before the signal (and writes are not behind for it).
    server = start_server(database_url, flush_interval="5", max_write_lag="60")
    async with YClient(server.ws_url("busy")) as client:
        for i in range(100):
            client.append(f"{i};")
        await client.flush()

        async def received() -> float:
            return (await _scrape(server)).get("collab_updates_received_total", 0)

        await eventually(lambda: _is(received(), 100))
        server.signal(signal.SIGTERM)
        await client.wait_closed()
        assert client.close_code == CloseCode.SERVICE_RESTART
        expected = client.content()
    assert server.stop() == 0
    again = start_server(database_url)
    async with YClient(again.ws_url("busy")) as reader:
        assert reader.content() == expected == "".join(f"{i};" for i in range(100))


async def _is(value: Awaitable[float], expected: float) -> bool:
    return await value == expected


async def _more(value: Awaitable[float], than: float) -> bool:
    return await value > than
