"""Webhooks: every event reaches a real receiver, signed, debounced, in order, retried
until a 2xx, after a kill -9 too; a hostile receiver harms nothing; on SQLite and
PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import itertools
import json
import re
import statistics
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from pycrdt import Doc, XmlElement, XmlFragment, XmlText
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from collab.outbox import Debounce
from collab.schema import webhook_events
from collab.sqlstore import SqlStore, create_engine

from .conftest import Cluster, ServerFactory
from .support import CollabServer, free_port, wait_until

SECRET = "a webhook secret for the tests"


@dataclass
class Delivery:
    received: float  # time.time()
    headers: dict[str, str]
    raw: bytes
    status: int

    @property
    def body(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.raw)
        return value


class Receiver:
    """A real HTTP server on a free loopback port, in a thread. ``mode`` says how it
    answers: "ok" (204), "hang", "garbage" (bytes that are not HTTP), "huge" (200 with
    an endless body), "redirect" (307 to ``redirect_to``); the first ``failures``
    requests get a 500 whatever the mode."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.failures = 0
        self.redirect_to = ""
        self.deliveries: list[Delivery] = []
        self.huge_bytes_sent = 0
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.answer(self, raw)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def answer(self, handler: BaseHTTPRequestHandler, raw: bytes) -> None:
        status = 500 if self.failures > 0 else 200
        self.failures = max(0, self.failures - 1)
        mode = "ok" if status == 500 else self.mode
        record = Delivery(time.time(), dict(handler.headers.items()), raw, status)
        if mode == "hang":
            record.status = 0
            self.deliveries.append(record)
            self.release.wait(30)
            return
        if mode == "garbage":
            record.status = 0
            self.deliveries.append(record)
            handler.wfile.write(b"\x00\xffthis is not HTTP\r\n\r\n")
            handler.close_connection = True
            return
        if mode == "redirect":
            record.status = 307
            self.deliveries.append(record)
            handler.send_response(307)
            handler.send_header("Location", self.redirect_to)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        self.deliveries.append(record)
        handler.send_response(status)
        if mode == "huge" and status == 200:
            handler.send_header("Content-Length", str(10**10))
            handler.end_headers()
            chunk = b"x" * 65536
            try:
                while self.huge_bytes_sent < 10**9:
                    handler.wfile.write(chunk)
                    self.huge_bytes_sent += len(chunk)
            except OSError:
                pass
            return
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    def delivered(self, event: str | None = None) -> list[Delivery]:
        """The 2xx-answered deliveries (of ``event``), in order of arrival."""
        return [
            d
            for d in list(self.deliveries)
            if d.status == 200 and (event is None or d.headers["X-Collab-Event"] == event)
        ]

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    try:
        yield server
    finally:
        server.close()


def webhook_settings(url: str, **extra: str) -> dict[str, str]:
    return {
        "webhook_url": url,
        "webhook_secret": SECRET,
        "webhook_debounce": "0.3",
        "webhook_max_wait": "5",
        **extra,
    }


class Editor:
    """A Yjs document whose edits are posted to the server as Yjs updates."""

    def __init__(self, server: CollabServer, doc_id: str) -> None:
        self.url = f"{server.url}/api/documents/{doc_id}"
        self.doc: Doc[Any] = Doc()
        self.text = XmlText()
        fragment = self.doc.get("default", type=XmlFragment)
        fragment.children.append(XmlElement("paragraph", contents=[self.text]))
        self.typed = ""
        self.pending = [self.doc.get_update()]
        self.doc.observe(lambda event: self.pending.append(event.update))

    def type(self, text: str) -> None:
        self.text += text
        self.typed += text
        updates, self.pending = self.pending, []
        for update in updates:
            response = httpx.post(self.url + "/update", content=update, timeout=10)
            assert response.status_code == 200, response.text


