"""`RosterFold`: the roster rows in display order, kept current from what changed since last tick.

Theory of operation. A row changes for two reasons only: its presence record changed (a
heartbeat, a status, a new card), or its heartbeat age crossed a whole second. So a tick visits:

- the peers whose record object changed: the source hands the same `PeerInput` objects back
  while nothing changed, so one identity compare of the two tuples (`map(is_not, ...)`, run in C:
  ~30 µs at 5,000 peers) finds them, and only those cost Python work;
- the peers whose age bucket is due: a wheel of 10 ms slots (a heap of slot numbers, a list of
  ids per slot) keyed by the time each row's whole-second age next turns over, so ageing costs
  about one visit per row that actually changes.

Rows are kept in a list sorted by (status, name, id) beside their sort keys and an id → index
map; a changed row that keeps its key is replaced in place (a dict lookup), one whose status or
name changed moves (a delete and an insort; the index map is then rebuilt once, at the end of
that tick, and bisects stand in for it until then). A peer seen for the first time, appended
after the known ones (the real roster keeps peers in the order they first appeared; offline
peers stay listed), goes in with an insort. Peers leaving the input, a reordered input, a clock
that went backwards, duplicate ids or a new self id fall back to a full rebuild, which reuses
every row object whose record and age are unchanged.
Either path gives the same rows as building them all from scratch (tests/tui/test_roster_fold.py).
"""

from __future__ import annotations

import heapq
from bisect import bisect_left
from collections.abc import Iterable
from itertools import compress
from operator import attrgetter, is_not

from cotal_tui.console.format import STATUS_ORDER
from cotal_tui.console.snapshot import RosterRow, build_roster_row
from cotal_tui.console.source import Ms, PeerInput

AGE_STEP_MS = 1_000
"""Heartbeat ages are whole seconds: a 2 s heartbeat needs no finer grain, and rows stay put."""

BASE_COUNTS = ("working", "waiting", "idle", "offline")

SortKey = tuple[int, str, str]
PEER_ID = attrgetter("id")
PEER_NAME = attrgetter("name")


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


SLOT_MS = 10
"""Grain of the due-time wheel: one list of peer ids per 10 ms in which ages turn over (a finer
grain than the tick, so few ids are looked at before they are due)."""


