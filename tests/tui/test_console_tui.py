"""Pilot tests: every console interaction, against fixed data (FixtureSource/FixtureCommands)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from textual.widgets import Input
from tui_helpers import notice, run_line, screen_text, settle, static_text

from cotal_tui.console.fixtures import (
    LEASE_VERDICTS,
    demo_data,
    lease_data,
)
from cotal_tui.console.source import MessageInput, RosterInput
from cotal_tui.tui.screens.detail import DetailScreen
from cotal_tui.tui.screens.help import HelpScreen
from cotal_tui.tui.widgets.panes import FeedPane, Pane, RosterPane
from cotal_tui.tui.widgets.table import RowTable

SIZE = (160, 44)


async def test_five_panes_titled_exactly_with_sources(make_rig):
    rig = make_rig()
    async with rig.app.run_test(size=SIZE) as pilot:
        await settle(pilot, rig)
        titles = [p.border_title for p in rig.app.screen.query(Pane)]
        assert titles == ["Roster", "Channels", "Delivery lease", "Pending joins & leaves", "Feed"]
        for pane in rig.app.screen.query(Pane):
            sub = str(pane.border_subtitle)
            assert " ago · " in sub or "never" in sub, f"{pane.border_title} lacks an age: {sub}"
        text = screen_text(rig.app)
        assert "presence-kv watch · <1s ago · fresh" in text
        assert "lease-kv · <1s ago · fresh" in text
        assert "DEMO" in text


async def test_roster_status_is_glyph_colour_and_word_offline_dimmed(make_rig):
    rig = make_rig()
    async with rig.app.run_test(size=SIZE) as pilot:
        await settle(pilot, rig)
        table = rig.app.screen.query_one("#roster-table", RowTable)
        by_key = {row.key: row for row in table.rows}
        assert by_key["ag-ada-01"].cells[0] == ("● working", "status--working")
        assert by_key["ag-bo-02"].cells[0] == ("◐ waiting", "status--waiting")
        assert by_key["ag-dee-04"].cells[0] == ("○ idle", "status--idle")
        gil = by_key["ag-gil-07"]
        assert gil.cells[0] == ("⊘ offline", "status--offline")
        assert gil.style == "rowtable--dim"
        assert [r.key for r in table.rows][-1] == "ag-gil-07", "offline peers sort last, kept"
        assert by_key["ag-ada-01"].style is None


@pytest.mark.parametrize("view", ["unpopulated", "stale"])
async def test_roster_view_banner_when_not_current(make_rig, view):
    data = demo_data()
    data.roster = replace(data.roster, view=view)
    rig = make_rig(data)
    async with rig.app.run_test(size=SIZE) as pilot:
        await settle(pilot, rig)
        banner = rig.app.screen.query_one("#roster-banner")
        assert banner.display
        text = screen_text(rig.app)
        assert f"roster {view}" in text
        assert rig.app.screen.query_one(RosterPane).has_class("-stale")
        rig.source.data.roster = replace(data.roster, view="current")
        rig.app.tick()
        await pilot.pause()
        assert not banner.display
        assert not rig.app.screen.query_one(RosterPane).has_class("-stale")


async def test_roster_source_goes_stale_without_updates(make_rig):
    rig = make_rig()
    async with rig.app.run_test(size=SIZE) as pilot:
        await settle(pilot, rig)
        rig.clock.advance(9_000)
        rig.app.tick()
        await pilot.pause()
        assert "presence-kv watch · 9s ago · stale: no update for 9s" in screen_text(rig.app)


async def test_channels_health_words_and_sparkline(make_rig):
    rig = make_rig()
    async with rig.app.run_test(size=SIZE) as pilot:
        await settle(pilot, rig)
        rows = {r.key: r for r in rig.app.screen.query_one("#channels-table", RowTable).rows}
        assert rows["general"].cells[3] == ("● durable backstop active", "sev--healthy")
        assert (
            rows["team.backend"]
            .cells[3][0]
            .startswith("◐ durable backstop unavailable — live messages still arrive")
        )
        assert rows["legacy"].cells[3][0].startswith("◐ durable cleanup pending")
        assert rows["general"].cells[4] == ("+4", "cell--mention")
        spark = rows["general"].cells[5][0]
        assert len(spark) == 12 and "█" in spark


async def test_active_channel_health_is_caveated_when_lease_is_unverified(make_rig):
    rig = make_rig(lease_data("unverified"))
    async with rig.app.run_test(size=SIZE) as pilot:
        await settle(pilot, rig)
        rows = {r.key: r for r in rig.app.screen.query_one("#channels-table", RowTable).rows}
        text, cls = rows["general"].cells[3]
        assert cls != "sev--healthy", "a §5.9 'active' must not be green without a serving lease"
        assert "lease verdict is unverified" in text


@pytest.mark.parametrize("verdict", ["no-responder", "stale", "quorum-lost", "stalled"])
async def test_a_channel_reads_degraded_while_the_backstop_is_down(make_rig, verdict: str):
    """Issue 12 item 8: during NO-RESPONDER a row never reads "durable backstop active"; nor
    while the cluster has lost a leader or the daemon's consumer stalled (issue 15)."""
    rig = make_rig(lease_data(verdict))
    async with rig.app.run_test(size=SIZE) as pilot:
        await settle(pilot, rig)
        rows = {r.key: r for r in rig.app.screen.query_one("#channels-table", RowTable).rows}
        text, cls = rows["general"].cells[3]
        assert cls == "sev--degraded", text
        assert "active" not in text and f"lease verdict {verdict}" in text, text


