"""`RosterFold`: the roster rows in display order, kept current from what changed since last tick.

Theory of operation. A row changes for two reasons only: its presence record changed (a
heartbeat, a status, a new card), or its heartbeat age crossed a whole second. So a tick visits:

- the peers whose record object changed: the source hands the same `PeerInput` objects back
  while nothing changed, so one identity compare of the two tuples (`map(is_not, ...)`, run in C:
  ~30 µs at 5,000 peers) finds them, and only those cost Python work;
- the peers whose age bucket is due: a heap keyed by the time each row's whole-second age next
  turns over, so ageing costs one pop per row that actually changes.

Rows are kept in a list sorted by (status, name, id) beside their sort keys; a changed row that
keeps its key is replaced in place (a bisect), one whose status or name changed moves (a delete
and an insort). Peers coming or going, a clock that went backwards, duplicate ids or a new self
id fall back to a full rebuild, which reuses every row object whose record and age are unchanged.
Either path gives the same rows as building them all from scratch (tests/tui/test_roster_fold.py).
"""

from __future__ import annotations

import heapq
from bisect import bisect_left
from itertools import compress
from operator import is_not

from cotal_tui.console.format import STATUS_ORDER
from cotal_tui.console.snapshot import RosterRow
from cotal_tui.console.source import Ms, PeerInput

AGE_STEP_MS = 1_000
"""Heartbeat ages are whole seconds: a 2 s heartbeat needs no finer grain, and rows stay put."""

BASE_COUNTS = ("working", "waiting", "idle", "offline")

SortKey = tuple[int, str, str]


def age_bucket(ts: Ms, now: Ms) -> int:
    """Whole seconds since the heartbeat; -1 when the writer's clock is ahead (age unknown)."""
    delta = now - ts
    return -1 if delta < 0 else delta // AGE_STEP_MS


def bucket_due(ts: Ms, bucket: int) -> Ms:
    """When a row in `bucket` next changes: its age turns over, or a future `ts` becomes now."""
    return ts if bucket < 0 else ts + (bucket + 1) * AGE_STEP_MS


