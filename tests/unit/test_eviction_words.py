"""evictedBeforeRouting in plain words: `status` text and the console's daemon lines."""

from __future__ import annotations

from cotal_tui.commands.status import eviction_lines
from cotal_tui.console.snapshot import DaemonView, SourceView
from cotal_tui.mesh.eviction_stats import eviction_words
from cotal_tui.tui.render import daemon_markup


def _view(evicted: tuple[tuple[str, int], ...]) -> DaemonView:
    return DaemonView(
        running=True,
        holder="D",
        ready=True,
        revision=3,
        last_renew_age_ms=1000,
        fanned_out=10,
        transferred=10,
        deferred=0,
        dropped=0,
        dead_lettered=0,
        last_error=None,
        last_error_age_ms=None,
        refused=None,
        source=SourceView("daemon", "in-process daemon", 0, "fresh"),
        evicted_before_routing=evicted,
    )


def test_status_text_names_each_channel_and_the_consequence() -> None:
    lines = eviction_lines({"evictedBeforeRouting": {"hot": 6109, "quiet": 0, "?": 2}})
    assert lines == [
        "lost before routing: 2 message(s) on an unknown channel were evicted from CHAT before "
        "the delivery daemon routed them — they never reached offline durable members",
        "lost before routing: 6109 message(s) on #hot were evicted from CHAT before the delivery "
        "daemon routed them — they never reached offline durable members",
    ]
    assert eviction_lines({"evictedBeforeRouting": None}) == []
    assert eviction_lines({}) == []


def test_console_daemon_lines_say_it_only_when_something_was_evicted() -> None:
    assert "lost before routing" not in daemon_markup(_view(()))
    text = daemon_markup(_view((("hot", 12),)))
    assert "lost before routing:[/] 12 message(s) on #hot were evicted from CHAT" in text
    assert "they never reached offline members" in text


def test_a_below_floor_count_the_daemon_could_not_make_is_said_unknown_with_why() -> None:
    why = "this credential lacks $JS.API.STREAM.MSG.GET.CHAT_main"
    d = {"evictedBeforeRouting": {}, "belowFloorAtBind": None, "belowFloorAtBindUnknown": why}
    want = f"evicted below the floor at bind (a dead daemon's copies): unknown — {why}"
    assert eviction_lines(d) == [want]  # status text
    assert eviction_words(d) == [want]  # the console's lease pane (a daemon in another process)
    counted = {**d, "belowFloorAtBind": {"from": 5, "to": 9, "counted": 0}}
    counted["belowFloorAtBindUnknown"] = None
    assert eviction_lines(counted) == [] and eviction_words(counted) == []
