"""Where a deletion could split a character of two UTF-16 units (an emoji) in a room's
document, known without reading the document.

yrs splits an item where a deletion starts or ends, and one split inside such a
character encodes one unit short: the document no longer decodes. Reading the document
at a deletion's edge costs what the document holds (yrs encodes its whole delete set
each time), so a room keeps the edge inside each such character of the strings that
reached its document (``Checked.astral``, and what yrs integrated) and reads the
document only at those edges, and at edges in what it held when it was built
(``base``) until it has read it that way ``READS_BEFORE_INDEXING`` times; it then reads
the whole document once (a read costs about 1/60 of that) and needs the base no more.
"""

from __future__ import annotations

from typing import Any

from pycrdt import Doc

from . import yupdate
from .state import decode_state_vector, encode_state_vector

READS_BEFORE_INDEXING = 64

_NO_CLOCKS: frozenset[int] = frozenset()


class AstralEdges:
    """A superset of the edges inside characters of two units in a document: an edge
    in it is checked against the document, an edge not in it needs no check, except
    below ``base`` (what the document held when this started: not known)."""

    __slots__ = ("_base", "_clocks", "_reads")

    def __init__(self) -> None:
        self._clocks: dict[int, set[int]] = {}  # client -> clocks
        self._base: dict[int, int] | None = None  # None: the document's state, once read
        self._reads = 0  # of the document, since the last time it was read whole

    def start(self, state: dict[int, int] | None) -> None:
        """What the document holds from now on (its state; None: read it when needed)
        is not known to be free of such characters."""
        self._base = state

    def note(self, edges: list[yupdate.ID]) -> None:
        """Edges inside such characters, of structs that reach the document now or later."""
        for client, clock in edges:
            clocks = self._clocks.get(client)
            if clocks is None:
                clocks = self._clocks[client] = set()
            clocks.add(clock)

    def check(
        self,
        doc: Doc[Any],
        state: dict[int, int],
        deletions: yupdate.Deletions,
        own: list[yupdate.ID],
    ) -> None:
        """MalformedUpdate if one of ``deletions`` (of an update whose own edges are
        ``own``) starts or ends inside a character of two units of ``doc`` (at
        ``state``), of the update, or of structs yrs holds back for structs to come."""
        base = self._base
        if base is None:
            base = self._base = decode_state_vector(doc.get_state())
        mine = set(own)
        reads: list[yupdate.ID] = []
        for client, clock, length in deletions:
            known = state.get(client, 0)
            inside = self._clocks.get(client, _NO_CLOCKS)
            for edge in (clock, clock + length):
                if edge >= known:
                    # In structs the document does not hold (yet): the update's own,
                    # or ones yrs holds back; a deletion there splits them when they go in.
                    if edge in inside or (client, edge) in mine:
                        raise yupdate.MalformedUpdate("a deletion splits a character")
                elif edge > 0 and (edge < base.get(client, 0) or edge in inside):
                    reads.append((client, edge))
        if not reads:
            return
        if self._reads + len(reads) > READS_BEFORE_INDEXING and self._index(doc, state):
            reads = [(c, edge) for c, edge in reads if edge in self._clocks.get(c, _NO_CLOCKS)]
        self._reads += len(reads)
        for client, edge in reads:
            # The document from the unit before the edge on: a character of two units
            # there means the edge is inside it.
            since = encode_state_vector({**state, client: edge - 1})
            if yupdate.starts_astral(doc.get_update(since)):
                raise yupdate.MalformedUpdate("a deletion splits a character")
            clocks = self._clocks.get(client)
            if clocks is not None:
                clocks.discard(edge)  # not inside one (deleted, or never was): nor ever will be

    def _index(self, doc: Doc[Any], state: dict[int, int]) -> bool:
        """Read the edges of the whole document (at ``state``): then there is no base,
        and none of what was deleted is kept. False if it cannot be read."""
        try:
            edges = yupdate.astral(doc.get_update())
        except yupdate.MalformedUpdate:
            self._reads = 0  # checked at each edge, as before; tried again after as many
            return False
        # Structs yrs holds back are not in the document's encoding: kept.
        self._clocks = {
            client: {clock for clock in clocks if clock >= state.get(client, 0)}
            for client, clocks in self._clocks.items()
        }
        self.note(edges)
        self._base = {}
        self._reads = 0
        return True
