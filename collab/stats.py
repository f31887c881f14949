"""Counters the core keeps as plain integers: nothing on the hot path but an add.
The metrics adapter reads them when it is scraped."""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

from .closecodes import close_reason
from .peer import Departure, Peer


@dataclass
class Stats:
    frames_received: int = 0
    bytes_received: int = 0
    updates_received: int = 0
    updates_refused: int = 0
    throttled_seconds: float = 0.0  # waited by readers of peers over their rate
    # Of peers that are gone; live peers keep their own counts until they close.
    frames_sent: int = 0
    bytes_sent: int = 0
    peers_opened: int = 0
    peers_closed: collections.Counter[str] = field(default_factory=collections.Counter)

    def peer_closed(self, peer: Peer) -> None:
        self.frames_sent += peer.frames_sent
        self.bytes_sent += peer.bytes_sent
        self.peers_closed[departure_label(peer)] += 1


def departure_label(peer: Peer) -> str:
    """Why a peer that is gone was closed, as the ``collab_peers_closed`` label."""
    if peer.departure is Departure.SERVER:
        return close_reason(peer.close_code)
    if peer.departure is Departure.TIMEOUT:
        return "ping_timeout"
    return "client"
