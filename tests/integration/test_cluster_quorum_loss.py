"""Two of three nodes of `up --cluster 3` lost (issue 15 follow-up): the R3 streams lose quorum.

Every space stream (and the lease's KV bucket) is R3: with one node left none has a leader, so
nothing is stored and the lease can be neither read nor renewed. What must be true meanwhile:
`check` exits non-zero within its timeout and names it; the console's lease/cluster pane and the
durable channel rows are not green (and do not read as the one-node-lost case, which assumes a
quorum). Restarted from the same store dirs, everything is ok again and a durable message sent
after the recovery reaches an offline member.

Real processes: `cotal-tui up --cluster 3`, its nodes killed by the pids up.json records and
started again with the command lines they ran with. Marked slow (`pytest -m slow`).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from cli_process import CliProcess, pid_alive
from cluster_ports import three_free_ports
from plane3_support import (
    chat_message,
    connect,
    dlv_ids,
    request_delivery,
    set_acl,
    set_channel_class,
)

from cotal_tui.cli import build_parser
from cotal_tui.commands.console import session_options
from cotal_tui.console.model import ConsoleModel
from cotal_tui.console.session import ConsoleSession
from cotal_tui.server.auth import load_space_auth
from cotal_tui.server.state import read_record
from waiting import wait_for, wait_for_sync

SPACE = "qz"
CHANNEL = "review"
MEMBER = "UMEMBERQZ" + "M" * 47
SENDER = "USENDERQZ" + "S" * 47
CHECK_TIMEOUT_S = 5.0
GREEN = {"serving"}


def _cmdline(pid: int) -> list[str]:
    raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    return [a.decode() for a in raw.split(b"\0") if a]


async def _check(state: Path, cwd: Path) -> tuple[int, str, float]:
    """`cotal-tui check` as a process: (exit code, output, seconds it took)."""
    t0 = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cotal_tui", "check", "--space", SPACE, "--state-dir", str(state),
        "--timeout", str(CHECK_TIMEOUT_S), cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), time.monotonic() - t0


@pytest.mark.slow
@pytest.mark.timeout(400)
async def test_two_of_three_nodes_lost_is_no_quorum_everywhere_then_ok_after_restart(
    tmp_path: Path, procs: list[Any]
) -> None:
    port = three_free_ports()
    state = tmp_path / "state"
    up = CliProcess(
        ["up", "--cluster", "3", "--space", SPACE, "--port", str(port), "--state-dir", str(state)],
        cwd=tmp_path,
    )
    procs.append(up)
    up.wait_line(r"local cluster of 3 nats-server nodes started", timeout=30)
    up.wait_line(rf"delivery daemon serving space '{SPACE}'", timeout=60)
    record = read_record(state)
    assert record is not None and record.clustered, record
    nodes = {n.name: n for n in record.nodes}
    commands = {n.name: _cmdline(n.pid) for n in record.nodes if n.pid is not None}
    assert len(commands) == 3, record

    restarted: list[subprocess.Popen[bytes]] = []
    manager = str(load_space_auth(state, SPACE).manager_creds_path())
    tools = await connect(record.url, "qz-tools", manager)
    await set_channel_class(tools, SPACE, CHANNEL, "durable")
    session, model = console_session(state, SPACE)  # joins #review (durable) as the operator
    await session.start()
    try:
        for ident in (MEMBER, SENDER):
            await set_acl(tools, SPACE, ident, [CHANNEL])
        reply = await request_delivery(tools, SPACE, MEMBER, "durableJoin", {"channel": CHANNEL})
        assert reply.get("ok") and reply["data"]["durable"], reply

        async def publish(text: str) -> str:
            subject, data, mid = chat_message(SPACE, SENDER, CHANNEL, text)
            await tools.js.publish(subject, data, headers={"Nats-Msg-Id": mid}, timeout=5)
            return mid

        async def delivered(mid: str) -> bool:
            return mid in await dlv_ids(tools, SPACE, MEMBER)

        first = await publish("before")
        await wait_for(lambda: delivered(first), what="the member's DLV copy before the loss")

        async def check_ok() -> bool:
            code, out, _ = await _check(state, tmp_path)
            return code == 0 or print(out) is not None

        await wait_for(check_ok, what="check OK with all three nodes up", timeout=60)
        await wait_for(
            lambda: _console(model)[0] in GREEN and _row(model).health == "active",
            what=f"the console green before the loss: {_console(model)} "
            f"(start error: {session.source.start_error})",
            timeout=60,
        )

        # kill -9 two of the three nodes by the pids up.json records
        mine = next(n for n in nodes if nodes[n].port == tools.nc.connected_url.port)
        victims = [n for n in nodes if n != mine]
        for name in victims:
            os.kill(nodes[name].pid, signal.SIGKILL)  # type: ignore[arg-type]
        for name in victims:
            wait_for_sync(lambda name=name: not pid_alive(nodes[name].pid), what=f"{name} dead")
            up.wait_line(rf"node {name} \(:\d+\) exited", timeout=30)
        assert up.proc.poll() is None, up.output

        # check: non-zero, within its timeout (plus the process's start), naming quorum loss
        code, out, took = await _check(state, tmp_path)
        assert code == 2, out  # critical, with evidence or without: nothing can be stored
        assert took < CHECK_TIMEOUT_S + 5, (took, out)  # its timeout, a read, the start
        assert re.search(r"quorum|no leader|NO LEADER", out), out
        print(f"\ncheck with 2 of 3 nodes down ({took:.1f}s, exit {code}):\n{out}")

        # the console: the lease pane and the durable row are not green, and not "node lost"
        def quorum_shown() -> bool:
            verdict, cluster, _ = _console(model)
            return verdict not in GREEN and verdict != "node-lost" and "lost" in cluster[:1][0]

        await wait_for(
            quorum_shown, what=f"the console to show the lost quorum: {_console(model)}", timeout=60
        )
        for _ in range(10):  # every picture during the outage, not one: a few seconds' worth
            verdict, cluster, said = _console(model)
            row = _row(model)
            assert verdict not in GREEN and verdict != "node-lost", (verdict, cluster)
            if verdict == "quorum-lost":  # red, as check's exit 2 says
                assert model.snapshot.lease.severity == "critical", model.snapshot.lease
            assert not (row.health == "active" and row.health_caveat is None), (verdict, said)
            assert "node lost" not in (row.health_text or ""), said
            await asyncio.sleep(0.3)
        print(f"console: {verdict}; {model.snapshot.lease.consequence}\n  " + "\n  ".join(cluster))
        print(f"row #{CHANNEL}: {row.health} — {row.health_text}")
        # up says the quorum is gone, not that the space keeps serving on the rest
        up.wait_line(r"quorum lost: 1 of 3 nodes run, and the space's R3 streams need 2")
        assert up.count(r"exited; the space keeps serving") <= 1, up.output  # the first only

        # the two nodes again, as they ran: same ports, config and store
        for name in victims:
            p = subprocess.Popen(
                commands[name], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            restarted.append(p)
        for name in victims:
            up.wait_line(rf"node {name} \(:\d+\) is running again \(started outside", timeout=30)
        up.wait_line(r"quorum back: 3 of 3 nodes run", timeout=30)
        await wait_for(check_ok, what="check OK after the two nodes are back", timeout=120)
        await wait_for(
            lambda: _console(model)[0] in GREEN and _row(model).health == "active",
            what=f"the console green again: {_console(model)}",
            timeout=60,
        )
        after = await publish("after the recovery")
        await wait_for(
            lambda: delivered(after), what="the member's DLV copy of a message sent after it"
        )
        assert up.proc.poll() is None, up.output
        assert "Traceback" not in up.output, up.output
    finally:
        await session.stop()
        await tools.close()
        up.terminate(timeout=30)
        for p in restarted:
            if p.poll() is None:
                p.kill()
                p.wait()


def console_session(state: Path, space: str) -> tuple[ConsoleSession, ConsoleModel]:
    """The console as `cotal-tui console --space SPACE --state-dir STATE` runs it (no screen:
    the model's snapshots are what its panes draw)."""
    args = build_parser().parse_args(
        ["console", "--space", space, "--state-dir", str(state), "--channel", CHANNEL]
    )
    session = ConsoleSession(session_options(args))
    return session, ConsoleModel(session.source)


def _console(model: Any) -> tuple[str, tuple[str, ...], str]:
    """(lease verdict, cluster lines, the durable row's health and text)."""
    snap = model.tick()
    row = next((r for r in snap.channels.rows if r.name == CHANNEL), None)
    said = "no row" if row is None else f"{row.health}: {row.health_text}"
    return snap.lease.verdict, snap.lease.cluster or ("",), said


def _row(model: Any) -> Any:
    snap = model.snapshot
    return next(r for r in snap.channels.rows if r.name == CHANNEL)