async def test_a_channel_never_reads_plain_active_while_a_cluster_node_is_lost(make_rig):
    """Issue 15 leftover: under NODE-LOST the daemon still answers and moves, but the row says
    the node is gone and there is no spare replica, in the degraded style — never green, never
    a bare "durable backstop active"."""
    rig = make_rig(lease_data("node-lost"))
    async with rig.app.run_test(size=SIZE) as pilot:
        await settle(pilot, rig)
        rows = {r.key: r for r in rig.app.screen.query_one("#channels-table", RowTable).rows}
        text, cls = rows["general"].cells[3]
        assert cls == "sev--degraded", (text, cls)
        assert text.startswith("◐ node lost"), text
        row = next(c for c in rig.model.snapshot.channels.rows if c.name == "general")
        assert row.health == "degraded" and row.health_caveat is None, row
        said = row.health_text or ""
        assert "without a spare replica" in said and "lease verdict node-lost" in said, said
        assert not said.startswith("durable backstop active"), said


@pytest.mark.parametrize("verdict", LEASE_VERDICTS)
async def test_lease_pane_names_one_verdict_and_its_consequence(make_rig, verdict):
    rig = make_rig(lease_data(verdict))
    async with rig.app.run_test(size=SIZE) as pilot:
        await settle(pilot, rig)
        snap = rig.model.snapshot
        assert snap.lease.verdict == verdict
        text = screen_text(rig.app)
        body = static_text(rig.app, "#lease-body")
        assert f"verdict {'●' if verdict == 'serving' else ''}" in body or verdict != "serving"
        assert verdict.upper() in text
        assert " ".join(snap.lease.consequence.split()) in body
        if verdict != "serving":
            assert "SERVING" not in text
            lease_pane = rig.app.screen.query_one("#lease")
            assert not lease_pane.has_class("-sev-healthy")


async def test_failure_wording_no_daemon_and_stale_lease(make_rig):
    rig = make_rig(lease_data("no-lease"))
    async with rig.app.run_test(size=SIZE) as pilot:
        await settle(pilot, rig)
        flat = static_text(rig.app, "#lease-body")
        assert "no delivery daemon holds the lease: no durable join can complete until a" in flat
    rig = make_rig(lease_data("stale"))
    async with rig.app.run_test(size=SIZE) as pilot:
        await settle(pilot, rig)
        flat = static_text(rig.app, "#lease-body")
        assert "the lease record is 48s old, past its 30s TTL: a dead daemon's leftover" in flat
        assert "expired 18s ago" in flat


