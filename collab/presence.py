"""Awareness (y-protocols presence) for one room. Each client id belongs to the peer
that introduced it: only that peer may change or remove its entry, and a peer's going
removes exactly its own entries.

An owner is any hashable value: a connection, or a string naming a relay (another
collab process) whose own connections introduced the id. A client that moves from
another process to this one is claimed by its new connection; a relay never changes
an entry that a connection here owns.

Entries for ids owned by others are dropped, not refused: a stock y-websocket client
sends back every awareness change it receives, other clients' entries included. Only
an entry that would have changed another connection's state is worth a warning.

The tabs of one browser also pass each other's entries on to the server (y-websocket's
BroadcastChannel): a new tab's entry comes from the open tabs before its own socket
opens. So a connection's own client id, the one entry of its first awareness update
(what a stock client sends first), takes that id over from a connection that only
passed it on: one whose first update did not show it. Ids past a connection's bound
are dropped, not a reason to close it.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Hashable, Iterable
from dataclasses import dataclass

from pycrdt import write_var_uint

from .closecodes import CloseCode
from .protocol import ProtocolError, Reader

log = logging.getLogger("collab.presence")

_NULL = "null"

# The deepest nesting of an awareness state: a user and a cursor need four or five
# levels. Checked without recursion, before json.loads, which recurses per level.
MAX_DEPTH = 32

Entry = tuple[int, int, str]  # client id, clock, JSON state ("null": removed)


@dataclass(frozen=True, slots=True)
class PresenceLimits:
    clients_per_peer: int = 4  # client ids one connection may introduce
    state_bytes: int = 64 * 1024  # one client's JSON state
    clients_per_room: int = 256  # entries a room holds: a joiner is sent them all


class PresenceRefused(ProtocolError):
    """A connection's awareness update breaks one of its bounds: it is closed with
    ``code``, and nothing of the update is applied."""

    def __init__(self, message: str, code: CloseCode, reason: str) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason


class Presence:
    __slots__ = (
        "_clocks",
        "_own_ids",
        "_owned",
        "_owners",
        "_removed",
        "_states",
        "_warned",
        "limits",
        "name",
    )

    def __init__(self, limits: PresenceLimits | None = None, name: str = "") -> None:
        self.limits = limits or PresenceLimits()
        self.name = name  # the room's, for log lines
        self._states: dict[int, str] = {}  # client id -> JSON state, as the client encoded it
        # Clocks of the owned ids (a connection keeps an id it set to null).
        self._clocks: dict[int, int] = {}
        # Clocks of ids removed with their owner, oldest first and bounded: so that a
        # peer echoing a state it received just before the removal cannot revive it.
        self._removed: dict[int, int] = {}
        self._owners: dict[int, Hashable] = {}
        self._owned: dict[Hashable, set[int]] = {}
        # The ids a connection's first update showed: its own, never taken from it. The
        # one id of a first update (a stock client's own) takes an id over from a
        # connection that only passed it on.
        self._own_ids: dict[Hashable, frozenset[int]] = {}
        self._warned: set[Hashable] = set()

    def __len__(self) -> int:
        return len(self._states)

    def states(self) -> dict[int, object]:
        return {client: json.loads(state) for client, state in self._states.items()}

    def apply(self, update: bytes, owner: Hashable) -> bytes | None:
        """Apply an awareness update sent by ``owner``: the update of what changed, to
        pass on (``update`` itself when all of it applied), or None if nothing did.

        The whole update is checked before anything is applied: a malformed one, one
        of more entries than a room and a connection hold, or a connection's state
        over the size bound raises and changes nothing. Ids past a connection's bound
        are left out.
        """
        listed = _decode(update, self._most(owner))
        checked = self._checked(listed, owner)
        if owner not in self._own_ids and not isinstance(owner, str):
            self._own_ids[owner] = frozenset(c for c, _, state in checked if state != _NULL)
        changes, taken = self._plan(checked, owner)
        if taken is not None:
            self._owned[self._owners[taken]].discard(taken)
            self._owners[taken] = owner
            self._owned.setdefault(owner, set()).add(taken)
        self._apply(changes, owner)
        if changes and len(changes) == len(listed):
            return update
        return _encode(changes)

    def replace_owned(self, update: bytes, owner: str) -> tuple[bytes | None, bytes | None]:
        """Take ``update`` as the whole of relay ``owner``'s states (its full account):
        the update of what changed, and the removal of its states the update leaves out.

        A listed state that was removed here comes back even at the same clock: it was
        removed on the relay's behalf (it fell silent), not by the client.
        """
        listed = _decode(update) if update else []
        changes, _ = self._plan(self._checked(listed, owner), owner, revive=True)
        self._apply(changes, owner)
        clients = {client for client, _, _ in listed}
        left_out = [client for client in self._owned.get(owner, ()) if client not in clients]
        changed = _encode(changes)
        if not left_out:
            return changed, None
        removal = self._encode_removal(left_out)
        for client in left_out:
            self._release(client)
        return changed, removal

    def remove_owned_by(self, owner: Hashable) -> bytes | None:
        """Drop every id ``owner`` introduced; the awareness update announcing it, if any."""
        self._warned.discard(owner)
        self._own_ids.pop(owner, None)
        clients = self._owned.pop(owner, None)
        if not clients:
            return None
        shown = [client for client in clients if client in self._states]
        removal = self._encode_removal(shown)
        for client in clients:
            del self._owners[client]
            self._states.pop(client, None)
            self._tombstone(client)
        return removal

    def encode_all(self) -> bytes | None:
        return self._encode(list(self._states))

    def encode_owned(self, owners: Iterable[Hashable]) -> bytes | None:
        """The states introduced by ``owners``, as one awareness update, if any."""
        states = self._states
        return self._encode([c for o in owners for c in self._owned.get(o, ()) if c in states])

    def _most(self, owner: Hashable) -> int | None:
        # A stock client sends its own entry, and back what it was sent (up to a room's).
        if isinstance(owner, str):
            return None
        return self.limits.clients_per_room + self.limits.clients_per_peer

    def _checked(self, entries: list[Entry], owner: Hashable) -> list[Entry]:
        """``entries`` but those over the size limit, from a relay; raises if one is
        malformed, or over the limit from a connection."""
        limit = self.limits.state_bytes
        kept = []
        for client, clock, state in entries:
            size = len(state) if state.isascii() else len(state.encode())
            if size > limit:
                if not isinstance(owner, str):
                    raise PresenceRefused(
                        f"a {size}-byte awareness state (the limit is {limit})",
                        CloseCode.MESSAGE_TOO_BIG,
                        "awareness state too big",
                    )
                self._warn(owner, "sent a %d-byte state of client %d; ignored", size, client)
                continue
            _check_json(state)
            kept.append((client, clock, state))
        return kept

    def _plan(
        self, entries: list[Entry], owner: Hashable, revive: bool = False
    ) -> tuple[list[Entry], int | None]:
        """The entries of ``owner``'s that change what is shown, and the id it takes
        over, if any (see ``_takes_over``). Ids past a connection's bound are left out."""
        relayed = isinstance(owner, str)
        latest: dict[int, tuple[int, str]] = {}
        for client, clock, state in entries:  # one entry per client: the newest
            seen = latest.get(client)
            if seen is None or (clock, state == _NULL) > (seen[0], seen[1] == _NULL):
                latest[client] = (clock, state)
        first = self._own_ids.get(owner, ())
        own = next(iter(first)) if len(first) == 1 else None
        if own in latest and len(latest) > 1:  # its own id first: the last to be left out
            latest = {own: latest.pop(own), **latest}
        changes: list[Entry] = []
        added = 0
        taken = None
        room = self.limits.clients_per_peer - len(self._owned.get(owner, ()))
        for client, (clock, state) in latest.items():
            removal = state == _NULL
            shown = client in self._states
            current = self._clocks.get(client, self._removed.get(client))
            holder = self._owners.get(client)
            if client == own and holder not in (None, owner) and self._takes_over(client, holder):
                if room <= 0:
                    self._past_bound(owner, client)
                    continue
                room -= 1
                taken, holder = client, owner  # even by an echo: the id changes hands
            if removal and not shown:
                continue  # nothing to remove
            if not (
                current is None
                or current < clock
                or (current == clock and removal)
                or (revive and current == clock and not shown)
            ):
                continue  # stale, or what was shown already (an echo)
            claims = not relayed
            if holder is None:
                if len(self._owners) + added >= self.limits.clients_per_room:
                    self._warn(owner, "added client %d to a full presence; ignored", client)
                    continue
            elif holder == owner:
                claims = False
            elif not isinstance(holder, str):
                if not relayed and current is not None and current < clock:
                    self._warn(owner, "tried to change client %d, another's; ignored", client)
                continue
            elif not relayed and removal:
                continue  # another process's client: only it says when it goes
            if claims:  # a new id, or one that moved here from another process
                if room <= 0:
                    self._past_bound(owner, client)
                    continue
                room -= 1
            added += holder is None
            changes.append((client, clock, state))
        return changes, taken

    def _past_bound(self, owner: Hashable, client: int) -> None:
        limit = self.limits.clients_per_peer
        self._warn(owner, "went past %d awareness client ids; client %d ignored", limit, client)

    def _takes_over(self, client: int, holder: Hashable) -> bool:
        """Whether a connection whose own id is ``client`` takes it from ``holder``: a
        connection that only passed it on (another tab of the same browser)."""
        return not isinstance(holder, str) and client not in self._own_ids.get(holder, ())

    def _apply(self, changes: list[Entry], owner: Hashable) -> None:
        for client, clock, state in changes:
            if state == _NULL:
                del self._states[client]
                self._clocks[client] = clock
                if isinstance(self._owners[client], str):
                    self._release(client)  # a connection keeps its id; a relay's goes
            else:
                self._removed.pop(client, None)
                self._clocks[client] = clock
                self._states[client] = state
                self._own(client, owner)

    def _own(self, client: int, owner: Hashable) -> None:
        # The connection that introduced a client id keeps it until it goes. Only a
        # relay's claim passes to a connection: the client has moved to this process.
        previous = self._owners.get(client)
        if previous is None or (isinstance(previous, str) and not isinstance(owner, str)):
            if previous is not None:
                self._owned[previous].discard(client)
            self._owners[client] = owner
            self._owned.setdefault(owner, set()).add(client)

    def _release(self, client: int) -> None:
        """Forget a client id: its owner, its state, and (but for a while) its clock."""
        self._owned[self._owners.pop(client)].discard(client)
        self._states.pop(client, None)
        self._tombstone(client)

    def _tombstone(self, client: int) -> None:
        self._removed[client] = self._clocks.pop(client)
        if len(self._removed) > self.limits.clients_per_room:
            del self._removed[next(iter(self._removed))]

    def _warn(self, owner: Hashable, message: str, *args: object) -> None:
        # Once per owner: the rest at debug level, so that a flood is not a log flood.
        level = logging.DEBUG if owner in self._warned else logging.WARNING
        self._warned.add(owner)
        log.log(level, "room %r: %s " + message, self.name, owner, *args, extra={"doc": self.name})

    def _encode(self, clients: list[int]) -> bytes | None:
        return _encode([(c, self._clocks[c], self._states[c]) for c in clients])

    def _encode_removal(self, clients: list[int]) -> bytes | None:
        return _encode([(c, self._clocks[c], _NULL) for c in clients])


