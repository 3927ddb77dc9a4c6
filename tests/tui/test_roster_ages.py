"""Heartbeat ages are rendered from the row's heartbeat time and the snapshot's `now`.

A roster row changes only when its record does (console/roster_fold.py); what must still hold:

- the age shown is now − heartbeat (whole seconds), on every surface that shows it, and the
  screen's beat column moves with the clock while nothing is written;
- a peer whose heartbeat gets too old still turns offline on time with no new heartbeat (the
  roster's sweep writes the offline record at the TTL, as mesh/presence.py's sweep loop does),
  and the roster source reads stale at its own threshold;
- while the roster is not current, the last-known overlay keeps the last status seen.
"""

from __future__ import annotations

from dataclasses import replace

from tui_helpers import settle

from cotal_tui.console.fixtures import (
    FIXED_NOW,
    FixtureSource,
    MutableClock,
    demo_data,
)
from cotal_tui.console.format import age_text
from cotal_tui.console.model import ROSTER_STALE_MS, ConsoleModel, ModelOptions
from cotal_tui.console.roster_inputs import PeerInputs
from cotal_tui.console.source import ConnectionInput, PeerInput, RosterInput
from cotal_tui.mesh.roster import Roster
from cotal_tui.protocol.models import AgentCard, Presence
from cotal_tui.protocol.names import PRESENCE_TTL_MS
from cotal_tui.tui import render
from cotal_tui.tui.widgets.table import RowTable

BEAT = render.BEAT_COLUMN


