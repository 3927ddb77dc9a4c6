"""The incremental paths give what a full rebuild gives, over random event sequences.

- `RosterFold` (only changed peers and due ages) against `full_rows` built from scratch;
- the model's channel fold (only touched channels, plus ticking rates once a second) against
  the same model state folded in full;
- the panes' `RowMirror` (only changed rows, built when drawn) against `roster_rows` /
  `channel_rows` for every filter and sort, and on its C fast path (no filter, no sort);
- the real roster's path (`Roster` change log → `PeerInputs` → `RosterFold`) against every
  entry converted and sorted from scratch.
"""

from __future__ import annotations

from dataclasses import FrozenInstanceError, replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cotal_tui.console.fixtures import FIXED_NOW, FixtureSource, MutableClock, demo_data
from cotal_tui.console.model import ConsoleModel, ModelOptions
from cotal_tui.console.roster_fold import BASE_COUNTS, RosterFold, full_rows
from cotal_tui.console.roster_inputs import PeerInputs, peer_input
from cotal_tui.console.snapshot import ChannelRow, RosterRow, build_channel_row, build_roster_row
from cotal_tui.console.source import (
    ChannelInput,
    ChannelsInput,
    LeaseInput,
    LeaseRead,
    MessageInput,
    PeerInput,
    ResponderCheck,
)
from cotal_tui.mesh.roster import Roster
from cotal_tui.protocol.models import AgentCard, Presence
from cotal_tui.tui import render
from cotal_tui.tui.render import RowFilter
from cotal_tui.tui.widgets.panes import ROW_ID
from cotal_tui.tui.widgets.table import RowMirror

IDS = [f"ag-{i:02d}" for i in range(10)]
NAMES = ["ada", "Bo", "bo", "cy", "dee", "eve"]
STATUSES = ["working", "waiting", "idle", "offline"]


def expected_counts(rows) -> dict[str, int]:
    counts = dict.fromkeys(BASE_COUNTS, 0)
    for r in rows:
        counts[r.status] = counts.get(r.status, 0) + 1
    return counts


peer_st = st.builds(
    lambda i, name, status, age: (i, name, status, age),
    st.integers(0, len(IDS) - 1),
    st.sampled_from(NAMES),
    st.sampled_from(STATUSES),
    st.integers(-4_000, 6_000),
)

step_st = st.one_of(
    st.tuples(st.just("advance"), st.integers(0, 2_600)),
    st.tuples(st.just("back"), st.integers(1, 700)),
    st.tuples(st.just("beat"), st.integers(0, 50), st.integers(-3_000, 500)),
    st.tuples(st.just("status"), st.integers(0, 50), st.sampled_from([*STATUSES, "lost"])),
    st.tuples(st.just("rename"), st.integers(0, 50), st.sampled_from(NAMES)),
    st.tuples(st.just("same"), st.integers(0, 50)),
    st.tuples(st.just("add"), peer_st),
    st.tuples(st.just("drop"), st.integers(0, 50)),
    st.tuples(st.just("swap"), st.integers(0, 50), st.integers(0, 50)),
    st.tuples(st.just("self"), st.sampled_from(IDS)),
    st.tuples(
        st.just("idle"),
    ),
)


def make_peer(spec, now: int) -> PeerInput:
    i, name, status, age = spec
    return PeerInput(IDS[i], name, "agent", status, ts=now - age, role="r", activity=f"a{i}")