def verify(delivery: Delivery) -> None:
    expected = hmac.new(SECRET.encode(), delivery.raw, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(delivery.headers["X-Collab-Signature"], "sha256=" + expected)
    body = delivery.body
    assert set(body) >= {"id", "event", "document", "at", "text", "content"}
    assert delivery.headers["X-Collab-Event"] == body["event"]
    assert delivery.headers["X-Collab-Delivery"] == body["id"]


def at(body: dict[str, Any]) -> float:
    """The body's ``at``, as a time.time()."""
    return dt.datetime.fromisoformat(body["at"].replace("Z", "+00:00")).timestamp()


def metric(server: CollabServer, name: str, **labels: str) -> float:
    text = httpx.get(server.url + "/metrics").text
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = (
        "^" + re.escape(name) + (r"\{" + re.escape(wanted) + r"\}" if labels else "") + r" (\S+)"
    )
    found = re.search(pattern, text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


async def _outbox_rows(url: str) -> list[dict[str, Any]]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(select(webhook_events).order_by(webhook_events.c.seq))
            return [dict(row._mapping) for row in rows]
    finally:
        await engine.dispose()


def outbox_rows(url: str) -> list[dict[str, Any]]:
    return asyncio.run(_outbox_rows(url))


def test_every_event_arrives_signed_in_order_and_is_retried_after_a_500(
    start_server: ServerFactory, database_url: str, receiver: Receiver, doc_id: str
) -> None:
    receiver.failures = 1
    server = start_server(database_url, **webhook_settings(receiver.url))
    assert httpx.post(server.url + "/api/documents", json={"id": doc_id}).status_code == 201
    Editor(server, doc_id).type("hello webhooks")
    wait_until(lambda: len(receiver.delivered("document.changed")) == 1, what="the change")
    version = httpx.post(f"{server.url}/api/documents/{doc_id}/versions", json={"label": "v1"})
    assert version.status_code == 201
    assert httpx.delete(f"{server.url}/api/documents/{doc_id}").status_code == 204
    wait_until(lambda: len(receiver.delivered()) == 4, what="four events")

    for delivery in receiver.deliveries:
        verify(delivery)
    delivered = [d.body for d in receiver.delivered()]
    assert [b["event"] for b in delivered] == [
        "document.created",
        "document.changed",
        "version.created",
        "document.deleted",
    ]
    assert {b["document"] for b in delivered} == {doc_id}
    created, changed, versioned, deleted = delivered
    assert changed["text"] == "hello webhooks"
    assert changed["content"] == {
        "type": "doc",
        "content": [{"type": "paragraph", "content": [{"type": "text", "text": "hello webhooks"}]}],
    }
    assert versioned["text"] == "hello webhooks"
    assert versioned["version"]["id"] == version.json()["id"]
    assert versioned["version"]["label"] == "v1"
    assert deleted["text"] is None
    assert deleted["content"] is None
    assert created["text"] == ""
    # The refused first attempt and its retry: the same key, the same bytes.
    refused, retried = receiver.deliveries[0], receiver.deliveries[1]
    assert refused.status == 500
    assert retried.body["id"] == refused.body["id"] == created["id"]
    assert retried.raw == refused.raw
    assert retried.received - refused.received >= 0.4  # a backoff, not at once
    assert len({b["id"] for b in delivered}) == 4
    assert (
        metric(
            server, "collab_webhook_attempts_total", event="document.created", outcome="rejected"
        )
        == 1
    )
    assert (
        metric(
            server, "collab_webhook_attempts_total", event="document.created", outcome="delivered"
        )
        == 1
    )
    wait_until(lambda: metric(server, "collab_webhook_pending") == 0, what="an empty backlog")
    assert outbox_rows(database_url) == []
    log = server.log()
    assert re.search(r"WARNING collab\.webhooks: webhook \w+ document\.created .*HTTP 500", log)
    assert len(re.findall(r"INFO collab\.webhooks: webhook .* delivered", log)) == 4


@pytest.mark.timing
def test_changes_are_debounced_and_sent_at_the_latest_after_max_wait(
    start_server: ServerFactory, database_url: str, receiver: Receiver, doc_id: str
) -> None:
    debounce, max_wait = 0.8, 2.0
    server = start_server(
        database_url,
        **webhook_settings(
            receiver.url, webhook_debounce=str(debounce), webhook_max_wait=str(max_wait)
        ),
    )
    editor = Editor(server, doc_id)
    first = time.time()
    while time.time() - first < 4.5:  # a change every 0.2 s: never a quiet debounce
        editor.type("a")
        time.sleep(0.2)
    last = time.time()
    # The slack after each bound is for a loaded machine (the suite runs in parallel);
    # without the maximum wait the first event would come only after 4.5 + 0.8 s.
    slack = 2.0
    wait_until(lambda: time.time() - last > debounce + slack + 0.5, what="the last debounce")
    changes = receiver.delivered("document.changed")
    assert len(changes) >= 2, [d.received - first for d in changes]
    # While the edits went on, each event came at the maximum wait, not before.
    assert max_wait - 0.15 <= changes[0].received - first <= max_wait + slack
    for earlier, later in itertools.pairwise(changes[:-1]):
        assert max_wait - 0.15 <= later.received - earlier.received <= max_wait + slack
    # The last came a debounce after the last change, with all of it.
    final = changes[-1]
    assert debounce - 0.05 <= final.received - at(final.body) <= debounce + slack
    assert final.body["text"] == editor.typed
    assert final.received >= last


def test_a_change_recorded_before_a_kill_9_is_delivered_after_the_restart(
    start_server: ServerFactory, database_url: str, receiver: Receiver, doc_id: str
) -> None:
    settings = webhook_settings(receiver.url, webhook_debounce="3", webhook_max_wait="10")
    server = start_server(database_url, **settings)
    Editor(server, doc_id).type("before the crash")
    wait_until(lambda: len(receiver.delivered("document.created")) == 1, what="created")
    wait_until(
        lambda: any(r["event"] == "document.changed" for r in outbox_rows(database_url)),
        what="the change in the outbox",
    )
    (recorded,) = [r for r in outbox_rows(database_url) if r["event"] == "document.changed"]
    server.kill()
    assert receiver.delivered("document.changed") == []
    start_server(database_url, **settings)
    wait_until(lambda: len(receiver.delivered("document.changed")) == 1, what="the change")
    (changed,) = receiver.delivered("document.changed")
    verify(changed)
    assert changed.body["id"] == recorded["id"]
    assert changed.body["text"] == "before the crash"


async def test_the_outbox_gathers_a_documents_changes_in_one_event(database_url: str) -> None:
    store = SqlStore(create_engine(database_url), webhooks=Debounce(1.0, 5.0))
    plain = SqlStore(create_engine(database_url))
    try:
        # More than five: PostgreSQL then plans the prepared upsert without its values.
        for _ in range(12):
            await store.append("gathered", [b"\x00\x00"])
        await plain.append("unannounced", [b"\x00\x00"])
        rows = await _outbox_rows(database_url)
        assert [(r["event"], r["doc_id"]) for r in rows] == [
            ("document.created", "gathered"),
            ("document.changed", "gathered"),
        ]
        changed = rows[1]
        assert changed["last_at"] > changed["first_at"]
        assert changed["deadline_at"] > changed["due_at"] > changed["last_at"]
    finally:
        await store.close()
        await plain.close()


def test_without_a_webhook_url_nothing_is_recorded(
    start_server: ServerFactory, sqlite_url: str, doc_id: str
) -> None:
    server = start_server(sqlite_url)
    assert httpx.post(server.url + "/api/documents", json={"id": doc_id}).status_code == 201
    Editor(server, doc_id).type("quiet")
    assert httpx.get(f"{server.url}/api/documents/{doc_id}/text").text == "quiet"
    assert outbox_rows(sqlite_url) == []
    assert "collab_webhook" not in httpx.get(server.url + "/metrics").text


@pytest.mark.parametrize("mode", ["hang", "garbage", "redirect", "refused"])
def test_a_hostile_receiver_harms_nothing_and_gets_the_event_when_it_mends(
    start_server: ServerFactory,
    sqlite_url: str,
    receiver: Receiver,
    doc_id: str,
    mode: str,
) -> None:
    elsewhere = Receiver()
    try:
        receiver.mode = mode
        receiver.redirect_to = elsewhere.url
        url = f"http://127.0.0.1:{free_port()}/hook" if mode == "refused" else receiver.url
        server = start_server(sqlite_url, **webhook_settings(url, webhook_timeout="0.5"))
        editor = Editor(server, doc_id)
        editor.type("still editing")
        outcome = {"hang": "timeout", "garbage": "unreachable", "redirect": "rejected"}
        wanted = outcome.get(mode, "unreachable")
        wait_until(
            lambda: (
                metric(
                    server,
                    "collab_webhook_attempts_total",
                    event="document.created",
                    outcome=wanted,
                )
                >= 2
            ),
            what=f"two {wanted} attempts",
        )
        assert server.process is not None
        assert server.process.poll() is None
        assert httpx.get(server.url + "/healthz").status_code == 200
        editor.type(" and more")
        text = httpx.get(f"{server.url}/api/documents/{doc_id}/text")
        assert text.text == "still editing and more"
        assert elsewhere.deliveries == []  # a redirect is not followed
        assert re.search(rf"WARNING collab\.webhooks: .*attempt \d+ {wanted}", server.log())
        if mode == "refused":
            return
        receiver.mode = "ok"
        receiver.release.set()
        wait_until(lambda: len(receiver.delivered("document.changed")) == 1, what="the change")
        created = [d for d in receiver.deliveries if d.body["event"] == "document.created"]
        assert len({d.body["id"] for d in created}) == 1
        assert receiver.delivered("document.changed")[0].body["text"] == "still editing and more"
    finally:
        elsewhere.close()


def test_a_huge_answer_is_not_read(
    start_server: ServerFactory, sqlite_url: str, receiver: Receiver, doc_id: str
) -> None:
    receiver.mode = "huge"
    server = start_server(sqlite_url, **webhook_settings(receiver.url))
    assert httpx.post(server.url + "/api/documents", json={"id": doc_id}).status_code == 201
    wait_until(
        lambda: (
            metric(
                server,
                "collab_webhook_attempts_total",
                event="document.created",
                outcome="delivered",
            )
            == 1
        ),
        what="the delivery",
    )
    time.sleep(0.2)  # the receiver's writes fail once the socket is closed
    assert receiver.huge_bytes_sent < 16 * 1024 * 1024
    assert server.process is not None
    assert server.process.poll() is None


def test_processes_sharing_a_database_deliver_each_event_once(
    cluster: Cluster, receiver: Receiver
) -> None:
    nodes = cluster.start_many(2, **webhook_settings(receiver.url, webhook_debounce="0.2"))
    ids = [f"shared-{i}" for i in range(20)]
    for i, doc in enumerate(ids):
        Editor(nodes[i % 2], doc).type(f"text {i}")
    wait_until(
        lambda: len(receiver.delivered("document.changed")) >= len(ids),
        timeout=30,
        what="every change",
    )
    time.sleep(1.5)  # time for a duplicate to show up
    keys = [d.body["id"] for d in receiver.delivered()]
    assert len(keys) == len(set(keys))
    assert sorted(d.body["document"] for d in receiver.delivered("document.created")) == sorted(ids)
    last_text = {d.body["document"]: d.body["text"] for d in receiver.delivered("document.changed")}
    assert last_text == {doc: f"text {i}" for i, doc in enumerate(ids)}


@pytest.mark.timing
def test_delivery_latency_after_the_debounce(
    start_server: ServerFactory, database_url: str, receiver: Receiver
) -> None:
    debounce = 0.3
    server = start_server(
        database_url, **webhook_settings(receiver.url, webhook_debounce=str(debounce))
    )
    count = 40
    for i in range(count):
        Editor(server, f"latency-{i}").type("x")
        time.sleep(0.05)
    wait_until(
        lambda: len(receiver.delivered("document.changed")) == count,
        timeout=30,
        what="every change",
    )
    lags = sorted(
        d.received - at(d.body) - debounce for d in receiver.delivered("document.changed")
    )
    median, p99 = statistics.median(lags), lags[min(len(lags) - 1, int(0.99 * len(lags)))]
    print(
        f"\nwebhook latency after the debounce: median {median * 1000:.1f} ms, "
        f"p99 {p99 * 1000:.1f} ms over {count} events"
    )
    assert lags[0] > -0.05
    assert p99 < 1.0


def test_an_attempt_cut_short_by_a_shutdown_is_retried_at_once_after_the_restart(
    start_server: ServerFactory, sqlite_url: str, receiver: Receiver, doc_id: str
) -> None:
    receiver.mode = "hang"
    settings = webhook_settings(receiver.url, webhook_timeout="60")
    server = start_server(sqlite_url, **settings)
    assert httpx.post(server.url + "/api/documents", json={"id": doc_id}).status_code == 201
    wait_until(lambda: len(receiver.deliveries) == 1, what="the attempt")
    assert server.stop() == 0
    receiver.mode = "ok"
    restarted = time.time()
    start_server(sqlite_url, **settings)
    # Held for its lease (60 s + 30 s) had the shutdown not given it back.
    wait_until(lambda: len(receiver.delivered("document.created")) == 1, what="the retry")
    assert receiver.delivered("document.created")[0].received - restarted < 10
