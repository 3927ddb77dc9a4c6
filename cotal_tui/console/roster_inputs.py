"""The endpoint's roster as the console's `PeerInput` tuple, converted as records change.

Theory of operation. The console model reads the roster every tick (ten a second); at 5,000
peers the roster stores 2,500 heartbeats a second, so converting (or even visiting) every entry
per tick is what made a tick O(roster). `PeerInputs.read` asks the roster for the ids written
since the version it last read (`Roster.changes_since`, mesh/roster.py) and converts only those
whose stored record object changed. The tuple keeps every peer where it first appeared: a peer
seen for the first time is appended, one that changed is replaced in place, and offline peers
stay (the roster never drops an entry). That is the shape `RosterFold` folds in O(changes): an
identity compare of the old and new tuples finds the replaced ones, the appended ones are
inserted at their place. A clear, or a reader that fell behind the log, reads every entry again
(in name order, reusing the converted object of every record that did not change).

A record's wire form (`raw`, for the detail screen's raw JSON) costs ~10 µs to build; it is
built when first read (`WireRecord`), not per heartbeat.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from operator import is_not
from typing import TYPE_CHECKING, Any

from cotal_tui.console.source import PeerInput

if TYPE_CHECKING:
    from cotal_tui.mesh.roster import Roster
    from cotal_tui.protocol.models import Presence


class WireRecord(Mapping[str, Any]):
    """A presence record's wire form (`Presence.to_wire()`), built on first access."""

    __slots__ = ("_record", "_wire")

    def __init__(self, record: Presence) -> None:
        self._record = record
        self._wire: dict[str, Any] | None = None

    def _dict(self) -> dict[str, Any]:
        if self._wire is None:
            self._wire = self._record.to_wire()
        return self._wire

    def __getitem__(self, key: str) -> Any:
        return self._dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._dict())

    def __len__(self) -> int:
        return len(self._dict())

    def __repr__(self) -> str:
        return repr(self._dict())


def peer_input(p: Presence) -> PeerInput:
    card = p.card
    meta = card.meta or {}
    return PeerInput(
        id=card.id,
        name=card.name,
        kind=card.kind,  # type: ignore[arg-type]
        status=p.status,  # type: ignore[arg-type]
        ts=p.ts,
        role=card.role,
        activity=p.activity,
        description=card.description,
        tags=tuple(card.tags or ()),
        skills=tuple(s.name for s in card.skills or ()),
        model=str(meta["model"]) if meta.get("model") is not None else None,
        connector=str(meta["connector"]) if meta.get("connector") is not None else None,
        raw=WireRecord(p),
    )


class PeerInputs:
    """One reader of one `Roster`: `read()` gives its peers as `PeerInput`s, updated from the
    roster's change log. The returned tuple is the same object while nothing was written."""

    def __init__(self) -> None:
        self._roster: Roster | None = None
        self._version: int | None = None
        self._records: dict[str, Presence] = {}
        """Per id, the stored record its `PeerInput` was converted from."""
        self._peers: list[PeerInput] = []
        self._at: dict[str, int] = {}
        self._out: tuple[PeerInput, ...] = ()
        self.names: dict[str, str] = {}
        """Id → name of every peer read (kept, like the tuple, from the changes)."""
        self.full_reads = 0
        """Reads that visited every entry (tests read it)."""

    def read(self, roster: Roster) -> tuple[PeerInput, ...]:
        changes = None
        if roster is self._roster and self._version is not None:
            changes = roster.changes_since(self._version)
        if changes is None:
            self._read_all(roster)
        elif changes:
            self._apply(roster, changes)
        self._roster = roster
        self._version = roster.version
        return self._out

    def _apply(self, roster: Roster, changes: list[str]) -> None:
        records, peers, at = self._records, self._peers, self._at
        changed = False
        for peer_id in dict.fromkeys(changes):
            record = roster.get(peer_id)
            if record is None:  # written, then gone: only a clear does that, and it resets the log
                self._read_all(roster)
                return
            if records.get(peer_id) is record:
                continue
            records[peer_id] = record
            peer = peer_input(record)
            self.names[peer_id] = peer.name
            i = at.get(peer_id)
            if i is None:
                at[peer_id] = len(peers)
                peers.append(peer)
            else:
                peers[i] = peer
            changed = True
        if changed:
            self._out = tuple(peers)

    def _read_all(self, roster: Roster) -> None:
        self.full_reads += 1
        old_records, old_peers, old_at = self._records, self._peers, self._at
        self._records, self._peers, self._at, self.names = {}, [], {}, {}
        for record in roster.entries():
            peer_id = record.card.id
            i = old_at.get(peer_id)
            if i is not None and old_records[peer_id] is record:
                peer = old_peers[i]
            else:
                peer = peer_input(record)
            self._records[peer_id] = record
            self.names[peer_id] = peer.name
            self._at[peer_id] = len(self._peers)
            self._peers.append(peer)
        out = tuple(self._peers)
        if len(out) != len(self._out) or any(map(is_not, out, self._out)):
            self._out = out
