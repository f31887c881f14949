"""How deep shared types (an XmlElement in an XmlElement, an array in an array…) nest.

yrs deletes a type, and prints one, recursively: deleting a tree nested some tens of
thousands deep (a megabyte, one message) overflows its stack and takes the process
down. A room therefore keeps its document's nesting within a bound, read from the
updates themselves: an item's parent is named by ID only when it has no neighbour,
otherwise it is its neighbour's parent, so both are followed through the update (an
update holding a document's whole state gives its exact nesting).
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from typing import NamedTuple

from .yupdate import ID, Header, headers


class Nesting(NamedTuple):
    # The depth of each type the update holds (the root types' children are at 1).
    depths: dict[ID, int]
    # Whether each of them is exact: False when one is placed beside an item, outside
    # the update, whose depth was not known (it was then counted from 0).
    exact: bool
    # The IDs outside the update on which where its types go depends.
    outside: frozenset[ID]
    # Clients whose types may wait in yrs for structs still to come: their structs
    # skip clocks (-1), or start at a clock the document may not have reached.
    starts: dict[int, int]
    # Each client's newest type in the update, by clock: whether any of its types is
    # still held back is whether that one is.
    newest: dict[int, int]

    @property
    def deepest(self) -> int:
        return max(self.depths.values(), default=0)


def nesting(update: bytes, known: Mapping[ID, int]) -> Nesting:
    """The depth of a checked update's types; ``known`` holds the depths of types
    outside it (a whole state needs none)."""
    found = headers(update)
    index = _Index(found)
    types = [h for h in found if h.is_type]
    # A struct's ID -> the type it is in, when the update holds that type; else the
    # depth of what it is in (None: not known).
    container: dict[ID, ID | None] = {}
    base: dict[ID, int | None] = {}
    outside: set[ID] = set()
    for header in types:
        _resolve(header, index, known, container, base, outside)
    depths: dict[ID, int] = {}
    newest: dict[int, int] = {}
    for header in types:
        _depth((header.client, header.clock), container, base, depths)
        if header.clock > newest.get(header.client, -1):
            newest[header.client] = header.clock
    starts: dict[int, int] = {}
    for header in found:
        if header.is_type or header.is_skip:
            starts.setdefault(header.client, index.start(header.client))
    for header in found:
        if header.is_skip and header.client in starts:
            starts[header.client] = -1
    exact = all(
        base[(h.client, h.clock)] is not None
        for h in types
        if container[(h.client, h.clock)] is None
    )
    return Nesting(depths, exact, frozenset(outside), starts, newest)


def waits(found: Nesting, state: dict[int, int]) -> bool:
    """Whether some of its types could stay pending in a document at ``state`` (and
    be placed later, by an update that holds no type)."""
    if any(start < 0 or start > state.get(client, 0) for client, start in found.starts.items()):
        return True
    return any(clock >= state.get(client, 0) for client, clock in found.outside)


class _Index:
    def __init__(self, found: list[Header]) -> None:
        self._clocks: dict[int, list[int]] = {}
        self._headers: dict[int, list[Header]] = {}
        for header in sorted(found, key=lambda h: (h.client, h.clock)):
            self._clocks.setdefault(header.client, []).append(header.clock)
            self._headers.setdefault(header.client, []).append(header)

    def start(self, client: int) -> int:
        return self._clocks[client][0]

    def find(self, item: ID) -> Header | None:
        client, clock = item
        clocks = self._clocks.get(client)
        if clocks is None:
            return None
        at = bisect.bisect_right(clocks, clock) - 1
        if at < 0:
            return None
        header = self._headers[client][at]
        if clock >= header.clock + header.length or header.is_skip:
            return None
        return header


def _resolve(
    header: Header,
    index: _Index,
    known: Mapping[ID, int],
    container: dict[ID, ID | None],
    base: dict[ID, int | None],
    outside: set[ID],
) -> None:
    """The type ``header`` is in, through its neighbours' parents, without recursion."""
    path: list[ID] = []
    seen: set[ID] = set()
    current: Header | None = header
    result: ID | None = None
    depth: int | None = 0  # of what it is in, when that is outside the update
    while current is not None:
        key = (current.client, current.clock)
        if key in container:
            result, depth = container[key], base.get(key, 0)
            break
        if key in seen:
            break  # a cycle of neighbours: yrs places none of them
        seen.add(key)
        path.append(key)
        if not current.placed:
            break
        if current.parent is not None:
            parent = index.find(current.parent)
            if parent is not None and parent.is_type:
                result = current.parent
            elif parent is None:
                outside.add(current.parent)
                depth = known.get(current.parent)
            break
        neighbour = current.origin or current.right_origin
        if neighbour is None:
            break  # in a root type
        current = index.find(neighbour)
        if current is None:
            outside.add(neighbour)
            # Beside a type of known depth: in what holds it.
            beside = known.get(neighbour)
            depth = None if beside is None else beside - 1
    for key in path:
        container[key] = result
        if result is None:
            base[key] = depth


def _depth(
    key: ID, container: dict[ID, ID | None], base: dict[ID, int | None], depths: dict[ID, int]
) -> None:
    chain: list[ID] = []
    seen: set[ID] = set()
    current: ID | None = key
    level = 0
    while current is not None and current not in depths:
        if current in seen:
            break
        seen.add(current)
        chain.append(current)
        parent = container.get(current)
        if parent is None:
            level = base.get(current) or 0
        current = parent
    if current is not None and current in depths:
        level = depths[current]
    for item in reversed(chain):
        level += 1
        depths[item] = level
