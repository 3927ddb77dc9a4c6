"""A delivery daemon SIGKILLed under load: a successor takes over and nothing is lost.

Ten offline durable members, ten senders; the daemon is killed by pid mid-load and a successor
(the same identity and state dir, as a supervisor would restart it) is started at once. Entries
the dead daemon had in flight come back after their ack_wait (60 s), so each run lasts ~80 s.
"""

from __future__ import annotations

import asyncio

import pytest
from harness import (
    Daemons,
    DlvObserver,
    Load,
    assert_every_copy_once,
    fault_runs,
    full_suite,
    setup_members,
)
from plane3_support import connect

from waiting import wait_for

pytestmark = [pytest.mark.faults, pytest.mark.timeout(400)]

MEMBERS = [f"UMEMBER{i:02d}" + "M" * 47 for i in range(10)]
SENDERS = [f"USENDER{i:02d}" + "S" * 47 for i in range(10)]
CHANNEL = "faults"
RATE = 300.0


@pytest.mark.parametrize("run", range(fault_runs()))
async def test_daemon_sigkill_with_ten_senders_loses_and_duplicates_nothing(
    run: int, open_space, tmp_path
) -> None:
    """The successor proves the lease its dead predecessor left and takes it over at once."""
    await _ten_senders(open_space, tmp_path, tmp_path / "state")


@pytest.mark.faults_full
async def test_daemon_sigkill_successor_waiting_out_the_lease_loses_nothing(
    open_space, tmp_path
) -> None:
    """No holder file: the successor waits ~30 s for the lease to expire while CHAT fills, then
    fans out the backlog on top of its predecessor's unread INBOX entries (cause 1)."""
    await _ten_senders(open_space, tmp_path, None)


async def _ten_senders(open_space, tmp_path, state_dir) -> None:
    total = 5000 if full_suite() else 1500
    url, space = open_space.url, open_space.space
    tools = await connect(url, "faults-tools")
    daemons = Daemons(url, space, state_dir, tmp_path)
    observer = DlvObserver(tools, space)
    try:
        first = await daemons.serving_one()
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
        await daemons.serving_one()
        await publishing
        await assert_every_copy_once(total, load.published, MEMBERS, observer)
    finally:
        await observer.stop()
        daemons.close()
        await tools.close()