def roster_row(p: PeerInput, self_id: str, bucket: int) -> RosterRow:
    return RosterRow(
        id=p.id,
        name=p.name,
        status=p.status,
        kind=p.kind,
        role=p.role,
        activity=p.activity,
        heartbeat_age_ms=None if bucket < 0 else bucket * AGE_STEP_MS,
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


def full_rows(peers: tuple[PeerInput, ...], self_id: str, now: Ms) -> tuple[RosterRow, ...]:
    """Every row built from scratch, in display order: the reference the fold must equal."""
    by_id = {p.id: roster_row(p, self_id, age_bucket(p.ts, now)) for p in peers}
    return tuple(sorted(by_id.values(), key=sort_key))


class RosterFold:
    """Owns the roster rows between ticks; `fold()` returns this tick's rows and counts."""

    def __init__(self) -> None:
        self._peers: tuple[PeerInput, ...] | None = None
        """The input tuple last folded; None forces a full rebuild next time."""
        self._self_id: str | None = None
        self._now: Ms | None = None
        self._entries: dict[str, tuple[PeerInput, int, RosterRow, SortKey]] = {}
        self._keys: list[SortKey] = []
        self._rows: list[RosterRow] = []
        self._due: list[tuple[Ms, int, str, PeerInput]] = []
        self._pushes = 0
        self._counts: dict[str, int] = {}
        self._rows_out: tuple[RosterRow, ...] = ()
        self._counts_out: dict[str, int] = {}
        self.full_rebuilds = 0
        """How many ticks took the full path (tests and the bench read it)."""

    def fold(
        self, peers: tuple[PeerInput, ...], self_id: str, now: Ms, names: dict[str, str]
    ) -> tuple[tuple[RosterRow, ...], dict[str, int]]:
        """This tick's rows (display order) and status counts; `names` learns every peer name.

        The returned tuple and dict are the same objects as last tick while nothing changed, and
        are never mutated afterwards (a snapshot may hold them).
        """
        old = self._peers
        if (
            old is None
            or self_id != self._self_id
            or self._now is None
            or now < self._now
            or len(peers) != len(old)
        ):
            self._rebuild(peers, self_id, now, names)
            return self._rows_out, self._counts_out
        changed = False
        if peers is not old:
            for i in compress(range(len(peers)), map(is_not, peers, old)):
                p = peers[i]
                if p.id != old[i].id:  # the source reordered or swapped peers: start over
                    self._rebuild(peers, self_id, now, names)
                    return self._rows_out, self._counts_out
                names[p.id] = p.name
                changed |= self._apply(p, now)
            self._peers = peers
        due = self._due
        entries = self._entries
        while due and due[0][0] <= now:
            _, _, pid, p = heapq.heappop(due)
            entry = entries.get(pid)
            if entry is not None and entry[0] is p:
                changed |= self._apply(p, now)
        self._now = now
        if changed:
            self._rows_out = tuple(self._rows)
            self._counts_out = dict(self._counts)
        return self._rows_out, self._counts_out

    def _push(self, p: PeerInput, bucket: int) -> None:
        self._pushes += 1
        heapq.heappush(self._due, (bucket_due(p.ts, bucket), self._pushes, p.id, p))

    def _apply(self, p: PeerInput, now: Ms) -> bool:
        """Fold one peer's current record at `now`; True when its row changed."""
        old_p, old_bucket, old_row, old_key = self._entries[p.id]
        bucket = age_bucket(p.ts, now)
        if old_p is p and old_bucket == bucket:
            return False
        row = roster_row(p, self._self_id or "", bucket)
        self._push(p, bucket)
        if row.status == old_row.status and row.name == old_row.name:
            self._entries[p.id] = (p, bucket, row, old_key)
            self._rows[bisect_left(self._keys, old_key)] = row
        else:
            key = sort_key(row)
            self._entries[p.id] = (p, bucket, row, key)
            at = bisect_left(self._keys, old_key)
            del self._keys[at], self._rows[at]
            at = bisect_left(self._keys, key)
            self._keys.insert(at, key)
            self._rows.insert(at, row)
        if old_row.status != row.status:
            counts = self._counts
            counts[old_row.status] -= 1
            if counts[old_row.status] == 0 and old_row.status not in BASE_COUNTS:
                del counts[old_row.status]
            counts[row.status] = counts.get(row.status, 0) + 1
        return True

    def _rebuild(
        self, peers: tuple[PeerInput, ...], self_id: str, now: Ms, names: dict[str, str]
    ) -> None:
        """Every row from the input, reusing row objects whose record and age are unchanged."""
        self.full_rebuilds += 1
        old = self._entries if self_id == self._self_id else {}
        entries: dict[str, tuple[PeerInput, int, RosterRow, SortKey]] = {}
        for p in peers:
            names[p.id] = p.name
            bucket = age_bucket(p.ts, now)
            hit = old.get(p.id)
            if hit is not None and hit[0] is p and hit[1] == bucket:
                entries[p.id] = hit
            else:
                row = roster_row(p, self_id, bucket)
                entries[p.id] = (p, bucket, row, sort_key(row))
        counts = dict.fromkeys(BASE_COUNTS, 0)
        keyed = sorted((e[3], e[2]) for e in entries.values())
        for _, row in keyed:
            counts[row.status] = counts.get(row.status, 0) + 1
        self._entries = entries
        self._keys = [k for k, _ in keyed]
        self._rows = [r for _, r in keyed]
        self._due = []
        self._pushes = 0
        for p, bucket, _, _ in entries.values():
            self._push(p, bucket)
        self._counts = counts
        self._self_id = self_id
        self._now = now
        # Duplicate ids make positions ambiguous: keep rebuilding until the source stops.
        self._peers = peers if len(entries) == len(peers) else None
        self._rows_out = tuple(self._rows)
        self._counts_out = dict(counts)
