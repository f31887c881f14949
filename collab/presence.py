"""Awareness (y-protocols presence) for one room, with each client id attributed to
the peer that introduced it, so that a peer's going removes exactly its own entries.

An owner is any hashable value: a connection, or a string naming a relay (another
collab process) whose own connections introduced the id. A client that moves from
another process to this one is claimed by its new connection.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Iterable

from pycrdt import write_var_uint

from .protocol import ProtocolError, Reader

_NULL = "null"


class Presence:
    __slots__ = ("_clocks", "_owned", "_owners", "_states")

    def __init__(self) -> None:
        self._states: dict[int, str] = {}  # client id -> JSON state, as the client encoded it
        self._clocks: dict[int, int] = {}
        self._owners: dict[int, Hashable] = {}
        self._owned: dict[Hashable, set[int]] = {}

    def __len__(self) -> int:
        return len(self._states)

    def states(self) -> dict[int, object]:
        return {client: json.loads(state) for client, state in self._states.items()}

    def apply(self, update: bytes, owner: Hashable) -> bool:
        """Apply an awareness update sent by ``owner``; True if any state changed.

        The whole update is validated before anything is applied, so a malformed one
        changes nothing.
        """
        return self._apply(decode_update(update), owner)

    def _apply(
        self, entries: list[tuple[int, int, str]], owner: Hashable, revive: bool = False
    ) -> bool:
        changed = False
        for client, clock, state in entries:
            current = self._clocks.get(client)
            removal = state == _NULL
            if (
                current is None
                or current < clock
                or (current == clock and removal and client in self._states)
                or (revive and current == clock and not removal and client not in self._states)
            ):
                self._clocks[client] = clock
                if removal:
                    if self._states.pop(client, None) is not None:
                        changed = True
                    self._disown(client)
                else:
                    self._states[client] = state
                    self._own(client, owner)
                    changed = True
        return changed

    def replace_owned(self, update: bytes, owner: Hashable) -> tuple[bool, bytes | None]:
        """Take ``update`` as the whole of ``owner``'s states (a relay's full account):
        whether any state changed, and the removal of its states the update leaves out.

        A listed state that was removed here comes back even at the same clock: it was
        removed on the relay's behalf (it fell silent), not by the client.
        """
        entries = decode_update(update) if update else []
        changed = self._apply(entries, owner, revive=True)
        listed = {client for client, _, _ in entries}
        left_out = [client for client in self._owned.get(owner, ()) if client not in listed]
        if not left_out:
            return changed, None
        for client in left_out:
            self._disown(client)
            del self._states[client]
        return changed, self._encode_removal(left_out)

    def remove_owned_by(self, owner: Hashable) -> bytes | None:
        """Drop every state ``owner`` set; the awareness update announcing it, if any."""
        clients = self._owned.pop(owner, None)
        if not clients:
            return None
        for client in clients:
            del self._owners[client]
            del self._states[client]
        return self._encode_removal(clients)

    def encode_all(self) -> bytes | None:
        return self._encode(list(self._states))

    def encode_owned(self, owners: Iterable[Hashable]) -> bytes | None:
        """The states introduced by ``owners``, as one awareness update, if any."""
        return self._encode([c for owner in owners for c in self._owned.get(owner, ())])

    def _encode(self, clients: list[int]) -> bytes | None:
        if not clients:
            return None
        parts = [write_var_uint(len(clients))]
        parts.extend(_entry(c, self._clocks[c], self._states[c]) for c in clients)
        return b"".join(parts)

    def _encode_removal(self, clients: set[int] | list[int]) -> bytes:
        parts = [write_var_uint(len(clients))]
        parts.extend(_entry(client, self._clocks[client], _NULL) for client in clients)
        return b"".join(parts)

    def _own(self, client: int, owner: Hashable) -> None:
        # The connection that introduced a client id keeps it until the id is removed:
        # another connection updating or clearing it never makes it the owner. Only a
        # relay's claim passes to a connection: the client has moved to this process.
        previous = self._owners.get(client)
        if previous is None or (isinstance(previous, str) and not isinstance(owner, str)):
            self._disown(client)
            self._owners[client] = owner
            self._owned.setdefault(owner, set()).add(client)

    def _disown(self, client: int) -> None:
        previous = self._owners.pop(client, None)
        if previous is not None:
            self._owned[previous].discard(client)


def _entry(client: int, clock: int, state: str) -> bytes:
    encoded = state.encode()
    return write_var_uint(client) + write_var_uint(clock) + write_var_uint(len(encoded)) + encoded


def decode_update(update: bytes) -> list[tuple[int, int, str]]:
    reader = Reader(update)
    count = reader.var_uint()
    if count > len(update):
        raise ProtocolError("awareness entry count exceeds the update's size")
    entries = []
    for _ in range(count):
        client = reader.var_uint()
        clock = reader.var_uint()
        state = reader.var_string()
        try:
            json.loads(state)
        except ValueError:
            raise ProtocolError("awareness state is not JSON") from None
        entries.append((client, clock, state))
    if not reader.done():
        raise ProtocolError("trailing bytes after the awareness update")
    return entries
