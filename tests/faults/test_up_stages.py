"""`cotal-tui up` with its daemon's stages in processes (``COTAL_DELIVERY_STAGES=processes``):
a stage SIGKILLed stops the whole in-process daemon and up's supervisor starts it again (two
new stages), and a clean stop of `up` leaves no stage behind (issue 16)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from cli_process import CliProcess, pid_alive

from cotal_tui.server.process import free_port
from waiting import wait_for_sync

pytestmark = [pytest.mark.faults, pytest.mark.timeout(240)]

SERVING = r"delivery daemon serving space 'demo' as (U[A-Z0-9]{55})"


def stage_pids(parent: int) -> dict[str, int]:
    """The parent's live children running a delivery stage, by role (from their argv)."""
    found: dict[str, int] = {}
    try:
        children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    except OSError:
        return found
    for pid in map(int, children):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"cotal_tui.delivery.stage_main" in argv and pid_alive(pid):
            found[argv[argv.index(b"cotal_tui.delivery.stage_main") + 1].decode()] = pid
    return found


def test_up_restarts_its_whole_daemon_when_a_stage_dies_and_stops_every_stage(
    tmp_path: Path, procs: list[CliProcess]
) -> None:
    port = free_port()
    up = CliProcess(
        ["up", "--space", "demo", "--port", str(port)],
        cwd=tmp_path,
        env={"COTAL_DELIVERY_STAGES": "processes"},
    )
    procs.append(up)
    up.wait_line(SERVING, timeout=40)
    wait_for_sync(lambda: len(stage_pids(up.proc.pid)) == 2, what="up's two stage processes")
    first = stage_pids(up.proc.pid)
    assert set(first) == {"fanout", "reader"}, first

    os.kill(first["reader"], signal.SIGKILL)
    wait_for_sync(
        lambda: not any(pid_alive(p) for p in first.values()),
        what=f"both stages of the first daemon gone ({first})",
        timeout=30,
    )
    wait_for_sync(lambda: up.count(SERVING) >= 2, what="up's daemon serving again", timeout=60)
    assert up.count(r"the reader stage \(pid \d+\) exited") >= 1, up.output
    wait_for_sync(lambda: len(stage_pids(up.proc.pid)) == 2, what="two new stage processes")
    second = stage_pids(up.proc.pid)
    assert not set(second.values()) & set(first.values()), (first, second)

    assert up.terminate() == 0, up.output
    wait_for_sync(
        lambda: not any(pid_alive(p) for p in second.values()),
        what=f"the stages gone after up stopped ({second})",
        timeout=30,
    )