async def test_pending_header_count_countdown_and_retry_now(make_rig):
    rig = make_rig()
    async with rig.app.run_test(size=SIZE) as pilot:
        await settle(pilot, rig)
        text = screen_text(rig.app)
        assert "2 pending · 1 boot join retrying (no durable membership" in text
        assert "in 8s" in text and "in 4s" in text
        rig.clock.advance(5_000)
        rig.app.tick()
        await pilot.pause()
        assert "in 3s" in screen_text(rig.app) and "due now" in screen_text(rig.app)
        await pilot.press("4")
        rig.app.last_result = None
        await pilot.press("r")
        from waiting import wait_for

        result = await wait_for(lambda: rig.app.last_result, what="retry outcome")
        assert result.text == "Retrying join #releases now."
        assert rig.commands.calls == [("retry", ("releases", "join"))]


async def test_pending_empty_is_said_not_silent(make_rig):
    data = demo_data()
    data.pending = replace(data.pending, ops=())
    rig = make_rig(data)
    async with rig.app.run_test(size=SIZE) as pilot:
        await settle(pilot, rig)
        assert "0 pending · nothing pending: every join and leave has completed" in screen_text(
            rig.app
        )


async def test_feed_follow_pause_and_message_detail(make_rig):
    rig = make_rig()
    async with rig.app.run_test(size=SIZE) as pilot:
        await settle(pilot, rig)
        feed = rig.app.screen.query_one(FeedPane)
        table = rig.app.screen.query_one("#feed-table", RowTable)
        await pilot.press("5")
        assert feed.follow and table.cursor == len(table.rows) - 1
        await pilot.press("up")
        assert not feed.follow
        rig.source.push(
            MessageInput("m-new", rig.clock.now, "ag-cy-03", "cy", "channel", "general", "new!")
        )
        from waiting import wait_for

        await wait_for(
            lambda: rig.app.tick().feed.received == 13, what="the pushed message to arrive"
        )
        await pilot.pause()
        assert "paused (1 new, f follows)" in str(feed.border_subtitle)
        assert table.cursor_key == "11", "paused: the cursor stays on its row, new rows wait"
        await pilot.press("f")
        rig.app.tick()
        await pilot.pause()
        assert feed.follow and table.cursor == len(table.rows) - 1
        await pilot.press("enter")
        assert isinstance(rig.app.screen, DetailScreen)
        body = screen_text(rig.app)
        assert "multicast (channel)" in body and "new!" in body and "m-new" in body
        await pilot.press("escape")
        assert not isinstance(rig.app.screen, DetailScreen)


async def test_join_durable_live_and_live_only_wording(make_rig):
    rig = make_rig()
    async with rig.app.run_test(size=SIZE) as pilot:
        await settle(pilot, rig)
        assert (await run_line(pilot, rig, "join #ops")).text == "Joined #ops (live)."
        assert (
            await run_line(pilot, rig, "join #releases")
        ).text == "Joined #releases (durable backstop active)."
        assert (await run_line(pilot, rig, "join general")).text == "Already on #general."
        rig.commands.daemon_answers = False
        result = await run_line(pilot, rig, "join #design")
        assert result.text == (
            "Joined #design (LIVE only — durable backstop unavailable (no responders on "
            "ctl.delivery); messages sent while you're offline won't be replayed)"
        )
        assert notice(rig.app) == result.text
        rig.app.tick()
        await pilot.pause()
        rows = {r.key: r for r in rig.app.screen.query_one("#channels-table", RowTable).rows}
        assert rows["ops"].cells[2][0] == "● yes"


async def test_join_refused_by_acl_is_worded(make_rig):
    rig = make_rig()
    rig.commands.acl_denied.add("secret")
    async with rig.app.run_test(size=SIZE) as pilot:
        await settle(pilot, rig)
        result = await run_line(pilot, rig, "join #secret")
        assert result.outcome == "failed"
        assert result.text == (
            'join #secret failed: cannot join "secret": not within this agent\'s read ACL '
            "(allowSubscribe)"
        )
        assert "not within this agent's read ACL" in screen_text(rig.app)


async def test_leave_fail_closed_wording(make_rig):
    rig = make_rig()
    rig.commands.daemon_answers = False
    async with rig.app.run_test(size=SIZE) as pilot:
        await settle(pilot, rig)
        result = await run_line(pilot, rig, "leave #general")
        assert result.outcome == "failed"
        assert "nothing changed locally (fail-closed)" in result.text
        rig.commands.daemon_answers = True
        assert (await run_line(pilot, rig, "leave #general")).text == "Left #general."
        assert (await run_line(pilot, rig, "leave #general")).text == "Not on #general."


