"""`cotal-tui up` recovers by itself: after being SIGKILLed and restarted once, and after its
broker was down for 20 s (issue 11, causes 3 and 4)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_process import CliProcess, pid_alive

from cotal_tui.server.process import free_port
from waiting import wait_for_sync

pytestmark = [pytest.mark.faults, pytest.mark.timeout(240)]

SERVING = r"delivery daemon serving space 'demo' as (U[A-Z0-9]{55})"
DOWN_S = 20.0
SERVER_PID = r"nats-server (?:started \(auth mode, pid|restarted \(pid) (\d+)"


def _lease(cwd: Path, url: str) -> dict[str, object]:
    creds = cwd / ".cotal" / "auth" / "manager.demo.creds"
    done = subprocess.run(
        [sys.executable, "-m", "cotal_tui", "status", "--server", url, "--space", "demo",
         "--creds", str(creds), "--json"],
        cwd=cwd, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lease = json.loads(done.stdout)["lease"]
    assert isinstance(lease, dict)
    return lease


def _up(tmp_path: Path, port: int, procs: list[CliProcess]) -> CliProcess:
    up = CliProcess(["up", "--space", "demo", "--port", str(port)], cwd=tmp_path)
    procs.append(up)
    return up


def _serving_up(tmp_path: Path, port: int, procs: list[CliProcess]) -> tuple[CliProcess, int, str]:
    """An `up` whose daemon serves: the process, its nats-server's pid, the daemon's id."""
    up = _up(tmp_path, port, procs)
    server_pid = int(up.wait_line(SERVER_PID).group(1))
    return up, server_pid, up.wait_line(SERVING, timeout=40).group(1)


def _sigkill_up(up: CliProcess, server_pid: int) -> None:
    """SIGKILL `up`; its nats-server follows it (parent-death signal), the store keeps the lease."""
    os.kill(up.proc.pid, signal.SIGKILL)
    up.proc.wait()
    wait_for_sync(lambda: not pid_alive(server_pid), what=f"nats-server {server_pid} to exit")


def test_up_sigkilled_and_restarted_serves_again_without_a_second_restart(
    tmp_path: Path, procs: list[CliProcess]
) -> None:
    port = free_port()
    url = f"nats://127.0.0.1:{port}"
    first, server_pid, daemon_id = _serving_up(tmp_path, port, procs)
    _sigkill_up(first, server_pid)

    second = _up(tmp_path, port, procs)
    assert second.wait_line(SERVING, timeout=40).group(1) == daemon_id
    assert second.count("a live lease already exists") == 0, second.output
    assert second.count(r"our own identity, last written by pid \d+, which is gone") == 1, (
        second.output
    )
    lease = _lease(tmp_path, url)
    assert lease["holder"] == daemon_id and lease["green"] is True, lease
    assert second.terminate() == 0


@pytest.mark.faults_full
def test_up_restarted_without_proof_waits_out_its_own_stale_lease_with_a_countdown(
    tmp_path: Path, procs: list[CliProcess]
) -> None:
    """The holder file is gone (nothing proves the old holder dead): `up` must not take the
    lease, but wait for it to expire, saying so, and then serve — still without a restart."""
    port = free_port()
    first, server_pid, daemon_id = _serving_up(tmp_path, port, procs)
    _sigkill_up(first, server_pid)
    for holder in (tmp_path / ".cotal" / "run").glob("*.holder"):
        holder.unlink()

    second = _up(tmp_path, port, procs)
    second.wait_line(
        rf"lease.0 is held by {daemon_id} — this daemon's own identity, not proven to be a dead "
        r"process of ours; waiting for it to expire: ~\d+s left",
        timeout=40,
    )
    assert second.wait_line(SERVING, timeout=60).group(1) == daemon_id
    assert second.count("taking it over") == 0
    assert second.terminate() == 0


def test_up_brings_the_daemon_back_after_its_broker_was_down_20s(
    tmp_path: Path, procs: list[CliProcess]
) -> None:
    port = free_port()
    url = f"nats://127.0.0.1:{port}"
    up, server_pid, daemon_id = _serving_up(tmp_path, port, procs)

    # Down for 20 s: freeze `up` so it cannot restart the server before the port is held, kill
    # the server, hold its port with a listener that never speaks NATS, let `up` run again.
    os.kill(up.proc.pid, signal.SIGSTOP)
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        os.kill(server_pid, signal.SIGKILL)
        killed_at = time.monotonic()
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        wait_for_sync(lambda: _bind(holder, port), what=f"port {port} free to hold")
        holder.listen(64)
        os.kill(up.proc.pid, signal.SIGCONT)
        up.wait_line(r"nats-server exited unexpectedly.*; restarting it", timeout=30)
        up.wait_line(r"nats-server restart failed", timeout=30)
        up.wait_line(r"delivery daemon stopped: the broker .* unreachable for 15s", timeout=40)
        wait_for_sync(
            lambda: up.count(r"nats-server restart failed") >= 3,
            what="up to keep retrying the server (bounded backoff)",
            timeout=30,
        )
        # the fault itself lasts 20 s (this is the scenario's length, not a wait for behaviour)
        time.sleep(max(0.0, DOWN_S - (time.monotonic() - killed_at)))
    finally:
        holder.close()  # the broker may come back now
        os.kill(up.proc.pid, signal.SIGCONT)
    up.wait_line(r"nats-server restarted \(pid \d+", timeout=30)
    wait_for_sync(
        lambda: up.count(SERVING) >= 2,
        what="the delivery daemon serving again, started by up itself",
        timeout=60,
        describe=lambda: up.output,
    )
    lease = _lease(tmp_path, url)
    assert lease["holder"] == daemon_id and lease["green"] is True, lease
    assert up.terminate() == 0


def _bind(sock: socket.socket, port: int) -> bool:
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        return False
    return True