def _encode(entries: list[Entry]) -> bytes | None:
    if not entries:
        return None
    parts = [write_var_uint(len(entries))]
    parts.extend(_entry(client, clock, state) for client, clock, state in entries)
    return b"".join(parts)


def _entry(client: int, clock: int, state: str) -> bytes:
    encoded = state.encode()
    return write_var_uint(client) + write_var_uint(clock) + write_var_uint(len(encoded)) + encoded


def decode_update(update: bytes) -> list[Entry]:
    """The entries of an awareness update; ProtocolError if it is malformed."""
    entries = _decode(update)
    for _, _, state in entries:
        _check_json(state)
    return entries


def _decode(update: bytes, most: int | None = None) -> list[Entry]:
    reader = Reader(update)
    count = reader.var_uint()
    if count > len(update):
        raise ProtocolError("awareness entry count exceeds the update's size")
    if most is not None and count > most:
        raise PresenceRefused(
            f"an awareness update of {count} entries (the limit is {most})",
            CloseCode.POLICY_VIOLATION,
            "too many awareness clients",
        )
    entries = []
    for _ in range(count):
        client = reader.var_uint()
        clock = reader.var_uint()
        entries.append((client, clock, reader.var_string()))
    if not reader.done():
        raise ProtocolError("trailing bytes after the awareness update")
    return entries


def _check_json(state: str) -> None:
    if state.count("[") + state.count("{") > MAX_DEPTH and _nests_deeper(state, MAX_DEPTH):
        raise ProtocolError(f"awareness state nested deeper than {MAX_DEPTH}")
    try:
        json.loads(state)
    except (ValueError, RecursionError):
        raise ProtocolError("awareness state is not JSON") from None


_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


def _nests_deeper(text: str, limit: int) -> bool:
    """Whether JSON text nests deeper than ``limit``, by counting its brackets outside
    strings, in a loop: the text is not parsed (nor need it be valid)."""
    depth = 0
    for bracket in _NOT_BRACKET.sub("", _STRING.sub("", text)):
        if bracket in "[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False