async def test_post_with_mentions_dm_status_activity(make_rig):
    rig = make_rig()
    async with rig.app.run_test(size=SIZE) as pilot:
        await settle(pilot, rig)
        result = await run_line(pilot, rig, "post #general @cy and @Fox, look")
        assert result.text == "Posted to #general (stored seq 101; delivery not confirmed)."
        assert rig.commands.calls[-1] == ("post", ("general", "@cy and @Fox, look", ("cy", "fox")))
        result = await run_line(pilot, rig, "dm @bo hello")
        assert result.text.startswith("DM to @bo (stored seq 102; recipient waiting at send")
        assert rig.commands.calls[-1] == ("dm", ("ag-bo-02", "hello"))
        assert (await run_line(pilot, rig, "status working")).text == "Status set to working."
        assert (
            await run_line(pilot, rig, "activity reviewing PRs")
        ).text == "Activity set to 'reviewing PRs'."
        assert (await run_line(pilot, rig, "activity")).text == "Activity cleared."


async def test_dm_ambiguous_name_refused_with_candidates(make_rig):
    rig = make_rig()
    async with rig.app.run_test(size=SIZE) as pilot:
        await settle(pilot, rig)
        result = await run_line(pilot, rig, "dm @kit hi")
        assert result.outcome == "refused"
        assert "@kit is ambiguous" in result.text
        assert (
            "ag-kit-09 (builder, idle)" in result.text
            and "ag-kit-10 (tester, working)" in result.text
        )
        assert not any(c[0] == "dm" for c in rig.commands.calls)
        assert (await run_line(pilot, rig, "dm ag-kit-09 hi")).ok


async def test_dm_unknown_name_on_unpopulated_roster_is_refused(make_rig):
    data = demo_data()
    data.roster = RosterInput("unpopulated", (), observed_at=None)
    rig = make_rig(data)
    async with rig.app.run_test(size=SIZE) as pilot:
        await settle(pilot, rig)
        result = await run_line(pilot, rig, "dm @zed hi")
        assert result.outcome == "refused"
        assert "the roster is unpopulated, so a missing name is not an absence" in result.text


@pytest.mark.parametrize(
    "line",
    [
        "join #ops",
        "leave #general",
        "post #general hi",
        "dm @bo hi",
        "status working",
        "activity busy",
        "retry join #releases",
    ],
)
async def test_read_only_refuses_every_write_verb_with_a_reason(make_rig, line):
    rig = make_rig(read_only=True)
    async with rig.app.run_test(size=SIZE) as pilot:
        await settle(pilot, rig)
        assert "READ-ONLY" in screen_text(rig.app)
        result = await run_line(pilot, rig, line)
        assert result.outcome == "refused"
        assert "read-only" in result.text and "--read-only" in result.text
        assert rig.commands.calls == []


async def test_bad_command_lines_say_the_usage(make_rig):
    rig = make_rig()
    async with rig.app.run_test(size=SIZE) as pilot:
        await settle(pilot, rig)
        await pilot.press("colon", *"frobnicate", "enter")
        assert "unknown command 'frobnicate'" in notice(rig.app)
        await pilot.press("colon", *"status offline", "enter")
        assert "status must be working, waiting or idle" in notice(rig.app)
        await pilot.press("colon", "escape")
        assert not rig.app.screen.query_one("#command-line", Input).display


async def test_filter_regex_and_inverse_on_roster_and_feed(make_rig):
    rig = make_rig()
    async with rig.app.run_test(size=SIZE) as pilot:
        await settle(pilot, rig)
        roster = rig.app.screen.query_one("#roster-table", RowTable)
        feed = rig.app.screen.query_one("#feed-table", RowTable)
        await pilot.press("slash", *"^(working|waiting) ", "enter")
        names = {r.cells[1][0] for r in roster.rows}
        assert names == {"ada", "cy", "fox", "kit", "bo", "hal"}
        await pilot.press("slash", "ctrl+u", *"!fox", "enter")
        assert "fox" not in {r.cells[1][0] for r in roster.rows}
        assert all(r.cells[1][0] != "fox" for r in feed.rows)
        assert len(feed.rows) == 9, "fox's two posts and bo's @fox mention are hidden"
        assert "filter /!fox/" in str(rig.app.screen.query_one(RosterPane).border_subtitle)
        await pilot.press("slash", "ctrl+u", *"(unclosed", "enter")
        assert "invalid regex" in notice(rig.app)
        assert rig.app.row_filter is not None and rig.app.row_filter.text == "!fox"
        await pilot.press("escape")
        assert rig.app.row_filter is None
        assert len(roster.rows) == 12


