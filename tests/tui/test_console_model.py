"""The display-free model: verdict table, snapshot folding, commands, --plain and check."""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Any, cast

import pytest

from cotal_tui.commands.check import quorum_lost_line
from cotal_tui.commands.status import consequence as status_consequence
from cotal_tui.console import verdict as V
from cotal_tui.console.commands import (
    CommandParseError,
    Dispatcher,
    Dm,
    Join,
    Leave,
    PeerResolutionError,
    Post,
    RetryNow,
    SetActivity,
    SetStatus,
    mentions_in,
    parse_command,
    resolve_peer,
)
from cotal_tui.console.fixtures import (
    FIXED_NOW,
    LEASE_VERDICTS,
    FixtureCommands,
    FixtureSource,
    MutableClock,
    demo_data,
    lease_case,
    lease_data,
)
from cotal_tui.console.model import ConsoleModel, ModelOptions, RateRing
from cotal_tui.console.plain import PlainStream, check_snapshot
from cotal_tui.console.source import (
    ConnectionInput,
    MessageInput,
    PeerInput,
    RosterInput,
)
from cotal_tui.mesh.lease import lease_verdict
from cotal_tui.mesh.lease_table import PIPELINE, QUORUM_LOST_CONSEQUENCE
from cotal_tui.mesh.lease_table import first_rule as table_rule

# -- the verdict table -------------------------------------------------------------------------

COLUMN_WORDS = {
    "link": V.LINK,
    "read": V.READ,
    "age": V.AGE,
    "ready": V.READY,
    "responder": V.RESPONDER,
    "mode": V.MODE,
    "pipeline": PIPELINE,
    "cluster": V.CLUSTER,
}


def all_columns():
    keys = list(COLUMN_WORDS)
    for combo in itertools.product(*(COLUMN_WORDS[k] for k in keys)):
        yield dict(zip(keys, combo, strict=True))


def first_rule(cols):
    return next(r for r in V.RULES if r.matches(cols))


def test_every_combination_gets_exactly_one_named_verdict():
    for cols in all_columns():
        assert first_rule(cols).verdict  # no combination falls off the table


def test_serving_only_with_positive_evidence_on_every_column():
    for cols in all_columns():
        serving = first_rule(cols).verdict == "serving"
        evidence = (
            cols["link"] == "up"
            and cols["read"] == "present"
            and cols["age"] == "fresh"
            and cols["ready"] == "yes"
            and cols["responder"] == "answered"
            and cols["pipeline"] in ("moving", "unchecked")
            and cols["cluster"] in ("n/a", "ok")
        )
        assert serving == evidence, cols


def test_a_failed_read_is_refused_never_no_lease():
    for cols in all_columns():
        if cols["read"] == "failed" and cols["link"] == "up":
            assert first_rule(cols).verdict == "refused", cols


def test_every_rule_is_reachable():
    used = {first_rule(cols).name for cols in all_columns()}
    assert used == {r.name for r in V.RULES}


@pytest.mark.parametrize("verdict", LEASE_VERDICTS)
def test_fixture_cases_judge_as_named(verdict):
    lease, link, mode = lease_case(verdict)
    assert V.judge_lease(lease, link, mode, FIXED_NOW).verdict == verdict


def test_open_mode_without_lease_is_not_red():
    lease, link, _ = lease_case("no-lease")
    j = V.judge_lease(lease, link, "open", FIXED_NOW)
    assert (j.verdict, j.severity) == ("no-lease", "info")
    assert "open mode" in j.consequence


def test_old_probe_answer_is_not_evidence():
    lease, link, mode = lease_case("serving")
    lease = replace(
        lease, responder=replace(lease.responder, checked_at=FIXED_NOW - V.PROBE_STALE_MS - 1)
    )
    assert V.judge_lease(lease, link, mode, FIXED_NOW).verdict == "unverified"


def test_old_lease_read_is_not_evidence():
    lease, link, mode = lease_case("serving")
    lease = replace(lease, read=replace(lease.read, read_at=FIXED_NOW - V.READ_STALE_MS - 1))
    j = V.judge_lease(lease, link, mode, FIXED_NOW)
    assert j.verdict == "unverified" and "last read 10s ago" in j.consequence


def test_clock_skew_gives_unknown_age_never_zero():
    lease, link, mode = lease_case("clock-skew")
    j = V.judge_lease(lease, link, mode, FIXED_NOW)
    assert j.age_ms is None and j.skew_ms == 95_000 and j.ttl_left_ms is None


