"""Merging a batch of checked Yjs updates into one, byte for byte, for group commit.

Each struct is copied as it was received, in clock order per client, with a skip
struct wherever the batch has a gap, and the deletions are merged into one delete set:
what yjs's ``mergeUpdates`` writes, with no document and no native memory (pycrdt's
``merge_updates`` kept native memory it never gave back). Structs that only a client
still to be heard from can integrate stay in the merged update, as they were in the
batch, so compaction keeps them.
"""

from __future__ import annotations

from collections.abc import Sequence

from pycrdt import write_var_uint

from . import yupdate

_SKIP = b"\x0a"


def merge(
    updates: Sequence[bytes], parts: Sequence[yupdate.Parts | None] | None = None
) -> list[bytes]:
    """``updates`` as one update, or as they are when structs of one client overlap
    without being the same (forged), where the order of application decides.
    ``parts``: each update's ``yupdate.split``, where the caller has it (None where it
    has not), so that it is not read again."""
    if len(updates) < 2:
        return list(updates)
    structs: yupdate.Structs = {}
    deletions: yupdate.Deletions = []
    for i, update in enumerate(updates):
        given = None if parts is None else parts[i]
        some, deleted = yupdate.split(update) if given is None else given
        for client, spans in some.items():
            structs.setdefault(client, []).extend(spans)
        deletions.extend(deleted)
    groups = []
    for client in sorted(structs, reverse=True):  # yjs's order
        encoded = _client_structs(client, structs[client])
        if encoded is None:
            return list(updates)
        if encoded:
            groups.append(encoded)
    return [b"".join([write_var_uint(len(groups)), *groups, _delete_set(deletions)])]


def _client_structs(client: int, spans: list[tuple[int, int, bytes]]) -> bytes | None:
    spans = [span for span in spans if span[2][:1] != _SKIP]  # gaps are found anew
    if not spans:
        return b""
    spans.sort(key=lambda span: span[0])  # stable: of two copies, the first received
    first: dict[tuple[int, int], bytes] = {}
    out: list[bytes] = []
    start = cursor = spans[0][0]
    for clock, length, encoded in spans:
        if clock < cursor:
            if clock + length <= cursor and first.get((clock, length)) == encoded:
                continue  # received twice
            return None
        if clock > cursor:
            out.append(_SKIP + write_var_uint(clock - cursor))
        first[clock, length] = encoded
        out.append(encoded)
        cursor = clock + length
    header = write_var_uint(len(out)) + write_var_uint(client) + write_var_uint(start)
    return header + b"".join(out)


def _delete_set(deletions: yupdate.Deletions) -> bytes:
    by_client: dict[int, list[tuple[int, int]]] = {}
    for client, clock, length in deletions:
        by_client.setdefault(client, []).append((clock, clock + length))
    parts = [write_var_uint(len(by_client))]
    for client, ranges in by_client.items():
        ranges.sort()
        merged = [list(ranges[0])]
        for begin, end in ranges[1:]:
            if begin <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([begin, end])
        parts.append(write_var_uint(client) + write_var_uint(len(merged)))
        parts.extend(write_var_uint(begin) + write_var_uint(end - begin) for begin, end in merged)
    return b"".join(parts)