async def test_column_sort_cycles_and_reverses(make_rig):
    rig = make_rig()
    async with rig.app.run_test(size=SIZE) as pilot:
        await settle(pilot, rig)
        roster = rig.app.screen.query_one("#roster-table", RowTable)
        await pilot.press("1", "s")
        names = [r.cells[1][0] for r in roster.rows]
        assert names == sorted(names, key=str.lower)
        assert "sorted by name" in notice(rig.app)
        await pilot.press("S")
        names = [r.cells[1][0] for r in roster.rows]
        assert names == sorted(names, key=str.lower, reverse=True)


async def test_drill_down_agent_channel_lease_and_back(make_rig):
    rig = make_rig()
    async with rig.app.run_test(size=SIZE) as pilot:
        await settle(pilot, rig)
        await pilot.press("1", "enter")
        assert isinstance(rig.app.screen, DetailScreen)
        text = screen_text(rig.app)
        assert "Agent ada" in text and "working · progress unknown" in text
        assert "claude-code · claude-sonnet" in text
        await pilot.press("r")
        assert '"card"' in screen_text(rig.app)
        await pilot.press("escape")
        await pilot.press("2", "enter")
        text = screen_text(rig.app)
        assert "Channel #general" in text and "durable membership, generation 3" in text
        assert '"replayWindow": "24h"' in text
        await pilot.press("escape")
        assert rig.app.tick().channels.rows[0].unread == 0, "viewing a channel reads it"
        await pilot.press("3", "enter")
        text = screen_text(rig.app)
        assert "Delivery lease record" in text and "responder-roundtrip" in text
        await pilot.press("r")
        assert '"holder": "dlv-4b2d9e"' in screen_text(rig.app)
        await pilot.press("escape")
        assert not isinstance(rig.app.screen, DetailScreen)


async def test_help_lists_focused_pane_keys_first(make_rig):
    rig = make_rig()
    async with rig.app.run_test(size=SIZE) as pilot:
        await settle(pilot, rig)
        await pilot.press("4", "question_mark")
        assert isinstance(rig.app.screen, HelpScreen)
        keys = static_text(rig.app, "#help-body")
        verbs = static_text(rig.app, "#help-verbs")
        assert keys.index("Pending joins & leaves pane") < keys.index("Global")
        local = keys[: keys.index("Global")]
        assert "r Retry now" in local and "Quit" not in local
        assert "^q/q Quit" in keys and ":join <#channel>" in verbs
        await pilot.press("escape")
        assert not isinstance(rig.app.screen, HelpScreen)
        await pilot.press("2", "question_mark")
        keys = static_text(rig.app, "#help-body")
        local = keys[: keys.index("Global")]
        assert "Channels pane" in local and "a Join" in local and "x Leave" in local
        assert "Retry now" not in keys, "help lists only the keys active here"


async def test_palette_runs_the_same_verbs(make_rig):
    rig = make_rig()
    async with rig.app.run_test(size=SIZE) as pilot:
        await settle(pilot, rig)
        await pilot.press("ctrl+p")
        await pilot.press(*"join #ops")
        from waiting import wait_for

        await wait_for(
            lambda: "join #ops" in screen_text(rig.app), what="the palette to offer join #ops"
        )
        await pilot.press("enter")
        result = await wait_for(lambda: rig.app.last_result, what="the palette's join outcome")
        assert result.text == "Joined #ops (live)."