# -- model folding -----------------------------------------------------------------------------


def model_for(data=None, **opts):
    source = FixtureSource(data or demo_data())
    clock = MutableClock()
    return ConsoleModel(source, clock=clock, options=ModelOptions(**opts)), source, clock


def msg(i, target="general", *, ts=FIXED_NOW, historical=False, mode="channel", text="hi"):
    return MessageInput(f"x{i}", ts, "ag-cy-03", "cy", mode, target, text, historical=historical)


def test_unread_counts_arrivals_not_backfill_and_resets_on_read():
    model, _, _ = model_for()
    model.ingest_many([msg(1), msg(2), msg(3, historical=True)])
    snap = model.tick()
    general = next(c for c in snap.channels.rows if c.name == "general")
    assert general.unread == 2
    model.mark_read("general")
    assert next(c for c in model.tick().channels.rows if c.name == "general").unread == 0


def test_feed_window_keeps_newest_and_seq_is_monotonic():
    model, _, _ = model_for(feed_window=5)
    model.ingest_many(msg(i) for i in range(12))
    snap = model.tick()
    assert [e.id for e in snap.feed.entries] == [f"x{i}" for i in range(7, 12)]
    assert [e.seq for e in snap.feed.entries] == list(range(8, 13))
    assert snap.feed.received == 12


def test_messages_reach_the_snapshot_only_on_tick():
    model, _, _ = model_for()
    first = model.tick()
    model.ingest(msg(1))
    assert model.snapshot is first and model.pending_messages() == 1
    assert model.tick().feed.received == 1


def test_rate_ring_counts_per_second_and_slides():
    ring = RateRing(5)
    for second in (100, 100, 101, 103):
        ring.add(second)
    assert ring.history(103) == (0, 2, 1, 0, 1)
    assert ring.history(106) == (0, 1, 0, 0, 0)
    assert ring.history(200) == (0, 0, 0, 0, 0)


def test_heartbeat_age_is_unknown_when_writer_clock_is_ahead():
    data = demo_data()
    ahead = PeerInput("ag-z", "zed", "agent", "idle", ts=FIXED_NOW + 60_000)
    data.roster = replace(data.roster, peers=(*data.roster.peers, ahead))
    model, _, _ = model_for(data)
    snap = model.tick()
    row = next(r for r in snap.roster.rows if r.id == "ag-z")
    assert row.heartbeat_age_at(snap.now) is None


def test_roster_sorted_by_status_then_name_and_resorts_on_change():
    model, source, clock = model_for()
    snap = model.tick()
    order = [r.status for r in snap.roster.rows]
    assert order == sorted(order, key=["working", "waiting", "idle", "offline"].index)
    peers = tuple(
        replace(p, status="offline") if p.id == "ag-ada-01" else p for p in source.data.roster.peers
    )
    source.data.roster = replace(source.data.roster, peers=peers)
    assert model.tick().roster.rows[-2].id in ("ag-ada-01", "ag-gil-07")
    assert {r.id for r in model.snapshot.roster.rows[-2:]} == {"ag-ada-01", "ag-gil-07"}


def test_rows_are_reused_while_unchanged():
    model, _, clock = model_for()
    a = model.tick()
    b = model.tick()
    assert a.roster.rows[0] is b.roster.rows[0]
    assert a.channels.rows[0] is b.channels.rows[0]
    clock.advance(1_000)
    c = model.tick()
    assert c.roster.rows[0] is a.roster.rows[0], "ageing alone never makes a new row"
    age_a = a.roster.rows[0].heartbeat_age_at(a.now)
    assert age_a is not None and c.roster.rows[0].heartbeat_age_at(c.now) == age_a + 1_000


def test_link_down_marks_every_mesh_source_last_known():
    data = demo_data()
    data.connection = ConnectionInput("reconnecting", since=FIXED_NOW - 3_000)
    model, _, _ = model_for(data)
    snap = model.tick()
    for src in (snap.roster.source, snap.channels.source, snap.lease.source):
        assert src.freshness == "stale" and "link reconnecting" in (src.reason or "")
    assert snap.lease.verdict == "unreachable"


def test_roster_view_not_current_is_a_banner_and_stale_source():
    data = demo_data()
    data.roster = RosterInput("unpopulated", (), observed_at=None)
    model, _, _ = model_for(data)
    snap = model.tick()
    assert snap.roster.banner.startswith("roster unpopulated")
    assert snap.roster.source.freshness != "fresh"