@settings(max_examples=300, deadline=None)
@given(st.lists(peer_st, max_size=8), st.lists(step_st, max_size=40))
def test_roster_fold_equals_a_full_rebuild_after_every_step(initial, steps):
    now = FIXED_NOW
    peers: list[PeerInput] = []
    for spec in initial:
        if all(p.id != IDS[spec[0]] for p in peers):
            peers.append(make_peer(spec, now))
    self_id = IDS[0]
    fold, names = RosterFold(), {}
    for step in [("idle",), *steps]:
        kind = step[0]
        if kind == "advance":
            now += step[1]
        elif kind == "back":
            now -= step[1]
        elif kind == "add" and all(p.id != IDS[step[1][0]] for p in peers):
            peers.append(make_peer(step[1], now))
        elif kind == "self":
            self_id = step[1]
        elif peers and kind in ("beat", "status", "rename", "same", "drop", "swap"):
            at = step[1] % len(peers)
            p = peers[at]
            if kind == "beat":
                peers[at] = replace(p, ts=now + step[2])
            elif kind == "status":
                peers[at] = replace(p, status=step[2])
            elif kind == "rename":
                peers[at] = replace(p, name=step[2])
            elif kind == "same":
                peers[at] = replace(p)  # a new object, same record
            elif kind == "drop":
                del peers[at]
            else:
                other = step[2] % len(peers)
                peers[at], peers[other] = peers[other], peers[at]
        rows, counts = fold.fold(tuple(peers), self_id, names)
        want = full_rows(tuple(peers), self_id)
        assert rows == want, f"after {step}"
        assert counts == expected_counts(want), f"after {step}"
        assert all(names[p.id] == p.name for p in peers)


def test_roster_fold_stays_incremental_under_heartbeats_and_ageing():
    now = FIXED_NOW
    peers = [
        PeerInput(f"ag-{i:04d}", f"agent-{i}", "agent", STATUSES[i % 4], ts=now - (i * 37) % 2000)
        for i in range(400)
    ]
    fold = RosterFold()
    names: dict[str, str] = {}
    fold.fold(tuple(peers), "ag-0000", names)
    for tick in range(60):
        now += 100
        for i in range(tick % 20, len(peers), 20):
            peers[i] = replace(peers[i], ts=now)
        if tick == 30:
            peers[7] = replace(peers[7], status="offline")
        rows, counts = fold.fold(tuple(peers), "ag-0000", names)
        assert rows == full_rows(tuple(peers), "ag-0000")
        assert counts == expected_counts(rows)
    assert fold.full_rebuilds == 1, "heartbeats, ageing and a status change never rebuild"


# -- the model's channel fold -------------------------------------------------------------------

CHANNELS = ["alpha", "beta", "gamma", "delta"]

channel_step_st = st.one_of(
    st.tuples(st.just("msg"), st.sampled_from([*CHANNELS, "ghost"]), st.booleans()),
    st.tuples(st.just("advance"), st.integers(0, 4_000)),
    st.tuples(st.just("read"), st.sampled_from(CHANNELS)),
    st.tuples(st.just("retain"), st.sampled_from(CHANNELS), st.integers(0, 9)),
    st.tuples(st.just("list"), st.lists(st.sampled_from(CHANNELS), unique=True)),
    st.tuples(st.just("lease"), st.sampled_from(["present", "absent"]), st.booleans()),
    st.tuples(
        st.just("tick"),
    ),
)


def channel_inputs(names) -> tuple[ChannelInput, ...]:
    return tuple(ChannelInput(n, joined=i % 2 == 0) for i, n in enumerate(names))


@settings(max_examples=150, deadline=None)
@given(st.lists(channel_step_st, max_size=40))
def test_channel_fold_equals_a_full_fold_after_every_tick(steps):
    clocks = (MutableClock(), MutableClock())
    sources = (FixtureSource(demo_data()), FixtureSource(demo_data()))
    models = [
        ConsoleModel(src, clock=clock, options=ModelOptions(rate_window_s=5))
        for src, clock in zip(sources, clocks, strict=True)
    ]
    for src in sources:
        src.data.channels = ChannelsInput(channel_inputs(CHANNELS), observed_at=FIXED_NOW)
    seq = 0
    for step in [("tick",), *steps]:
        kind = step[0]
        for model, src, clock in zip(models, sources, clocks, strict=True):
            if kind == "msg":
                seq += 1
                model.ingest(
                    MessageInput(
                        f"m{seq}",
                        clock.now,
                        "ag-x",
                        "x",
                        "channel",
                        step[1],
                        "hi",
                        historical=step[2],
                    )  # fmt: skip
                )
            elif kind == "advance":
                clock.advance(step[1])
            elif kind == "read":
                model.mark_read(step[1])
            elif kind == "retain":
                chans = tuple(
                    replace(c, retained=step[2]) if c.name == step[1] else c
                    for c in src.data.channels.channels
                )
                src.data.channels = replace(src.data.channels, channels=chans)
            elif kind == "list":
                src.data.channels = replace(src.data.channels, channels=channel_inputs(step[1]))
            elif kind == "lease":
                src.data.lease = LeaseInput(
                    LeaseRead(
                        step[1], read_at=clock.now, holder="d", since=clock.now, ready=step[2]
                    ),  # fmt: skip
                    ResponderCheck("answered", checked_at=clock.now, latency_ms=1.0),
                )
        incremental = models[0].tick()
        reference = models[1]
        reference._channels_in = None  # fold every channel, from no cached row
        reference._channel_cache = {}
        full = reference.tick()
        assert incremental.channels.rows == full.channels.rows, f"after {step}"
        assert incremental.roster.rows == full.roster.rows


