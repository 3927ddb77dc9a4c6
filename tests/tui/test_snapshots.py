"""SVG baselines (snapshots/test_snapshots/): pinned size, UTC, colours, no caret blink, fixed data.

Accept intended changes with `pytest tests/tui/test_snapshots.py --snapshot-update`, then look at
the SVGs before committing.
"""

from __future__ import annotations

import pytest
from tui_helpers import settle

from cotal_tui.console.fixtures import LEASE_VERDICTS, lease_data

SIZE = (160, 44)
LEASE_SIZE = (120, 34)


def _settled(rig):
    async def run_before(pilot) -> None:
        await settle(pilot, rig)

    return run_before


def test_main_screen_demo_state(snap_compare, make_rig):
    rig = make_rig(tick_interval=None)
    assert snap_compare(rig.app, terminal_size=SIZE, run_before=_settled(rig))


def test_help_screen(snap_compare, make_rig):
    rig = make_rig(tick_interval=None)
    assert snap_compare(
        rig.app, terminal_size=SIZE, run_before=_settled(rig), press=["1", "question_mark"]
    )


def test_agent_detail(snap_compare, make_rig):
    rig = make_rig(tick_interval=None)
    assert snap_compare(rig.app, terminal_size=SIZE, run_before=_settled(rig), press=["1", "enter"])


def test_read_only_command_refusal(snap_compare, make_rig):
    rig = make_rig(tick_interval=None, read_only=True)

    async def run_before(pilot) -> None:
        await settle(pilot, rig)
        await pilot.press("colon")
        rig.app.screen.query_one("#command-line").insert_text_at_cursor("join #ops")
        await pilot.press("enter")
        from waiting import wait_for

        await wait_for(lambda: rig.app.last_result, what="the read-only refusal")
        rig.app.tick()

    assert snap_compare(rig.app, terminal_size=SIZE, run_before=run_before)


@pytest.mark.parametrize("verdict", LEASE_VERDICTS)
def test_lease_pane_verdict(snap_compare, make_rig, verdict):
    rig = make_rig(lease_data(verdict), tick_interval=None, demo=False)
    assert snap_compare(rig.app, terminal_size=LEASE_SIZE, run_before=_settled(rig), press=["3"])


def test_dead_letter_detail(snap_compare, make_rig):
    """Issue 10: the lease pane's `d` lists the daemon's dead letters with their reasons."""
    rig = make_rig(lease_data("dead-letters"), tick_interval=None, demo=False)
    assert snap_compare(
        rig.app, terminal_size=LEASE_SIZE, run_before=_settled(rig), press=["3", "d"]
    )


def test_main_screen_mono_theme(snap_compare, make_rig):
    """Greys only: every status still reads by glyph and word."""
    rig = make_rig(lease_data("no-responder"), tick_interval=None, theme="cotal-mono")
    assert snap_compare(rig.app, terminal_size=SIZE, run_before=_settled(rig))


# -- issue 12: small terminals (item 11) and last-known rows after link loss (item 8) ----------


@pytest.mark.parametrize(
    ("size", "press"),
    [((80, 24), []), ((80, 24), ["5"]), ((80, 24), ["3"]), ((120, 40), []), ((200, 50), [])],
    ids=["80x24-roster", "80x24-feed", "80x24-lease", "120x40", "200x50"],
)
def test_terminal_sizes(snap_compare, make_rig, size, press):
    rig = make_rig(tick_interval=None)

    async def run_before(pilot) -> None:
        await settle(pilot, rig)
        for key in press:
            await pilot.press(key)
        rig.app.tick()
        await pilot.pause()

    assert snap_compare(rig.app, terminal_size=size, run_before=run_before)


def test_link_lost_rows_are_last_known(snap_compare, make_rig):
    from dataclasses import replace

    from cotal_tui.console.fixtures import FIXED_NOW
    from cotal_tui.console.source import ConnectionInput, RosterInput

    rig = make_rig(tick_interval=None)

    async def run_before(pilot) -> None:
        await settle(pilot, rig)
        data = rig.source.data
        since = FIXED_NOW - 3_000
        data.connection = ConnectionInput("reconnecting", since=since, reconnect_attempts=2)
        swept = tuple(replace(p, status="offline") for p in data.roster.peers)
        data.roster = RosterInput("stale", swept, observed_at=FIXED_NOW - 9_000)
        rig.app.tick()
        await pilot.pause()

    assert snap_compare(rig.app, terminal_size=SIZE, run_before=run_before)


def test_main_screen_as_an_agent(snap_compare, make_rig):
    """`console --creds ada.creds`: the header says who and what the cred may read and post,
    #general and #review are durable memberships, the messages sent while away read backlog."""
    from cotal_tui.console.fixtures import agent_data

    rig = make_rig(agent_data(), tick_interval=None, demo=False)
    assert snap_compare(rig.app, terminal_size=SIZE, run_before=_settled(rig))
