"""Group commit's merge under a soak: the process's memory while ``collab.ymerge``
merges MEGABYTES of real keystroke updates, 100 at a time as a busy flush does, beside
pycrdt's native ``merge_updates`` doing the same (which was seen keeping native memory
it never gave back).

Run with the project's venv: .venv/bin/python bench/merge_soak.py [--json]
Prints a summary on stderr and, with --json, one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from pycrdt import Doc, Text, merge_updates

from collab import ymerge


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / 2**20


def keystrokes(count: int) -> list[bytes]:
    doc: Doc[Any] = Doc()
    text = doc.get("text", type=Text)
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    for i in range(count):
        text.insert(len(text) if i % 9 else 0, "abcdefghijklmnop"[i % 16])
        if i % 13 == 12:
            del text[0:1]
    return updates


def soak(
    merge: Callable[[Sequence[bytes]], object], updates: list[bytes], megabytes: int
) -> dict[str, Any]:
    merged = 0
    started = time.perf_counter()
    before = rss_mb()
    samples = []
    while merged < megabytes * 2**20:
        for i in range(0, len(updates), 100):
            batch = updates[i : i + 100]
            merge(batch)
            merged += sum(map(len, batch))
        samples.append(rss_mb())
    seconds = time.perf_counter() - started
    return {
        "merged_mb": round(merged / 2**20, 1),
        "seconds": round(seconds, 2),
        "us_per_update": round(
            seconds / (merged / (sum(map(len, updates)) / len(updates))) * 1e6, 2
        ),
        "rss_before_mb": round(before, 1),
        "rss_after_first_pass_mb": round(samples[0], 1),
        "rss_end_mb": round(samples[-1], 1),
        "rss_growth_after_first_pass_mb": round(samples[-1] - samples[0], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--megabytes", type=int, default=100)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    updates = keystrokes(20_000)
    result = {
        "updates": len(updates),
        "update_bytes": sum(map(len, updates)),
        "ymerge": soak(ymerge.merge, updates, args.megabytes),
        "pycrdt_merge_updates": soak(lambda batch: merge_updates(*batch), updates, args.megabytes),
    }
    for name in ("ymerge", "pycrdt_merge_updates"):
        r = result[name]
        print(
            f"{name}: {r['merged_mb']} MB in {r['seconds']} s ({r['us_per_update']} us/update); "
            f"RSS {r['rss_after_first_pass_mb']} -> {r['rss_end_mb']} MB",
            file=sys.stderr,
        )
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