# -- the panes' row mirror ----------------------------------------------------------------------

FILTERS = [None, RowFilter.parse("bo"), RowFilter.parse("!idle"), RowFilter.parse("work")]


class Clock:
    """The pane's `now`: the mirror's rows are built at the time of the tick that draws them."""

    def __init__(self, now: int) -> None:
        self.now = now

    def row(self, r: RosterRow):
        return render.roster_row(r, self.now)


def mirror_roster(mirror: RowMirror, items, row_filter, sort, reverse, clock: Clock):
    rows = mirror.update(
        items,
        (row_filter, sort, reverse),
        lambda xs: render.roster_order(xs, row_filter, sort, reverse),
        clock.row,
        lambda r: r.id,
        lambda old, new: render.roster_stays(old, new, row_filter, sort, reverse),
    )
    render.roster_aged(rows, range(len(rows)), clock.now)  # as the pane does for its screen
    return rows


@settings(max_examples=200, deadline=None)
@given(
    st.lists(peer_st, min_size=1, max_size=8),
    st.lists(
        st.tuples(
            st.sampled_from(["beat", "status", "rename", "view", "advance"]),
            st.integers(0, 50),
            st.sampled_from(NAMES),
            st.integers(0, len(FILTERS) - 1),
            st.integers(0, len(render.ROSTER_SORTS) - 1),
            st.booleans(),
        ),
        max_size=30,
    ),
)
def test_row_mirror_equals_roster_rows_for_every_filter_and_sort(initial, steps):
    now = FIXED_NOW
    peers: list[PeerInput] = []
    for spec in initial:
        if all(p.id != IDS[spec[0]] for p in peers):
            peers.append(make_peer(spec, now))
    fold, names, mirror, clock = RosterFold(), {}, RowMirror(), Clock(now)
    row_filter, sort, reverse = None, 0, False
    for kind, at, name, f, s, r in steps:
        p = peers[at % len(peers)]
        if kind == "beat":
            peers[at % len(peers)] = replace(p, ts=now)
        elif kind == "status":
            peers[at % len(peers)] = replace(p, status=STATUSES[at % 4])
        elif kind == "rename":
            peers[at % len(peers)] = replace(p, name=name)
        elif kind == "view":
            row_filter, sort, reverse = FILTERS[f], s, r
        else:
            now += 700
        clock.now = now
        items, _ = fold.fold(tuple(peers), IDS[0], names)
        rows = mirror_roster(mirror, items, row_filter, sort, reverse, clock)
        assert list(rows) == render.roster_rows(items, row_filter, sort, reverse, now)
        assert [rows.key(i) for i in range(len(rows))] == [row.key for row in rows]


def test_row_mirror_replaces_only_changed_rows_in_place():
    now = FIXED_NOW
    peers = [PeerInput(f"ag-{i:03d}", f"n{i:03d}", "agent", "idle", ts=now) for i in range(50)]
    fold, names, mirror, clock = RosterFold(), {}, RowMirror(), Clock(now)
    first = mirror_roster(mirror, fold.fold(tuple(peers), "me", names)[0], None, 0, False, clock)
    first[3]  # draw one row
    peers[3] = replace(peers[3], activity="busy")
    items = fold.fold(tuple(peers), "me", names)[0]
    again = mirror_roster(mirror, items, None, 0, False, clock)
    assert again is first and mirror.changed == [3] and len(mirror.stale) == 1
    assert again[3] == render.roster_row(items[3], now)
    peers[4] = replace(peers[4], status="working")  # moves to the top: a re-order
    items = fold.fold(tuple(peers), "me", names)[0]
    mirror_roster(mirror, items, None, 0, False, clock)
    assert mirror.changed is None