async def test_palette_verbs_are_refused_in_read_only(make_rig):
    rig = make_rig(read_only=True)
    async with rig.app.run_test(size=SIZE) as pilot:
        await settle(pilot, rig)
        await pilot.press("ctrl+p", *"status idle")
        from waiting import wait_for

        await wait_for(lambda: "status idle" in screen_text(rig.app), what="palette entry")
        await pilot.press("enter")
        result = await wait_for(lambda: rig.app.last_result, what="the refusal")
        assert result.outcome == "refused" and "--read-only" in result.text


async def test_channel_keys_prefill_the_command_line(make_rig):
    rig = make_rig()
    async with rig.app.run_test(size=SIZE) as pilot:
        await settle(pilot, rig)
        await pilot.press("2", "x")
        line = rig.app.screen.query_one("#command-line", Input)
        assert line.display and line.value == "leave #general"
        await pilot.press("escape")
        await pilot.press("2", "p")
        assert line.value == "post #general "


async def test_demo_badge_only_in_demo_and_theme_flag(make_rig):
    rig = make_rig(demo=False, theme="cotal-mono")
    async with rig.app.run_test(size=SIZE) as pilot:
        await settle(pilot, rig)
        assert not rig.app.screen.query_one("#demo-badge").display
        assert rig.app.theme == "cotal-mono"


async def test_q_quits(make_rig):
    rig = make_rig()
    async with rig.app.run_test(size=SIZE) as pilot:
        await settle(pilot, rig)
        await pilot.press("q")
        await pilot.pause()
        assert rig.app.return_code is not None or not rig.app.is_running


async def test_mouse_header_click_sorts_and_row_click_selects(make_rig):
    rig = make_rig()
    async with rig.app.run_test(size=SIZE) as pilot:
        await settle(pilot, rig)
        roster = rig.app.screen.query_one("#roster-table", RowTable)
        await pilot.click("#roster-table", offset=(3, 0))
        names = [r.cells[1][0] for r in roster.rows]
        assert names == sorted(names, key=str.lower), "a header click sorts (next column)"
        await pilot.click("#roster-table", offset=(3, 3))
        assert roster.cursor == 2 and roster.has_focus


async def test_copy_id_and_no_sort_offered_on_feed(make_rig):
    rig = make_rig()
    async with rig.app.run_test(size=SIZE) as pilot:
        await settle(pilot, rig)
        await pilot.press("1", "y")
        assert "copied ag-ada-01 to the clipboard" in notice(rig.app)
        assert rig.app.clipboard == "ag-ada-01"
        await pilot.press("5", "question_mark")
        keys = static_text(rig.app, "#help-body")
        assert "Sort" not in keys[: keys.index("Global")], "the feed keeps arrival order"


async def test_retry_now_on_another_agents_row_names_its_owner(make_rig):
    from cotal_tui.console.source import PendingOp

    data = demo_data()
    data.pending = replace(
        data.pending,
        ops=(PendingOp("general", "join", 1, data.pending.observed_at + 3_000, owner="ada"),),
    )
    rig = make_rig(data)
    async with rig.app.run_test(size=SIZE) as pilot:
        await settle(pilot, rig)
        rig.app.last_result = None
        await pilot.press("4", "r")
        from waiting import wait_for

        result = await wait_for(lambda: rig.app.last_result, what="retry outcome")
        assert rig.commands.calls == [("retry", ("general", "join", "ada"))]
        assert result.text == "Retrying join #general @ada now."
        cells = [c[0] for c in rig.app.screen.query_one("#pending-table").rows[0].cells]
        assert cells[:3] == ["join", "ada", "#general"], cells


async def test_a_failing_source_getter_is_shown_not_fatal(make_rig):
    rig = make_rig()
    async with rig.app.run_test(size=SIZE) as pilot:
        await settle(pilot, rig)

        def broken():
            raise RuntimeError("lease getter exploded")

        rig.source.lease = broken
        rig.clock.advance(3_000)
        snap = rig.app.tick()
        await pilot.pause()
        assert snap is rig.model.snapshot, "the last good snapshot stays on screen"
        assert "console tick failed (RuntimeError: lease getter exploded)" in notice(rig.app)
        assert "3s old" in notice(rig.app)
        assert rig.app.is_running
    # A late interval tick during teardown (the getter still failing) must not raise either.
    assert rig.app.tick() is rig.model.snapshot
