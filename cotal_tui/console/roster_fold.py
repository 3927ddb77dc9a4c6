"""`RosterFold`: the roster rows in display order, kept current from what changed since last tick.

Theory of operation. A row changes only when its presence record changes (a heartbeat, a status,
a new card): the row holds the heartbeat's timestamp, not its age, and every surface renders the
age from that timestamp and the snapshot's `now` (`RosterRow.heartbeat_age_at`), so ageing costs
the model nothing. (Before, the row held a whole-second age and ~2 of every 3 row changes at
5,000 peers were ages ticking over.) A status never comes from the age here: a peer whose
heartbeat is too old is turned offline by the roster's sweep (mesh/roster.py), which writes a
new record, which is a row change like any other.

So a tick visits the peers whose record object changed: the source hands the same `PeerInput`
objects back while nothing changed, so one identity compare of the two tuples (`map(is_not,
...)`, run in C: ~30 µs at 5,000 peers) finds them, and only those cost Python work.

Rows are kept in a list sorted by (status, name, id) beside their sort keys and an id → index
map; a changed row that keeps its key is replaced in place (a dict lookup), one whose status or
name changed moves (a delete and an insort; the index map is then rebuilt once, at the end of
that tick, and bisects stand in for it until then). A peer seen for the first time, appended
after the known ones (the real roster keeps peers in the order they first appeared; offline
peers stay listed), goes in with an insort. Peers leaving the input, a reordered input,
duplicate ids or a new self id fall back to a full rebuild, which reuses every row object whose
record is unchanged.
Either path gives the same rows as building them all from scratch (tests/tui/test_roster_fold.py).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from itertools import compress
from operator import attrgetter, is_not

from cotal_tui.console.format import STATUS_ORDER
from cotal_tui.console.snapshot import RosterRow, build_roster_row
from cotal_tui.console.source import PeerInput

BASE_COUNTS = ("working", "waiting", "idle", "offline")

SortKey = tuple[int, str, str]
PEER_ID = attrgetter("id")
PEER_NAME = attrgetter("name")


def roster_row(p: PeerInput, self_id: str) -> RosterRow:
    return RosterRow(
        id=p.id,
        name=p.name,
        status=p.status,
        kind=p.kind,
        role=p.role,
        activity=p.activity,
        heartbeat_ts=p.ts,
        is_self=p.id == self_id,
        description=p.description,
        tags=p.tags,
        skills=p.skills,
        model=p.model,
        connector=p.connector,
        raw=p.raw,
    )


def sort_key(row: RosterRow) -> SortKey:
    return (STATUS_ORDER.get(row.status, 9), row.name.lower(), row.id)


def full_rows(peers: tuple[PeerInput, ...], self_id: str) -> tuple[RosterRow, ...]:
    """Every row built from scratch, in display order: the reference the fold must equal."""
    by_id = {p.id: roster_row(p, self_id) for p in peers}
    return tuple(sorted(by_id.values(), key=sort_key))


class RosterFold:
    """Owns the roster rows between ticks; `fold()` returns this tick's rows and counts.

    Per peer it keeps the record, row and sort key in three dicts (updating a dict slot
    allocates nothing the cyclic collector tracks; a tuple per change would, and at 5,000 rows
    those promotions are what makes the full collections frequent).
    """

    def __init__(self) -> None:
        self._peers: tuple[PeerInput, ...] | None = None
        """The input tuple last folded; None forces a full rebuild next time."""
        self._self_id = ""
        self._peer: dict[str, PeerInput] = {}
        self._row: dict[str, RosterRow] = {}
        self._key: dict[str, SortKey] = {}
        self._keys: list[SortKey] = []
        self._rows: list[RosterRow] = []
        self._pos: dict[str, int] | None = {}
        """Id → index in `_rows`; None after a move or an insert shifted rows (then bisect, and
        it is rebuilt at the end of the tick)."""
        self._counts: dict[str, int] = {}
        self._rows_out: tuple[RosterRow, ...] = ()
        self._counts_out: dict[str, int] = {}
        self.full_rebuilds = 0
        """How many ticks took the full path (tests and the bench read it)."""

    def fold(
        self, peers: tuple[PeerInput, ...], self_id: str, names: dict[str, str]
    ) -> tuple[tuple[RosterRow, ...], dict[str, int]]:
        """This tick's rows (display order) and status counts; `names` learns every peer name.

        The returned tuple and dict are the same objects as last tick while nothing changed, and
        are never mutated afterwards (a snapshot may hold them).
        """
        old = self._peers
        if old is None or self_id != self._self_id or len(peers) < len(old):
            self._rebuild(peers, self_id, names)
            return self._rows_out, self._counts_out
        if peers is old:
            return self._rows_out, self._counts_out
        changed = False
        n = len(old)
        at = list(compress(range(n), map(is_not, peers, old)))
        if at:
            fresh = list(map(peers.__getitem__, at))
            ids = list(map(PEER_ID, fresh))
            if ids != list(map(PEER_ID, map(old.__getitem__, at))):
                # the source reordered or swapped peers: start over
                self._rebuild(peers, self_id, names)
                return self._rows_out, self._counts_out
            names.update(zip(ids, map(PEER_NAME, fresh), strict=True))
            changed |= self._fold_peers(fresh)
        if len(peers) > n:  # peers that joined, appended after the ones already known
            known = self._peer
            for p in peers[n:]:
                if p.id in known:  # a duplicate id: positions are ambiguous
                    self._rebuild(peers, self_id, names)
                    return self._rows_out, self._counts_out
                names[p.id] = p.name
                self._add(p)
            changed = True
        self._peers = peers
        if self._pos is None:
            self._pos = {row.id: i for i, row in enumerate(self._rows)}
        if changed:
            self._rows_out = tuple(self._rows)
            self._counts_out = dict(self._counts)
        return self._rows_out, self._counts_out

    def row(self, peer_id: str) -> RosterRow | None:
        """The current row of one peer (None: not in the roster)."""
        return self._row.get(peer_id)

    def _fold_peers(self, peers: Iterable[PeerInput]) -> bool:
        """Fold these peers' new records; True when a row changed.

        The hot path of the fold (every heartbeat lands here, ~2,500 a second at 5,000 peers):
        one loop with its state in locals, rows built positionally.
        """
        peer_of, row_of, key_of = self._peer, self._row, self._key
        keys, rows = self._keys, self._rows
        self_id = self._self_id
        changed = False
        for p in peers:
            pid = p.id
            if peer_of[pid] is p:
                continue
            old_row = row_of[pid]
            row = build_roster_row(
                pid, p.name, p.status, p.kind, p.role, p.activity, p.ts, pid == self_id,
                p.description, p.tags, p.skills, p.model, p.connector, p.raw, False,
            )  # fmt: skip
            peer_of[pid] = p
            row_of[pid] = row
            changed = True
            if row.status == old_row.status and row.name == old_row.name:
                pos = self._pos
                rows[pos[pid] if pos is not None else bisect_left(keys, key_of[pid])] = row
            else:
                self._move(pid, row, old_row)
        return changed

    def _move(self, pid: str, row: RosterRow, old_row: RosterRow) -> None:
        """A row whose status or name changed: out of its old place, into its new one."""
        old_key = self._key[pid]
        key = self._key[pid] = sort_key(row)
        at = bisect_left(self._keys, old_key)
        del self._keys[at], self._rows[at]
        at = bisect_left(self._keys, key)
        self._keys.insert(at, key)
        self._rows.insert(at, row)
        self._pos = None
        if old_row.status != row.status:
            counts = self._counts
            counts[old_row.status] -= 1
            if counts[old_row.status] == 0 and old_row.status not in BASE_COUNTS:
                del counts[old_row.status]
            counts[row.status] = counts.get(row.status, 0) + 1

    def _add(self, p: PeerInput) -> None:
        """A peer not seen before: its row goes in at its place (an insort), not a rebuild."""
        pid = p.id
        row = roster_row(p, self._self_id)
        key = sort_key(row)
        self._peer[pid], self._row[pid], self._key[pid] = p, row, key
        at = bisect_left(self._keys, key)
        self._keys.insert(at, key)
        self._rows.insert(at, row)
        self._pos = None
        self._counts[row.status] = self._counts.get(row.status, 0) + 1

    def _rebuild(self, peers: tuple[PeerInput, ...], self_id: str, names: dict[str, str]) -> None:
        """Every row from the input, reusing row objects whose record is unchanged."""
        self.full_rebuilds += 1
        reuse = self_id == self._self_id
        old_peer, old_row, old_key = self._peer, self._row, self._key
        self._peer, self._row, self._key = {}, {}, {}
        for p in peers:
            pid = p.id
            names[pid] = p.name
            if reuse and old_peer.get(pid) is p:
                row, key = old_row[pid], old_key[pid]
            else:
                row = roster_row(p, self_id)
                key = sort_key(row)
            self._peer[pid], self._row[pid], self._key[pid] = p, row, key
        keyed = sorted((key, self._row[pid]) for pid, key in self._key.items())
        counts = dict.fromkeys(BASE_COUNTS, 0)
        for _, row in keyed:
            counts[row.status] = counts.get(row.status, 0) + 1
        self._keys = [k for k, _ in keyed]
        self._rows = [r for _, r in keyed]
        self._pos = {row.id: i for i, row in enumerate(self._rows)}
        self._counts = counts
        self._self_id = self_id
        # Duplicate ids make positions ambiguous: keep rebuilding until the source stops.
        self._peers = peers if len(self._peer) == len(peers) else None
        self._rows_out = tuple(self._rows)
        self._counts_out = dict(counts)