# -- the real roster's path: Roster → PeerInputs → RosterFold -----------------------------------

ROSTER_TTL = 6_000

roster_step_st = st.one_of(
    st.tuples(
        st.just("put"),
        st.sampled_from(IDS),
        st.sampled_from(NAMES),
        st.sampled_from(STATUSES),
        st.integers(-8_000, 1_000),
    ),
    st.tuples(st.just("beat"), st.sampled_from(IDS)),
    st.tuples(st.just("leave"), st.sampled_from(IDS)),
    st.tuples(st.just("advance"), st.integers(0, 4_000)),
    st.tuples(st.just("sweep")),
    st.tuples(st.just("clear")),
)


def presence(pid: str, name: str, status: str, ts: int) -> Presence:
    return Presence(card=AgentCard(id=pid, name=name, kind="agent", role="r"), status=status, ts=ts)


@settings(max_examples=300, deadline=None)
@given(st.lists(roster_step_st, max_size=50), st.sampled_from(IDS))
def test_real_roster_path_equals_a_from_scratch_sort_after_every_step(steps, self_id):
    """Joins, heartbeats, status changes, renames, leaves (DEL), age-outs (sweeps) and clears on
    a real `Roster`, read by `PeerInputs` from its change log and folded by `RosterFold`: the
    rows equal every entry converted and sorted from scratch, after every tick."""
    roster, inputs, fold, names, now = Roster(ROSTER_TTL), PeerInputs(), RosterFold(), {}, FIXED_NOW
    clears = 0
    for step in steps:
        kind = step[0]
        if kind == "put":
            _, pid, name, status, age = step
            roster.apply(presence(pid, name, status, now + age), now, key=pid)
        elif kind == "beat" and (p := roster.get(step[1])) is not None:
            roster.apply(p.model_copy(update={"ts": now}), now, key=step[1])
        elif kind == "leave":
            roster.remove(step[1])
        elif kind == "advance":
            now += step[1]
        elif kind == "sweep":
            roster.sweep(now)
        elif kind == "clear":
            roster.clear()
            clears += 1
        peers = inputs.read(roster)
        rows, counts = fold.fold(peers, self_id, names)
        scratch = tuple(peer_input(p) for p in roster.entries())
        want = full_rows(scratch, self_id)
        assert rows == want, f"after {step}"
        assert counts == expected_counts(want), f"after {step}"
        assert inputs.names == {p.card.id: p.card.name for p in roster.entries()}
    assert inputs.full_reads <= 1 + clears, "only a clear makes the reader read everything"
    assert fold.full_rebuilds <= 1 + clears, "joins fold in with an insort, not a rebuild"


def test_real_roster_path_converts_only_what_was_written():
    roster, inputs, fold, names = Roster(ROSTER_TTL), PeerInputs(), RosterFold(), {}
    now = FIXED_NOW
    for i in range(300):
        roster.apply(presence(f"ag-{i:03d}", f"agent-{i:03d}", "idle", now), now)
    first = inputs.read(roster)
    fold.fold(first, "ag-000", names)
    assert inputs.read(roster) is first, "nothing written: the same tuple"
    for tick in range(1, 40):
        now += 100
        for i in range(tick % 20, 300, 20):
            roster.apply(presence(f"ag-{i:03d}", f"agent-{i:03d}", "idle", now), now)
        if tick == 10:
            roster.apply(presence("ag-new", "aaa-newcomer", "working", now), now)
        if tick == 20:
            roster.remove("ag-007")
        peers = inputs.read(roster)
        changed = sum(a is not b for a, b in zip(peers, first, strict=False))
        assert changed <= 16, "only the records written this tick were converted"
        first = peers
        rows, _ = fold.fold(peers, "ag-000", names)
        assert rows == full_rows(tuple(peer_input(p) for p in roster.entries()), "ag-000")
    assert rows[0].name == "aaa-newcomer" and len(rows) == 301
    assert inputs.full_reads == 1 and fold.full_rebuilds == 1


