"""Time to open a room from its stored state: a large snapshot plus a long log.

Builds the data through collab's own SqlStore on a fresh, migrated SQLite database
(and on PostgreSQL when BENCH_POSTGRES_URL is set): one snapshot of a Y.Text built
from many edits (~1.7 MB encoded) written by append + compact, then LOG_ROWS small
incremental updates of the same document appended in batches, as the flush loop
writes them. Then times ``Persistence(store).load(doc_id)`` end to end (DB read +
build), the DB read (``store.load``) and the build (``state.build_doc``) on their
own, and a raw pycrdt apply of the snapshot alone. Median of several runs.

Run with the project's venv: .venv/bin/python bench/storage_bench.py [--json]
Prints a summary on stderr and, with --json, one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pycrdt import Doc, Text

from collab.migrate import upgrade
from collab.persistence import Persistence
from collab.sqlstore import SqlStore, create_engine
from collab.state import build_doc

ALPHABET = "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789.,\n"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def edit(text: Text, rng: random.Random) -> None:
    """One small edit at a random position: mostly inserts, some deletions."""
    length = len(text)
    if length > 100 and rng.random() < 0.1:
        at = rng.randrange(length - 20)
        del text[at : at + rng.randint(1, 20)]
    else:
        chunk = "".join(rng.choices(ALPHABET, k=rng.randint(8, 40)))
        text.insert(rng.randint(0, length), chunk)


def build_data(snapshot_bytes: int, log_rows: int, seed: int) -> dict[str, Any]:
    """The snapshot (one update of the whole doc) and log_rows incremental updates."""
    rng = random.Random(seed)
    doc: Doc[Any] = Doc()
    text = doc.get("bench", type=Text)
    started = time.perf_counter()
    edits = 0
    while True:
        for _ in range(1000):
            edit(text, rng)
            edits += 1
        snapshot = doc.get_update()
        if len(snapshot) >= snapshot_bytes:
            break
    incremental: list[bytes] = []
    sub = doc.observe(lambda event: incremental.append(event.update))
    for _ in range(log_rows):
        edit(text, rng)
    doc.unobserve(sub)
    return {
        "snapshot": snapshot,
        "snapshot_edits": edits,
        "log": incremental,
        "text": str(text),
        "build_s": time.perf_counter() - started,
    }


async def write_data(store: SqlStore, doc_id: str, data: dict[str, Any], batch: int) -> dict:
    started = time.perf_counter()
    await store.load(doc_id)  # creates the document row, as opening a room does
    await store.append(doc_id, [data["snapshot"]])
    snapshot_len = await store.compact(doc_id)
    compacted = time.perf_counter()
    rows = data["log"]
    for i in range(0, len(rows), batch):
        await store.append(doc_id, rows[i : i + batch])
    return {
        "stored_snapshot_bytes": snapshot_len,
        "write_snapshot_s": round(compacted - started, 3),
        "write_log_s": round(time.perf_counter() - compacted, 3),
    }


def ms(samples: list[float]) -> dict[str, float]:
    return {
        "median_ms": round(statistics.median(samples) * 1000, 2),
        "min_ms": round(min(samples) * 1000, 2),
        "max_ms": round(max(samples) * 1000, 2),
    }


async def time_loads(store: SqlStore, doc_id: str, data: dict[str, Any], runs: int) -> dict:
    # One untimed load first: the timed ones all see a warm page cache and pool.
    warm = await Persistence(store).load(doc_id)
    if str(warm.get("bench", type=Text)) != data["text"]:
        raise RuntimeError("the loaded document differs from the one written")
    stored = await store.load(doc_id)
    total, read, build = [], [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        await Persistence(store).load(doc_id)
        total.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        stored = await store.load(doc_id)
        read.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        build_doc(stored.snapshot, stored.updates)
        build.append(time.perf_counter() - t0)
    return {
        "log_rows_loaded": len(stored.updates),
        "snapshot_bytes_loaded": len(stored.snapshot or b""),
        "load": ms(total),
        "db_read": ms(read),
        "build": ms(build),
    }


async def bench_database(
    name: str, url: str, data: dict[str, Any], runs: int, batch: int
) -> dict[str, Any]:
    await asyncio.to_thread(upgrade, url)
    engine = create_engine(url)
    store = SqlStore(engine)
    doc_id = f"storage-bench-{os.getpid()}-{random.randrange(1 << 30):x}"
    try:
        written = await write_data(store, doc_id, data, batch)
        timed = await time_loads(store, doc_id, data, runs)
    finally:
        if name != "sqlite":  # a throwaway SQLite file is removed whole
            try:
                await store.delete_document(doc_id)
            except Exception as exc:  # the result matters more than the clean-up
                log(f"{name}: could not delete {doc_id}: {exc}")
        await store.close()
    return {"database": name, **written, **timed}


def raw_apply(snapshot: bytes, runs: int) -> dict[str, float]:
    samples = []
    for _ in range(runs):
        doc: Doc[Any] = Doc()
        t0 = time.perf_counter()
        doc.apply_update(snapshot)
        samples.append(time.perf_counter() - t0)
    return ms(samples)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snapshot-bytes", type=int, default=1_700_000)
    parser.add_argument("--log-rows", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=10, help="log rows per append")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = parser.parse_args()

    data = build_data(args.snapshot_bytes, args.log_rows, args.seed)
    log_bytes = sum(len(u) for u in data["log"])
    log(
        f"data: snapshot {len(data['snapshot'])} B from {data['snapshot_edits']} edits, "
        f"{len(data['log'])} log rows ({log_bytes} B), built in {data['build_s']:.1f} s"
    )
    result: dict[str, Any] = {
        "snapshot_bytes": len(data["snapshot"]),
        "snapshot_edits": data["snapshot_edits"],
        "text_chars": len(data["text"]),
        "log_rows": len(data["log"]),
        "log_bytes": log_bytes,
        "append_batch": args.batch,
        "runs": args.runs,
        "raw_apply_snapshot": raw_apply(data["snapshot"], args.runs),
        "databases": [],
    }
    log(f"raw pycrdt apply of the snapshot: {result['raw_apply_snapshot']['median_ms']} ms")
    targets = []
    with tempfile.TemporaryDirectory(prefix="collab-storage-bench-") as tmp:
        targets.append(("sqlite", f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"))
        if os.environ.get("BENCH_POSTGRES_URL"):
            targets.append(("postgresql", os.environ["BENCH_POSTGRES_URL"]))
        else:
            result["postgresql_skipped"] = "BENCH_POSTGRES_URL not set"
        for name, url in targets:
            try:
                r = await bench_database(name, url, data, args.runs, args.batch)
            except Exception as exc:
                r = {"database": name, "error": f"{type(exc).__name__}: {exc}"[:500]}
                log(f"{name}: ERROR {r['error']}")
            else:
                log(
                    f"{name}: load {r['load']['median_ms']} ms (DB read "
                    f"{r['db_read']['median_ms']} ms + build {r['build']['median_ms']} ms)"
                )
            result["databases"].append(r)
    if args.json:
        print(json.dumps(result))
    return 1 if any("error" in r for r in result["databases"]) else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