def test_pending_countdown_and_headline():
    model, _, clock = model_for()
    snap = model.tick()
    join = next(r for r in snap.pending.rows if r.operation == "join")
    assert join.next_retry_in_ms == 8_000 and join.attempt == 3
    assert snap.pending.headline.startswith("1 boot join retrying (no durable membership")
    clock.advance(9_000)
    assert next(r for r in model.tick().pending.rows if r.operation == "join").next_retry_in_ms < 0


def test_channel_health_follows_section_5_9():
    model, _, _ = model_for(lease_data("not-ready"))
    rows = {c.name: c for c in model.tick().channels.rows}
    assert rows["general"].health == "degraded" and "lease not ready" in rows["general"].health_text
    assert rows["random"].health is None, "live class has no health value"
    assert rows["ops"].health is None, "not joined has no health value"
    assert rows["legacy"].health_text.startswith("durable cleanup pending")
    model, _, _ = model_for(lease_data("refused"))
    rows = {c.name: c for c in model.tick().channels.rows}
    assert rows["general"].health is None, "no daemon known: no health surface"


# -- commands ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "command"),
    [
        ("join #ops", Join("ops")),
        (":leave general", Leave("general")),
        ("post #review looks good @bo", Post("review", "looks good @bo")),
        ("msg hello there", Post("general", "hello there")),
        ("dm @bo ping", Dm("bo", "ping")),
        ("status idle", SetStatus("idle")),
        ("activity", SetActivity(None)),
        ("activity on call", SetActivity("on call")),
        ("retry leave #legacy", RetryNow("legacy", "leave")),
    ],
)
def test_parse_command(line, command):
    assert parse_command(line, default_channel="general") == command


@pytest.mark.parametrize(
    "line", ["", "join", "join a b", "post", "post #x", "dm bo", "status offline", "retry x #y"]
)
def test_parse_command_refuses_with_usage(line):
    with pytest.raises(CommandParseError):
        parse_command(line)


def test_mentions_are_lowercased_unique_and_ignore_emails():
    assert mentions_in("@Ada and @bo, ping @ada; mail me@x.org") == ("ada", "bo")


def test_resolve_peer_rules():
    model, _, _ = model_for()
    snap = model.tick()
    assert resolve_peer("ag-kit-09", snap).id == "ag-kit-09"
    assert resolve_peer("BO", snap).id == "ag-bo-02"
    with pytest.raises(PeerResolutionError, match="ambiguous"):
        resolve_peer("kit", snap)
    with pytest.raises(PeerResolutionError, match="no peer named @nobody"):
        resolve_peer("nobody", snap)


async def test_dispatcher_gates():
    model, source, _ = model_for()
    snap = model.tick()
    ro = await Dispatcher(FixtureCommands(source), read_only=True).run(Join("ops"), snap)
    assert ro.outcome == "refused" and "--read-only" in ro.text
    none = await Dispatcher(None).run(Join("ops"), snap)
    assert none.outcome == "refused" and "no endpoint" in none.text


# -- plain and check ----------------------------------------------------------------------------


def test_plain_stream_presence_diff_messages_once_and_verdict_changes():
    model, source, clock = model_for()
    stream = PlainStream()
    first = stream.lines(model.tick())
    assert first[0].startswith("06:00:00 link connected")
    assert any(line.startswith("06:00:00 delivery serving:") for line in first)
    assert sum(1 for line in first if " present " in line) == 12
    assert stream.lines(model.tick()) == [], "a heartbeat or a re-tick prints nothing"
    model.ingest(msg(1, text="hello\nworld"))
    peers = tuple(
        replace(p, status="offline")
        if p.id == "ag-cy-03"
        else replace(p, status="working")
        if p.id == "ag-dee-04"
        else p
        for p in source.data.roster.peers
    )
    source.data.roster = replace(source.data.roster, peers=peers)
    source.data.lease, source.data.connection, _ = lease_case("no-responder")
    lines = stream.lines(model.tick())
    assert "06:00:00 offline cy (builder) [ag-cy-03]" in lines
    assert "06:00:00 status dee (builder) [ag-dee-04] idle → working" in lines
    assert any(line.startswith("06:00:00 delivery no-responder:") for line in lines)
    assert "06:00:00 #general cy: hello world" in lines
    assert stream.lines(model.tick()) == []


