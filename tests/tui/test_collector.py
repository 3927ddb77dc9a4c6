"""How the console runs the cyclic garbage collector while on screen (tui/collector.py).

The timing claims (what this buys at 5,000 peers) are in bench/console.py and the README; these
tests check the behaviour: what is frozen and when, which passes run after a painted tick, and
that the collector is put back on exit.
"""

from __future__ import annotations

import gc
import weakref
from typing import Any

from tui_helpers import settle

from cotal_tui.tui.collector import MIDDLE_EVERY, NEVER, YOUNG_THRESHOLD, CollectorPlan
from waiting import wait_for

SIZE = (160, 44)


class Cycle:
    """An object that refers to itself: only the cyclic collector frees it once dropped."""

    def __init__(self) -> None:
        self.me = self


def dropped_cycle() -> weakref.ref[Cycle]:
    return weakref.ref(Cycle())


def tracked(obj: object) -> bool:
    """Whether `obj` is in a generation the collector walks (frozen objects are in none)."""
    return any(o is obj for o in gc.get_objects())


def test_hold_freezes_what_exists_and_stops_automatic_full_passes_until_release():
    before = gc.get_threshold()
    existing: dict[str, Any] = {"a": [1, 2]}
    plan = CollectorPlan()
    plan.hold()
    try:
        assert gc.get_threshold() == (max(before[0], YOUNG_THRESHOLD), before[1], NEVER)
        assert not tracked(existing), "an object built before hold is still walked by passes"
        later: dict[str, Any] = {"b": [3, 4]}
        assert tracked(later)
    finally:
        plan.release()
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
    assert tracked(existing)


def test_between_ticks_collects_young_cycles_and_the_middle_generation_every_tenth_time():
    generations: list[int] = []

    def record(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            generations.append(info["generation"])

    plan = CollectorPlan()
    plan.hold()
    gc.callbacks.append(record)
    try:
        for _ in range(2 * MIDDLE_EVERY):
            ref = dropped_cycle()
            assert ref() is not None
            plan.between_ticks()
            assert ref() is None, "a cycle dropped before the pass survived it"
    finally:
        gc.callbacks.remove(record)
        plan.release()
    expected = ([0] * (MIDDLE_EVERY - 1) + [1]) * 2
    assert generations == expected


async def test_the_initial_load_is_frozen_while_on_screen_and_thawed_on_exit(make_rig):
    rig = make_rig()
    roster = rig.source.data.roster
    assert tracked(roster)
    async with rig.app.run_test(size=SIZE) as pilot:
        await settle(pilot, rig)
        assert not tracked(roster), "the roster loaded before the first tick is still walked"
        assert gc.get_threshold()[2] == NEVER
    assert tracked(roster)
    assert gc.get_threshold()[2] != NEVER


async def test_a_cycle_dropped_between_ticks_is_collected_after_the_next_painted_tick(make_rig):
    rig = make_rig(tick_interval=None)  # ticks only when the test calls tick()
    async with rig.app.run_test(size=SIZE) as pilot:
        await settle(pilot, rig)
        await pilot.pause()
        ref = dropped_cycle()
        await pilot.pause()
        assert ref() is not None, "something other than the tick collected the young generation"
        rig.app.tick()
        await wait_for(lambda: ref() is None, what="the young pass after a painted tick")