def test_wire_record_is_the_presence_wire_form_built_on_first_read():
    p = presence("ag-1", "ada", "working", FIXED_NOW)
    row = peer_input(p)
    assert row.raw._wire is None  # type: ignore[attr-defined]
    assert dict(row.raw) == p.to_wire() and row.raw["card"]["name"] == "ada"
    assert row == peer_input(p), "equal records give equal inputs"


# -- the mirror's fast path: the model's own order (no filter, no sort) --------------------------


@settings(max_examples=200, deadline=None)
@given(st.lists(peer_st, min_size=1, max_size=8), st.lists(step_st, max_size=30))
def test_row_mirror_fast_path_equals_roster_rows(initial, steps):
    """With no filter and no sort the pane passes no `stays`: the mirror then compares keys and
    copies items in C. Its rows (and the rows it built before) equal a fresh build."""
    now = FIXED_NOW
    peers: list[PeerInput] = []
    for spec in initial:
        if all(p.id != IDS[spec[0]] for p in peers):
            peers.append(make_peer(spec, now))
    fold, names, mirror, clock = RosterFold(), {}, RowMirror(), Clock(now)
    for step in [("idle",), *steps]:
        kind = step[0]
        if kind == "advance":
            now += step[1]
        elif kind == "add" and all(p.id != IDS[step[1][0]] for p in peers):
            peers.append(make_peer(step[1], now))
        elif peers and kind in ("beat", "status", "rename", "same", "drop", "swap"):
            at = step[1] % len(peers)
            p = peers[at]
            if kind == "beat":
                peers[at] = replace(p, ts=now + step[2])
            elif kind == "status":
                peers[at] = replace(p, status=step[2])
            elif kind == "rename":
                peers[at] = replace(p, name=step[2])
            elif kind == "same":
                peers[at] = replace(p)
            elif kind == "drop":
                del peers[at]
            else:
                other = step[2] % len(peers)
                peers[at], peers[other] = peers[other], peers[at]
        clock.now = now
        items, _ = fold.fold(tuple(peers), IDS[0], names)
        rows = mirror.update(
            items,
            (None, 0, False),
            lambda xs: render.roster_order(xs, None, 0, False),
            clock.row,
            ROW_ID,
            None,
        )
        render.roster_aged(rows, range(len(rows)), now)
        assert list(rows) == render.roster_rows(items, None, 0, False, now), f"after {step}"
        assert [rows.key(i) for i in range(len(rows))] == [r.id for r in items]
        if mirror.changed is not None:
            assert mirror.changed == sorted(mirror.changed)


def test_positional_builders_make_ordinary_frozen_rows():
    """The fold and the channel fold build rows without the frozen `__init__`; what comes out
    is the same value, type and repr, and still refuses assignment."""
    roster_values = ("ag-1", "ada", "idle", "agent", "r", "busy", 1_000, True, "d", ("t",),
                     ("s",), "m", "c", {"card": {}}, False)  # fmt: skip
    channel_values = ("ops", "durable", True, "1h", "d", 5, True, 2, (0, 1), "active",
                      "durable backstop active", None, False, None, True, 3, "i", ("a",),
                      {"k": 1}, None, None)  # fmt: skip
    for cls, build, values in (
        (RosterRow, build_roster_row, roster_values),
        (ChannelRow, build_channel_row, channel_values),
    ):
        fast, slow = build(*values), cls(*values)
        assert type(fast) is cls and fast == slow and repr(fast) == repr(slow)
        with pytest.raises(FrozenInstanceError):
            fast.name = "x"  # type: ignore[misc]
        assert replace(fast, name="y") == replace(slow, name="y")


def test_a_slid_rate_window_rebuilds_the_row_with_every_other_field_kept():
    from cotal_tui.console.model import _ROW_HEAD, _ROW_TAIL

    values = ("ops", "durable", True, "1h", "d", 5, True, 2, (0, 1), "active",
              "durable backstop active", "caveat", True, "quiet", True, 3, "i", ("a",),
              {"k": 1}, "feed", "bad")  # fmt: skip
    row = ChannelRow(*values)
    slid = build_channel_row(*_ROW_HEAD(row), (1, 0), *_ROW_TAIL(row))
    assert slid == replace(row, rate=(1, 0))