def test_pending_rows_carry_their_owner_own_first_and_plain_names_it():
    from cotal_tui.console.source import PendingOp

    model, source, _ = model_for()
    now = source.data.pending.observed_at
    source.data.pending = replace(
        source.data.pending,
        ops=(
            PendingOp("general", "join", 1, now + 3_000, owner="ada"),
            PendingOp("general", "join", 2, now + 1_000),
            PendingOp("general", "join", 1, now + 2_000, owner="bo"),
        ),
    )
    stream = PlainStream()
    snap = model.tick()
    assert [(r.owner, r.attempt) for r in snap.pending.rows] == [(None, 2), ("ada", 1), ("bo", 1)]
    lines = stream.lines(snap)
    assert any(line.endswith("pending join #general (ada) attempt 1") for line in lines), lines
    assert any(line.endswith("pending join #general attempt 2") for line in lines), lines
    source.data.pending = replace(source.data.pending, ops=source.data.pending.ops[1:])
    assert [line[9:] for line in stream.lines(model.tick())] == ["resolved join #general (ada)"]


def test_check_exit_codes():
    model, source, _ = model_for()
    result = check_snapshot(model.tick())
    assert result.code == 1 and result.line.startswith("DEGRADED: space=demo")
    source.data.pending = replace(source.data.pending, ops=())
    result = check_snapshot(model.tick())
    assert result.code == 0 and result.line.startswith("OK: ") and "delivery=serving" in result.line
    for verdict, code in [("no-lease", 2), ("stale", 2), ("no-responder", 2), ("refused", 3),
                          ("unverified", 3), ("not-ready", 1), ("unreachable", 2)]:  # fmt: skip
        source.data.lease, source.data.connection, _ = lease_case(verdict)
        result = check_snapshot(model.tick())
        assert result.code == code, (verdict, result.line)
        assert f"delivery={verdict}" in result.line


def test_a_lost_quorum_is_critical_on_every_surface():
    """A leaderless replicated stream stores nothing and durable delivery has stopped: with the
    daemon answering and every column read, the table, the console pane and `check` say
    critical (exit 2), in the same words as `check`'s no-evidence path and `status`."""
    model, source, _ = model_for(lease_data("quorum-lost"))
    snap = model.tick()
    assert (snap.lease.verdict, snap.lease.severity) == ("quorum-lost", "critical")
    assert QUORUM_LOST_CONSEQUENCE in snap.lease.consequence, snap.lease.consequence
    result = check_snapshot(snap)
    assert result.code == 2 and result.line.startswith("CRITICAL: "), result.line
    assert "delivery=quorum-lost" in result.line and QUORUM_LOST_CONSEQUENCE in result.line
    verdict = lease_verdict("present", ready=True, responder="answered", cluster="lost")
    assert verdict.verdict == "quorum-lost", verdict
    said = status_consequence(verdict)
    assert QUORUM_LOST_CONSEQUENCE in said, said
    line = quorum_lost_line("demo", "no leader for CHAT_demo", cast(Any, _NoStartSession()))
    assert line.startswith("CRITICAL: ") and "delivery=quorum-lost" in line, line
    assert QUORUM_LOST_CONSEQUENCE in line, line
    # a lease read the leaderless bucket failed: "refused", critical, in the same words
    refused = table_rule({"read": "failed", "cluster": "lost"})
    assert (refused.verdict, refused.severity) == ("refused", "critical"), refused
    assert QUORUM_LOST_CONSEQUENCE in refused.consequence, refused.consequence


class _NoStartSession:
    class source:  # noqa: N801 - the attribute check reads
        start_error = None


def test_retry_names_another_agents_row_by_owner():
    assert parse_command("retry join #general @ada") == RetryNow("general", "join", "ada")
    assert parse_command("retry leave review") == RetryNow("review", "leave")
    assert RetryNow("general", "join", "ada").label == "join #general @ada"
    for bad in ("retry join #general ada", "retry join #general @", "retry join a b @c"):
        with pytest.raises(CommandParseError, match="usage: retry"):
            parse_command(bad)


def test_plain_stream_says_nothing_but_connecting_before_the_first_connect():
    data = demo_data()
    data.connection = ConnectionInput("connecting")
    model, source, _ = model_for(data)
    stream = PlainStream()
    assert stream.lines(model.tick()) == ["06:00:00 link connecting nats://127.0.0.1:4222"]
    source.data.connection = ConnectionInput("connected", since=FIXED_NOW)
    lines = stream.lines(model.tick())
    assert lines[0] == "06:00:00 link connected nats://127.0.0.1:4222"
    assert lines[1].startswith("06:00:00 delivery serving")
