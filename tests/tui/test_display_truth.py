"""Issue 12 item 8: the console never says more than it knows. One test per listed detail."""

from __future__ import annotations

from dataclasses import replace

from cotal_tui.console.fixtures import (
    FIXED_NOW,
    SELF_ID,
    FixtureSource,
    MutableClock,
    demo_data,
    lease_data,
)
from cotal_tui.console.model import ConsoleModel, ModelOptions
from cotal_tui.console.plain import PlainStream
from cotal_tui.console.snapshot import DaemonView, SourceView
from cotal_tui.console.source import ChannelsInput, ConnectionInput, MessageInput, RosterInput
from cotal_tui.tui import render
from cotal_tui.tui.screens.main import peers_text


def model_for(data=None, **opts):
    source = FixtureSource(data or demo_data())
    return ConsoleModel(source, clock=MutableClock(), options=ModelOptions(**opts)), source


def message(i, *, ts=FIXED_NOW, sender="ag-cy-03", historical=False, target="general"):
    name = "operator" if sender == SELF_ID else "cy"
    return MessageInput(f"m{i}", ts, sender, name, "channel", target, f"text {i}",
                        historical=historical)  # fmt: skip


def test_link_loss_keeps_last_known_statuses_never_offline_without_evidence():
    data = demo_data()
    model, _ = model_for(data)
    before = {r.id: r.status for r in model.tick().roster.rows}
    assert before[SELF_ID] != "offline"
    # The link drops; the local sweep ages every record out to "offline".
    data.connection = ConnectionInput("reconnecting", since=FIXED_NOW - 3_000)
    swept = tuple(replace(p, status="offline") for p in data.roster.peers)
    data.roster = RosterInput("stale", swept, observed_at=FIXED_NOW - 9_000)
    snap = model.tick()
    assert snap.roster.banner and "last-known" in snap.roster.banner
    for row in snap.roster.rows:
        assert row.status == before[row.id], f"{row.name} changed without evidence"
        assert row.last_known == (before[row.id] != "offline"), row.name
    mine = next(r for r in snap.roster.rows if r.is_self)
    cells = render.roster_row(mine, snap.now).cells
    assert "offline" not in cells[0][0] and cells[0][0].endswith("?"), cells[0]
    last_known_online = sum(1 for r in snap.roster.rows if not r.is_self and r.status != "offline")
    assert last_known_online > 0 and snap.roster.others_online == last_known_online
    # Back to current: the sweep's verdict is evidence again.
    data.connection = ConnectionInput("connected", since=FIXED_NOW)
    data.roster = RosterInput("current", swept, observed_at=FIXED_NOW)
    snap = model.tick()
    assert all(r.status == "offline" and not r.last_known for r in snap.roster.rows)
    assert snap.roster.others_online == 0


def test_no_responder_reads_degraded_on_every_durable_channel():
    model, _ = model_for(lease_data("no-responder"))
    rows = {c.name: c for c in model.tick().channels.rows}
    for name in ("general", "review"):
        assert rows[name].health == "degraded", rows[name]
        assert "active" not in (rows[name].health_text or "")


def test_unread_never_exceeds_retained_and_own_posts_are_not_unread():
    data = demo_data()
    model, _ = model_for(data)
    general = next(c for c in data.channels.channels if c.name == "general")
    model.ingest_many([message(i, sender=SELF_ID) for i in range(5)])
    assert next(c for c in model.tick().channels.rows if c.name == "general").unread == 0
    model.ingest_many([message(100 + i) for i in range(general.retained + 20)])
    row = next(c for c in model.tick().channels.rows if c.name == "general")
    assert row.unread == general.retained, (row.unread, general.retained)
    small = replace(general, retained=3)
    data.channels = ChannelsInput(
        tuple(small if c.name == "general" else c for c in data.channels.channels),
        observed_at=FIXED_NOW,
    )
    assert next(c for c in model.tick().channels.rows if c.name == "general").unread == 3


def test_dropped_is_explained_next_to_the_counters():
    source = SourceView("daemon", "in-process", 0, "fresh")
    view = DaemonView(True, "U1", True, 3, 100, 1208, 1203, 0, 2, 0, None, None, None, source)
    text = render.daemon_markup(view)
    assert "dropped 2" in text and "withheld by rule" in text and "not lost" in text
    assert "withheld" not in render.daemon_markup(replace(view, dropped=0))


def test_peers_counts_others_that_are_online():
    model, _ = model_for()
    snap = model.tick()
    others_online = [r for r in snap.roster.rows if not r.is_self and r.status != "offline"]
    assert snap.roster.others_online == len(others_online), "the model's count is the rows'"
    assert peers_text(snap) == f"{len(others_online)} peers online"
    # Hand-made views without the model's count: counted from the rows.
    only_me = replace(snap, roster=replace(snap.roster, others_online=None, rows=tuple(
        r for r in snap.roster.rows if r.is_self or r.status == "offline"
    )))  # fmt: skip
    assert peers_text(only_me) == "0 peers online"
    rows = (*only_me.roster.rows, others_online[0])
    one = replace(snap, roster=replace(only_me.roster, rows=rows))
    assert peers_text(one) == "1 peer online"


def test_latency_is_rounded():
    model, _ = model_for()
    lease = replace(model.tick().lease, responder_latency_ms=1.3760110000475834)
    text = render.lease_detail(lease, None)
    assert "1.4 ms" in text and "1.376" not in text


def test_not_bound_is_said_once():
    source = SourceView("daemon", "in-process", 0, "fresh")
    why = "not bound yet: the demo binds its in-process daemon in 4s"
    view = DaemonView(False, None, False, None, None, 0, 0, 0, 0, 0, None, None, why, source)
    text = render.daemon_markup(view)
    assert text.count("not bound") == 1, text


def test_a_source_never_seen_is_not_called_fresh():
    line = render.source_line(SourceView("feed", "chat subscriptions", None, "fresh"))
    assert "never" not in line or "fresh" not in line, line
    assert "no update yet" in line


def test_replayed_history_is_placed_by_time_not_arrival():
    model, _ = model_for()
    model.ingest_many([message(1, ts=FIXED_NOW - 1_000), message(2, ts=FIXED_NOW)])
    # Backfill arrives after the live messages but is older.
    model.ingest_many(
        [message(3, ts=FIXED_NOW - 60_000, historical=True),
         message(4, ts=FIXED_NOW - 30_000, historical=True)]
    )  # fmt: skip
    snap = model.tick()
    mine = [e for e in snap.feed.entries if e.id.startswith("m")]
    assert [e.id for e in mine] == ["m3", "m4", "m1", "m2"]
    times = [e.ts for e in snap.feed.entries]
    assert times == sorted(times), "older times must never show below newer ones"
    assert snap.feed.last_seq == max(e.seq for e in snap.feed.entries)
    # The plain stream prints each message exactly once, in time order.
    stream = PlainStream()
    lines = stream.lines(snap)
    assert sum("text 3" in line for line in lines) == 1
    model.ingest(message(5, ts=FIXED_NOW + 1_000))
    again = stream.lines(model.tick())
    assert [line for line in again if "text " in line] == [
        line for line in again if "text 5" in line
    ]
