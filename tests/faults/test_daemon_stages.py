"""The daemon in stage processes (issue 16): a stage killed by pid is the daemon's crash.

`cotal-tui daemon --stages processes` runs its fan-out and its reader as two child processes;
the parent holds the lease and the ctl.delivery responder. Killing either stage by pid under
load must stop the whole daemon (every one of its processes gone, checked by pid), release the
lease (checked in the registry, and no holder file: a successor could not take an unreleased
lease over), and a successor must then deliver every copy to the offline members, counted over
the DLV stream. Killing the parent must take both stages with it. The in-flight entries of a
killed stage come back after their ack_wait (60 s), so a loaded run lasts up to ~80 s.
"""

from __future__ import annotations

import asyncio
import os

import pytest
from cli_process import pid_alive
from harness import (
    DaemonProc,
    Daemons,
    DlvObserver,
    Load,
    assert_every_copy_once,
    full_suite,
    setup_members,
)
from plane3_support import connect

from cotal_tui.mesh.kv import KvBucket
from cotal_tui.mesh.lease import read_lease
from cotal_tui.protocol.names import delivery_bucket
from waiting import wait_for

pytestmark = [pytest.mark.faults, pytest.mark.timeout(400)]

MEMBERS = [f"UMEMBER{i:02d}" + "M" * 47 for i in range(6)]
SENDERS = [f"USENDER{i:02d}" + "S" * 47 for i in range(4)]
CHANNEL = "stages"
RATE = 300.0
STAGES = "processes"


def _kill_leftovers(pids: list[int]) -> None:
    for pid in pids:
        if pid_alive(pid):
            os.kill(pid, 9)


async def _all_gone(daemon: DaemonProc, pids: dict[str, int], what: str) -> None:
    everyone = {"parent": daemon.pid, **pids}
    await wait_for(
        lambda: daemon.exited and not any(pid_alive(p) for p in everyone.values()),
        what=f"every process of the daemon gone after {what} "
        f"(alive: {[r for r, p in everyone.items() if pid_alive(p)]})",
        timeout=30,
    )


@pytest.mark.parametrize(
    "stage",
    ["fanout", pytest.param("reader", marks=pytest.mark.faults_full)],
)
async def test_a_killed_stage_stops_the_daemon_and_a_successor_loses_nothing(
    stage: str, open_space, tmp_path
) -> None:
    total = 3000 if full_suite() else 1200
    url, space = open_space.url, open_space.space
    tools = await connect(url, "faults-tools")
    daemons = Daemons(url, space, None, tmp_path, STAGES)  # no holder file: only a release frees it
    observer = DlvObserver(tools, space)
    pids: dict[str, int] = {}
    try:
        first = await daemons.serving_one()
        pids = first.stage_pids()
        assert all(pid_alive(p) for p in pids.values()), pids
        await setup_members(tools, space, CHANNEL, MEMBERS, SENDERS)
        await observer.start()
        load = Load(tools, space, CHANNEL, SENDERS)
        publishing = asyncio.ensure_future(load.run(total, RATE))
        await wait_for(
            lambda: len(load.published) >= total * 2 // 5,
            what=f"{total * 2 // 5} messages published before the kill",
            timeout=60,
        )
        os.kill(pids[stage], 9)
        await _all_gone(first, pids, f"its {stage} stage was killed")
        assert first.proc.proc.returncode == 1, first.proc.output
        name = "fan-out" if stage == "fanout" else "reader"
        assert f"the {name} stage (pid {pids[stage]}) exited" in first.proc.output
        assert await read_lease(KvBucket(tools, delivery_bucket(space))) is None, (
            "the crashed daemon did not release lease.0"
        )
        await daemons.serving_one(timeout=30)
        await publishing
        await assert_every_copy_once(total, load.published, MEMBERS, observer)
    finally:
        await observer.stop()
        daemons.close()
        _kill_leftovers(list(pids.values()))
        await tools.close()


async def test_killing_the_parent_takes_both_stages_with_it(open_space, tmp_path) -> None:
    url, space = open_space.url, open_space.space
    daemons = Daemons(url, space, tmp_path / "state", tmp_path, STAGES)
    pids: dict[str, int] = {}
    try:
        first = await daemons.serving_one()
        pids = first.stage_pids()
        assert all(pid_alive(p) for p in pids.values()), pids
        first.sigkill()
        await _all_gone(first, pids, "its parent was SIGKILLed")
        # the lease it left is its own dead process's: the successor takes it over at once
        await daemons.serving_one(timeout=30)
    finally:
        daemons.close()
        _kill_leftovers(list(pids.values()))


@pytest.mark.faults_full
async def test_killing_the_parent_under_load_loses_nothing(open_space, tmp_path) -> None:
    total = 3000
    url, space = open_space.url, open_space.space
    tools = await connect(url, "faults-tools")
    daemons = Daemons(url, space, tmp_path / "state", tmp_path, STAGES)
    observer = DlvObserver(tools, space)
    pids: dict[str, int] = {}
    try:
        first = await daemons.serving_one()
        pids = first.stage_pids()
        await setup_members(tools, space, CHANNEL, MEMBERS, SENDERS)
        await observer.start()
        load = Load(tools, space, CHANNEL, SENDERS)
        publishing = asyncio.ensure_future(load.run(total, RATE))
        await wait_for(
            lambda: len(load.published) >= total * 2 // 5,
            what=f"{total * 2 // 5} messages published before the kill",
            timeout=60,
        )
        first.sigkill()
        await _all_gone(first, pids, "its parent was SIGKILLed under load")
        await daemons.serving_one(timeout=30)
        await publishing
        await assert_every_copy_once(total, load.published, MEMBERS, observer)
    finally:
        await observer.stop()
        daemons.close()
        _kill_leftovers(list(pids.values()))
        await tools.close()


async def test_a_clean_stop_stops_both_stages_and_releases_the_lease(open_space, tmp_path) -> None:
    """SIGTERM to the parent (as systemd sends it): exit 0, every process gone, lease free."""
    url, space = open_space.url, open_space.space
    tools = await connect(url, "faults-tools")
    daemons = Daemons(url, space, None, tmp_path, STAGES)
    pids: dict[str, int] = {}
    try:
        first = await daemons.serving_one()
        pids = first.stage_pids()
        assert first.proc.terminate() == 0, first.proc.output
        await _all_gone(first, pids, "SIGTERM")
        assert await read_lease(KvBucket(tools, delivery_bucket(space))) is None
    finally:
        daemons.close()
        _kill_leftovers(list(pids.values()))
        await tools.close()