def expected_beat(now: int, ts: int) -> str:
    """The beat text, computed independently of the row: now − heartbeat, in whole seconds."""
    delta = now - ts
    if delta < 0:
        return "skew?"
    if delta < 1_000:
        return "<1s"
    return age_text(delta // 1_000 * 1_000)


class RosterRig:
    """A real `Roster` read by `PeerInputs` (the adapter's path) into a `ConsoleModel`."""

    def __init__(self) -> None:
        self.clock = MutableClock()
        self.roster = Roster(PRESENCE_TTL_MS)
        self.inputs = PeerInputs()
        self.data = demo_data()
        self.data.roster = RosterInput("current", (), observed_at=FIXED_NOW)
        self.model = ConsoleModel(
            FixtureSource(self.data), clock=self.clock, options=ModelOptions()
        )

    def beat(self, pid: str, status: str = "working", ts: int | None = None) -> None:
        card = AgentCard(id=pid, name=pid, kind="agent", role="r")
        at = self.clock.now if ts is None else ts
        self.roster.apply(Presence(card=card, status=status, ts=at), self.clock.now, key=pid)
        self.data.roster = replace(self.data.roster, observed_at=self.clock.now)

    def tick(self, *, view: str = "current"):
        self.roster.sweep(self.clock.now)  # the presence sweep loop's work
        peers = self.inputs.read(self.roster)
        self.data.roster = replace(self.data.roster, view=view, peers=peers)
        return self.model.tick()


def row_of(snap, pid):
    return next(r for r in snap.roster.rows if r.id == pid)


def test_age_shown_is_now_minus_heartbeat_on_every_tick_without_a_new_row():
    rig = RosterRig()
    offsets = {"ag-a": 0, "ag-b": 999, "ag-c": 1_000, "ag-d": 5_999, "ag-e": -2_500}
    for pid, back in offsets.items():
        rig.beat(pid, ts=FIXED_NOW - back)
    first = rig.tick()
    for step in (0, 1, 499, 500, 1_000, 1_001, 2_000):
        rig.clock.advance(step)
        snap = rig.tick()
        assert snap.now == rig.clock.now
        for pid, back in offsets.items():
            row = row_of(snap, pid)
            ts = FIXED_NOW - back
            if snap.now - ts <= PRESENCE_TTL_MS:
                assert row is row_of(first, pid), f"{pid}: ageing alone made a new row"
            want = expected_beat(snap.now, ts)
            assert render.roster_row(row, snap.now).cells[BEAT][0] == want, (pid, snap.now)
            age = row.heartbeat_age_at(snap.now)
            assert age == (None if snap.now < ts else (snap.now - ts) // 1_000 * 1_000)
            shown = render.agent_detail(row, (), snap.now)
            assert (f"heartbeat {want} ago" if age is not None else "writer clock ahead") in shown


def test_status_turns_offline_at_the_ttl_with_no_new_heartbeat():
    rig = RosterRig()
    rig.beat("ag-a")
    rig.beat("ag-b")
    beat_at = rig.clock.now
    assert row_of(rig.tick(), "ag-a").status == "working"
    rig.clock.advance(PRESENCE_TTL_MS - 2_000)
    rig.beat("ag-b")  # ag-b keeps beating; ag-a says nothing more
    snap = rig.tick()
    assert row_of(snap, "ag-a").status == "working"
    rig.clock.now = beat_at + PRESENCE_TTL_MS  # at the TTL: not yet too old
    snap = rig.tick()
    a = row_of(snap, "ag-a")
    assert a.status == "working" and snap.roster.counts["offline"] == 0
    assert render.roster_row(a, snap.now).cells[BEAT][0] == "6s"
    rig.clock.advance(1)  # past it: the sweep writes offline, and the row shows it this tick
    snap = rig.tick()
    a = row_of(snap, "ag-a")
    assert a.status == "offline", "a peer past its TTL must not stay green"
    cells = render.roster_row(a, snap.now)
    assert cells.cells[0] == ("⊘ offline", "status--offline") and cells.style == "rowtable--dim"
    assert cells.cells[BEAT][0] == expected_beat(snap.now, beat_at) == "6s"
    assert snap.roster.rows[-1].id == "ag-a", "offline sorts last"
    assert snap.roster.counts["offline"] == 1 and snap.roster.counts["working"] == 1
    assert row_of(snap, "ag-b").status == "working"
    rig.clock.advance(60_000)  # the age keeps counting on the offline row
    snap = rig.tick()
    assert render.roster_row(row_of(snap, "ag-a"), snap.now).cells[BEAT][0] == "1m06s"


def test_a_record_already_past_the_ttl_is_offline_when_first_seen():
    rig = RosterRig()
    rig.beat("ag-old", ts=FIXED_NOW - PRESENCE_TTL_MS - 1)
    snap = rig.tick()
    row = row_of(snap, "ag-old")
    assert row.status == "offline"
    assert render.roster_row(row, snap.now).cells[BEAT][0] == "6s"


def test_roster_source_goes_stale_at_its_threshold_without_heartbeats():
    rig = RosterRig()
    rig.beat("ag-a")
    assert rig.tick().roster.source.freshness == "fresh"
    rig.clock.advance(ROSTER_STALE_MS)
    assert rig.tick().roster.source.freshness == "fresh"
    rig.clock.advance(1)
    src = rig.tick().roster.source
    assert src.freshness == "stale", src


def test_last_known_overlay_keeps_the_last_status_while_the_ages_move():
    rig = RosterRig()
    rig.beat("ag-a")
    beat_at = rig.clock.now
    assert row_of(rig.tick(), "ag-a").status == "working"
    # The link drops: nothing more is read; the local sweep ages the record out to offline.
    rig.data.connection = ConnectionInput("reconnecting", since=rig.clock.now)
    rig.clock.advance(PRESENCE_TTL_MS + 1)
    snap = rig.tick(view="stale")
    a = row_of(snap, "ag-a")
    assert a.status == "working" and a.last_known, "never offline without evidence"
    shown = render.roster_row(a, snap.now)
    assert shown.cells[0][0].endswith("?") and shown.cells[BEAT][0] == "6s"
    rig.clock.advance(3_000)
    snap = rig.tick(view="stale")
    a = row_of(snap, "ag-a")
    assert a.status == "working" and a.last_known
    assert render.roster_row(a, snap.now).cells[BEAT][0] == expected_beat(snap.now, beat_at)
    # Current again: the sweep's verdict is evidence.
    rig.data.connection = ConnectionInput("connected", since=rig.clock.now)
    snap = rig.tick()
    assert row_of(snap, "ag-a").status == "offline" and not row_of(snap, "ag-a").last_known


async def test_the_screen_beat_column_follows_the_clock_with_no_new_record(make_rig):
    data = demo_data()
    lo = PeerInput("ag-lo", "aaa-lo", "agent", "working", ts=FIXED_NOW - 400)
    data.roster = replace(data.roster, peers=(*data.roster.peers, lo))
    rig = make_rig(data, tick_interval=None)
    async with rig.app.run_test(size=(160, 44)) as pilot:
        await settle(pilot, rig)
        table = rig.app.screen.query_one("#roster-table", RowTable)

        def shown_line(pid: str) -> str:
            at = table.rows.index_of(pid)  # type: ignore[union-attr]
            assert at is not None and at in table.shown_range()
            return table.render_line(at - table.shown_range().start + 1).text

        assert shown_line("ag-lo").rstrip().endswith("<1s")
        row = row_of(rig.model.snapshot, "ag-lo")
        for advance, want in ((600, "1s"), (1_000, "2s"), (57_000, "59s"), (1_000, "1m00s")):
            rig.clock.advance(advance)
            snap = rig.app.tick()
            await pilot.pause()
            assert row_of(snap, "ag-lo") is row, "no record changed: the same row"
            assert want == expected_beat(snap.now, lo.ts)
            assert shown_line("ag-lo").rstrip().endswith(f" {want}"), shown_line("ag-lo")
