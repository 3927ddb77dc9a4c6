"""`up --cluster`: a node started again by hand (same command line, same port and store) runs,
but not as `up`'s process. `up` knows no pid for it and does not stop it on exit, and says so:
up.json marks the node ``outside`` (pid None), and the exit line is never "all 3 nodes stopped"
while it still runs.

Real processes: a 3-node open-mode loopback cluster (server/cluster.py), one node SIGKILLed and
started again from its own command line; `up`'s record and exit logic run on it
(server/up_cluster.py), every process killed by pid.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
from cli_process import pid_alive
from report_lines import Lines

from cotal_tui.server.cluster import LocalCluster
from cotal_tui.server.state import read_record, write_record
from cotal_tui.server.up_cluster import cluster_record, outside_nodes, stopped_line, watch_nodes
from waiting import wait_for_sync

pytestmark = pytest.mark.timeout(90)


def _cmdline(pid: int) -> list[str]:
    raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    return [a.decode() for a in raw.split(b"\0") if a]


def test_a_node_started_by_hand_is_recorded_outside_and_named_at_exit(tmp_path: Path) -> None:
    cluster = LocalCluster(3, tmp_path / "cluster").start()
    by_hand: subprocess.Popen[bytes] | None = None
    report, down = Lines(), set[str]()
    try:
        n2 = cluster.node("n2")
        assert n2.pid is not None
        command = _cmdline(n2.pid)
        cluster.kill_node("n2")
        wait_for_sync(
            lambda: (watch_nodes(cluster, down, report, 3), "n2" in down)[1],
            what=f"up to see n2 exit: {report.lines}",
            timeout=30,
        )
        by_hand = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_sync(
            lambda: (watch_nodes(cluster, down, report, 3), "n2" not in down)[1],
            what=f"up to see n2 running again: {report.lines}",
            timeout=30,
        )
        assert any("n2" in line and "will not stop it" in line for line in report.lines), (
            report.lines
        )

        record = cluster_record(
            cluster, pid=os.getpid(), space="oc", mode="open", replicas=3, started_at=0, down=down
        )
        nodes = {n.name: n for n in record.nodes}
        assert nodes["n2"].pid is None and nodes["n2"].outside, nodes["n2"]
        for name in ("n1", "n3"):
            assert nodes[name].pid == cluster.node(name).pid and not nodes[name].outside
        write_record(tmp_path, record)
        again = read_record(tmp_path)
        assert again is not None and [n.outside for n in again.nodes] == [False, True, False]

        outside = outside_nodes(cluster, down)
        assert [n.name for n in outside] == ["n2"]
        cluster.stop()
        said = stopped_line(cluster, outside)
        assert by_hand.poll() is None and pid_alive(by_hand.pid)  # up did not stop it
        assert said.startswith("2 of 3 nats-server nodes stopped; n2 (:"), said
        assert "still runs" in said and "all 3" not in said, said
        # a node that exited and was not started again is no node running outside
        assert stopped_line(cluster, outside_nodes(cluster, {"n1", "n2", "n3"})) == (
            "all 3 nats-server nodes stopped"
        )
    finally:
        cluster.kill()
        if by_hand is not None and by_hand.poll() is None:
            os.kill(by_hand.pid, signal.SIGKILL)
            by_hand.wait(10)