class RosterFold:
    """Owns the roster rows between ticks; `fold()` returns this tick's rows and counts.

    Per peer it keeps the record, age bucket, row and sort key in four dicts (updating a dict
    slot allocates nothing the cyclic collector tracks; a tuple per change would, and at 5,000
    rows a second those promotions are what makes the full collections frequent).
    """

    def __init__(self) -> None:
        self._peers: tuple[PeerInput, ...] | None = None
        """The input tuple last folded; None forces a full rebuild next time."""
        self._self_id = ""
        self._now: Ms | None = None
        self._peer: dict[str, PeerInput] = {}
        self._bucket: dict[str, int] = {}
        self._row: dict[str, RosterRow] = {}
        self._key: dict[str, SortKey] = {}
        self._keys: list[SortKey] = []
        self._rows: list[RosterRow] = []
        self._pos: dict[str, int] | None = {}
        """Id → index in `_rows`; None after a move or an insert shifted rows (then bisect, and
        it is rebuilt at the end of the tick)."""
        self._wheel: dict[int, list[str]] = {}
        """Slot (due // SLOT_MS) → ids whose age may turn over then (stale ids are skipped)."""
        self._slots: list[int] = []
        """A heap of the wheel's slots."""
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
            or len(peers) < len(old)
        ):
            self._rebuild(peers, self_id, now, names)
            return self._rows_out, self._counts_out
        changed = False
        if peers is not old:
            n = len(old)
            at = list(compress(range(n), map(is_not, peers, old)))
            if at:
                fresh = list(map(peers.__getitem__, at))
                ids = list(map(PEER_ID, fresh))
                if ids != list(map(PEER_ID, map(old.__getitem__, at))):
                    # the source reordered or swapped peers: start over
                    self._rebuild(peers, self_id, now, names)
                    return self._rows_out, self._counts_out
                names.update(zip(ids, map(PEER_NAME, fresh), strict=True))
                changed |= self._fold_peers(fresh, now, None)
            if len(peers) > n:  # peers that joined, appended after the ones already known
                known = self._peer
                for p in peers[n:]:
                    if p.id in known:  # a duplicate id: positions are ambiguous
                        self._rebuild(peers, self_id, now, names)
                        return self._rows_out, self._counts_out
                    names[p.id] = p.name
                    self._add(p, now)
                changed = True
            self._peers = peers
        slots, wheel = self._slots, self._wheel
        current = now // SLOT_MS
        due: list[str] = []
        while slots and slots[0] <= current:
            due += wheel.pop(heapq.heappop(slots))
        if due:
            changed |= self._fold_peers(map(self._peer.__getitem__, due), now, current)
        self._now = now
        if self._pos is None:
            self._pos = {row.id: i for i, row in enumerate(self._rows)}
        if changed:
            self._rows_out = tuple(self._rows)
            self._counts_out = dict(self._counts)
        return self._rows_out, self._counts_out

    def row(self, peer_id: str) -> RosterRow | None:
        """The current row of one peer (None: not in the roster)."""
        return self._row.get(peer_id)

    def _queue(self, pid: str, slot: int) -> None:
        ids = self._wheel.get(slot)
        if ids is None:
            ids = self._wheel[slot] = []
            heapq.heappush(self._slots, slot)
        ids.append(pid)

    def _fold_peers(self, peers: Iterable[PeerInput], now: Ms, current: int | None) -> bool:
        """Fold these peers' current records at `now`; True when a row changed.

        The hot path of the fold (every heartbeat and every age turnover lands here, ~7,500 a
        second at 5,000 peers): one loop with its state in locals, rows built positionally.
        `current` is the wheel slot being emptied when these ids came off the wheel: an id whose
        age has not turned yet but is due within that slot is queued there again (looked at
        next tick); one due later has a newer entry on the wheel and is dropped.
        """
        peer_of, bucket_of, row_of, key_of = self._peer, self._bucket, self._row, self._key
        wheel, slots, keys, rows = self._wheel, self._slots, self._keys, self._rows
        self_id = self._self_id
        again: list[str] = []
        changed = False
        for p in peers:
            pid = p.id
            ts = p.ts
            delta = now - ts
            bucket = -1 if delta < 0 else delta // AGE_STEP_MS
            if bucket_of[pid] == bucket and peer_of[pid] is p:
                if current is not None and (
                    (ts if bucket < 0 else ts + (bucket + 1) * AGE_STEP_MS) // SLOT_MS <= current
                ):
                    again.append(pid)
                continue
            old_row = row_of[pid]
            row = build_roster_row(
                pid, p.name, p.status, p.kind, p.role, p.activity,
                None if bucket < 0 else bucket * AGE_STEP_MS, pid == self_id,
                p.description, p.tags, p.skills, p.model, p.connector, p.raw, False,
            )  # fmt: skip
            peer_of[pid] = p
            bucket_of[pid] = bucket
            row_of[pid] = row
            slot = (ts if bucket < 0 else ts + (bucket + 1) * AGE_STEP_MS) // SLOT_MS
            ids = wheel.get(slot)
            if ids is None:
                wheel[slot] = [pid]
                heapq.heappush(slots, slot)
            else:
                ids.append(pid)
            changed = True
            if row.status == old_row.status and row.name == old_row.name:
                pos = self._pos
                rows[pos[pid] if pos is not None else bisect_left(keys, key_of[pid])] = row
            else:
                self._move(pid, row, old_row)
        if again:
            assert current is not None
            for pid in again:
                self._queue(pid, current)
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

    def _add(self, p: PeerInput, now: Ms) -> None:
        """A peer not seen before: its row goes in at its place (an insort), not a rebuild."""
        pid = p.id
        bucket = age_bucket(p.ts, now)
        row = roster_row(p, self._self_id, bucket)
        key = sort_key(row)
        self._peer[pid], self._bucket[pid], self._row[pid], self._key[pid] = p, bucket, row, key
        self._queue(pid, bucket_due(p.ts, bucket) // SLOT_MS)
        at = bisect_left(self._keys, key)
        self._keys.insert(at, key)
        self._rows.insert(at, row)
        self._pos = None
        self._counts[row.status] = self._counts.get(row.status, 0) + 1

    def _rebuild(
        self, peers: tuple[PeerInput, ...], self_id: str, now: Ms, names: dict[str, str]
    ) -> None:
        """Every row from the input, reusing row objects whose record and age are unchanged."""
        self.full_rebuilds += 1
        reuse = self_id == self._self_id
        old_peer, old_bucket, old_row, old_key = self._peer, self._bucket, self._row, self._key
        self._peer, self._bucket, self._row, self._key = {}, {}, {}, {}
        self._wheel, self._slots = {}, []
        for p in peers:
            pid = p.id
            names[pid] = p.name
            bucket = age_bucket(p.ts, now)
            if reuse and old_peer.get(pid) is p and old_bucket.get(pid) == bucket:
                row, key = old_row[pid], old_key[pid]
            else:
                row = roster_row(p, self_id, bucket)
                key = sort_key(row)
            self._peer[pid], self._bucket[pid], self._row[pid], self._key[pid] = p, bucket, row, key
        for pid, p in self._peer.items():
            self._queue(pid, bucket_due(p.ts, self._bucket[pid]) // SLOT_MS)
        keyed = sorted((key, self._row[pid]) for pid, key in self._key.items())
        counts = dict.fromkeys(BASE_COUNTS, 0)
        for _, row in keyed:
            counts[row.status] = counts.get(row.status, 0) + 1
        self._keys = [k for k, _ in keyed]
        self._rows = [r for _, r in keyed]
        self._pos = {row.id: i for i, row in enumerate(self._rows)}
        self._counts = counts
        self._self_id = self_id
        self._now = now
        # Duplicate ids make positions ambiguous: keep rebuilding until the source stops.
        self._peers = peers if len(self._peer) == len(peers) else None
        self._rows_out = tuple(self._rows)
        self._counts_out = dict(counts)
