"""Cluster benchmark: R3 versus R1 in the same run, and the delivery gap after a node loss.

Run:  .venv/bin/python bench/cluster.py [--runs N] [--skip-gaps]

Starts a 3-node auth-mode loopback cluster (server/cluster.py) and provisions two spaces on it,
one at R1 and one at R3, each with its own `cotal-tui daemon` process and 5 durable members:

(a) burst: 2,000 messages paced at 1,500 msg/s (7,500 copies/s offered): durable copies stored
    in DLV per second;
(b) publish → DLV-copy latency p50/p99 at a steady 50 msg/s (an ordered consumer on one member's
    DLV subject, so a copy counts once it is committed);

printed side by side with the R3/R1 ratio. Then, on the R3 space with an in-process daemon (so
its node is known) and a publisher at 20 msg/s that retries each message until its PubAck:

(gap) kill -9 a node, measure the offline backstop's gap (last DLV copy stored before the kill
    → first copy, of a message sent after it, stored after), restart the node and wait until it
    is current on every stream; for each of: the node holding CHAT's leader, the daemon's node,
    a node that is neither. --runs times each; the distribution and the worst are printed.

The machine is shared: the load average is printed before and after; read the numbers with it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import nats  # noqa: E402

from bench import common  # noqa: E402
from bench.common import (  # noqa: E402
    count_copies,
    dlv_last_seq,
    dlv_latency,
    durable_join,
    loadavg,
    paced_publish,
    pct,
    quiet,
    start_daemon,
    stop_process,
)
from cotal_tui.delivery.daemon import DeliveryDaemon  # noqa: E402
from cotal_tui.mesh.connection import Connection  # noqa: E402
from cotal_tui.mesh.endpoint import creds_identity  # noqa: E402
from cotal_tui.server.auth import ensure_space_auth  # noqa: E402
from cotal_tui.server.cluster import LocalCluster, wait_jetstream  # noqa: E402
from cotal_tui.server.mint import mint  # noqa: E402
from cotal_tui.server.provision import provision_space  # noqa: E402

CHANNEL = "bench"
MEMBERS = 5
BURST = 2000
BURST_RATE = 1500.0
STEADY_RATE = 50.0
STEADY_SECONDS = 8.0
GAP_RATE = 20.0


def chat(space: str, sender: str, text: str) -> tuple[str, bytes, str]:
    return common.chat(space, sender, CHANNEL, text)


class Space:
    """One provisioned space on the cluster: its members, sender, daemon cred and process."""

    def __init__(self, name: str, replicas: int) -> None:
        self.name = name
        self.replicas = replicas
        self.members: list[str] = []
        self.sender = ""
        self.daemon_creds = ""
        self.proc: subprocess.Popen[bytes] | None = None

    async def setup(self, admin: Any, url: str, state: Path, auth: Any) -> None:
        await provision_space(admin, self.name, replicas=self.replicas)
        ids = []
        for i in range(MEMBERS + 1):
            m = await mint(
                f"{self.name}-m{i}",
                profile="agent",
                space=self.name,
                state_dir=state,
                server=url,
                auth=auth,
                subscribe=[CHANNEL],
                allow_publish=[CHANNEL],
            )
            ids.append(m.public_key)
        self.members, self.sender = ids[:MEMBERS], ids[-1]
        cred = await mint(
            f"{self.name}-delivery",
            profile="delivery",
            space=self.name,
            state_dir=state,
            server=None,
            auth=auth,
        )
        self.daemon_creds = str(cred.path)

    async def start_daemon(self, url: str, log: Path) -> None:
        self.proc = await start_daemon(url, self.name, ["--creds", self.daemon_creds], log)

    def stop_daemon(self) -> None:
        stop_process(self.proc)


async def burst(admin: Any, sp: Space) -> tuple[float, int, int]:
    js = admin.jetstream(timeout=10)
    base = await dlv_last_seq(js, sp.name)
    items = [chat(sp.name, sp.sender, f"burst {i}") for i in range(BURST)]
    t_start = time.perf_counter()
    pub = asyncio.ensure_future(paced_publish(js, items, BURST_RATE))
    want = BURST * MEMBERS
    last, last_change = await count_copies(js, sp.name, base, want, pub)
    return last / (last_change - t_start), last, want


async def latency(admin: Any, recv: Any, sp: Space) -> tuple[float, float, int, int]:
    js = admin.jetstream(timeout=10)
    lat, n = await dlv_latency(
        js, recv, sp.name, CHANNEL, sp.members[0], sp.sender, STEADY_RATE, STEADY_SECONDS, "steady"
    )
    return pct(lat, 50), pct(lat, 99), len(lat), n


# --- the gap after a node loss ---------------------------------------------------------------


async def stream_leader(nc: Any, stream: str) -> str | None:
    try:
        msg = await nc.request(f"$JS.API.STREAM.INFO.{stream}", b"", timeout=2.0)
    except Exception:  # noqa: BLE001 - no leader right now
        return None
    return (json.loads(msg.data).get("cluster") or {}).get("leader")


async def caught_up(nc: Any, node: str, streams: list[str]) -> bool:
    for stream in streams:
        try:
            msg = await nc.request(f"$JS.API.STREAM.INFO.{stream}", b"", timeout=2.0)
        except Exception:  # noqa: BLE001
            return False
        block = json.loads(msg.data).get("cluster") or {}
        if block.get("leader") == node:
            continue
        rep = {r["name"]: r for r in block.get("replicas") or []}.get(node)
        if rep is None or not rep.get("current") or rep.get("offline"):
            return False
    return True


async def gap_runs(
    cluster: LocalCluster, admin: Any, sp: Space, state: Path, auth: Any, runs: int
) -> dict[str, list[float]]:
    url = ",".join(cluster.urls)
    ident = creds_identity(sp.daemon_creds)
    conn = Connection(url, "delivery", ident, creds=sp.daemon_creds)
    await conn.connect()
    daemon = DeliveryDaemon(conn, sp.name, ident)
    await daemon.start()
    sender_creds = state / f"{sp.name}-m{MEMBERS}.creds"
    pconn = Connection(url, sp.sender[:12], sp.sender, creds=str(sender_creds))
    await pconn.connect()
    arrivals: list[tuple[float, str]] = []

    async def on_dlv(msg: Any) -> None:
        arrivals.append((time.monotonic(), json.loads(msg.data)["id"]))

    await admin.subscribe(f"cotal.{sp.name}.dlv.{sp.members[1]}", cb=on_dlv)
    acked: dict[str, float] = {}
    stop = asyncio.Event()

    async def publish() -> None:
        i = 0
        while not stop.is_set():
            subject, data, mid = chat(sp.name, sp.sender, f"gap {i}")
            i += 1
            while not stop.is_set():
                try:
                    await pconn.js.publish(subject, data, headers={"Nats-Msg-Id": mid}, timeout=2.0)
                    acked[mid] = time.monotonic()
                    break
                except Exception:  # noqa: BLE001 - no leader / reconnecting: retry
                    await asyncio.sleep(0.2)
            await asyncio.sleep(1 / GAP_RATE)

    streams = [f"{p}_{sp.name}" for p in ("CHAT", "DM", "TASK", "INBOX", "DLV")] + [
        f"KV_cotal_{b}_{sp.name}" for b in ("presence", "channels", "members", "acl", "delivery")
    ]
    publisher = asyncio.ensure_future(publish())
    gaps: dict[str, list[float]] = {"CHAT leader's node": [], "daemon's node": [], "other": []}
    try:
        for run in range(runs):
            for kind in list(gaps):
                await asyncio.sleep(2.0)  # steady flow before the kill
                chat_leader = await stream_leader(admin, f"CHAT_{sp.name}")
                url_now = conn.nc.connected_url
                dnode_obj = cluster.node_for_port(url_now.port) if url_now else None
                dnode = dnode_obj.name if dnode_obj else None
                if kind == "CHAT leader's node":
                    node = chat_leader
                elif kind == "daemon's node":
                    node = dnode
                else:
                    node = next(
                        (n.name for n in cluster if n.name not in (chat_leader, dnode)), None
                    )
                if node is None:
                    print(f"  run {run + 1} {kind}: no such node this time (skipped)")
                    continue
                t_kill = time.monotonic()
                cluster.kill_node(node)
                deadline = t_kill + 90
                after = None
                while after is None and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                    after = next(
                        (t for t, m in arrivals if t > t_kill and acked.get(m, 0) > t_kill), None
                    )
                before = max((t for t, _ in arrivals if t <= t_kill), default=t_kill)
                gap = (after - before) if after is not None else float("inf")
                gaps[kind].append(gap)
                print(
                    f"  run {run + 1} kill {node} ({kind}; CHAT leader {chat_leader}, daemon on "
                    f"{dnode}): gap {gap:.1f}s · load {os.getloadavg()[0]:.2f}",
                    flush=True,
                )
                cluster.start_node(node)
                t0 = time.monotonic()
                while not await caught_up(admin, node, streams):
                    if time.monotonic() - t0 > 90:
                        raise RuntimeError(f"{node} did not catch up in 90 s")
                    await asyncio.sleep(0.3)
    finally:
        stop.set()
        await publisher
        await daemon.stop()
        await conn.close()
        await pconn.close()
    return gaps


async def run(runs: int, skip_gaps: bool) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="cotal-bench-cluster-"))
    state = tmp / "state"
    spaces = [Space("r1", 1), Space("r3", 3)]
    auth = None
    for sp in spaces:
        auth = ensure_space_auth(state, sp.name)
    assert auth is not None
    print(f"load average before: {loadavg()}")
    cluster = LocalCluster(3, tmp / "cluster", auth=auth).start()
    url = ",".join(cluster.urls)
    code = 0
    try:
        opts: dict[str, Any] = {"error_cb": quiet, "user_credentials": None}
        # each space is its own account: one manager connection per space
        admins = {}
        for sp in spaces:
            sp_auth = ensure_space_auth(state, sp.name)
            opts["user_credentials"] = str(sp_auth.manager_creds_path())
            admins[sp.name] = await nats.connect(url.split(","), **opts)
            await wait_jetstream(admins[sp.name], 30.0, peers=3)
            await sp.setup(admins[sp.name], url, state, sp_auth)
            await sp.start_daemon(url, tmp / f"daemon-{sp.name}.log")
            for m in sp.members:
                await durable_join(admins[sp.name], sp.name, m, CHANNEL)
        results: dict[str, dict[str, float]] = {}
        for sp in spaces:
            admin = admins[sp.name]
            recv = await nats.connect(
                url.split(","),
                **{
                    **opts,
                    "user_credentials": str(ensure_space_auth(state, sp.name).manager_creds_path()),
                },
            )
            rate, got, want = await burst(admin, sp)
            p50, p99, n, total = await latency(admin, recv, sp)
            await recv.close()
            results[sp.name] = {"rate": rate, "p50": p50, "p99": p99}
            print(
                f"R{sp.replicas}: burst {got}/{want} copies, {rate:,.0f} copies/s; latency @50 "
                f"msg/s p50 {p50:.1f} ms p99 {p99:.1f} ms ({n}/{total} received)",
                flush=True,
            )
            if got != want or n != total:
                code = 1
        r1, r3 = results["r1"], results["r3"]
        print()
        print("| metric | R1 | R3 | R3/R1 |")
        print("|---|---|---|---|")
        print(
            f"| durable copies/s (burst) | {r1['rate']:,.0f} | {r3['rate']:,.0f} | "
            f"{r3['rate'] / r1['rate']:.2f} |"
        )
        print(
            f"| latency p50 @50 msg/s | {r1['p50']:.1f} ms | {r3['p50']:.1f} ms | "
            f"{r3['p50'] / r1['p50']:.2f} |"
        )
        print(
            f"| latency p99 @50 msg/s | {r1['p99']:.1f} ms | {r3['p99']:.1f} ms | "
            f"{r3['p99'] / r1['p99']:.2f} |"
        )
        print(f"\nload average after the R1/R3 runs: {loadavg()}")
        if not skip_gaps:
            r3sp = spaces[1]
            r3sp.stop_daemon()  # the gap runs use an in-process daemon whose node is known
            print(f"\ndelivery gap after kill -9 of a node (R3, {runs} runs each):")
            gaps = await gap_runs(cluster, admins["r3"], r3sp, state, auth, runs)
            print()
            print("| node killed | runs | gaps (s) | median | worst |")
            print("|---|---|---|---|---|")
            for kind, values in gaps.items():
                if not values:
                    continue
                listed = ", ".join(f"{v:.1f}" for v in values)
                print(
                    f"| {kind} | {len(values)} | {listed} | {statistics.median(values):.1f} | "
                    f"{max(values):.1f} |"
                )
            print(f"\nload average after the gap runs: {loadavg()}")
        for nc in admins.values():
            await nc.close()
    finally:
        for sp in spaces:
            sp.stop_daemon()
        cluster.stop()
    return code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="kills per node kind (default 3)")
    parser.add_argument("--skip-gaps", action="store_true", help="only the R1/R3 comparison")
    args = parser.parse_args()
    return asyncio.run(run(args.runs, args.skip_gaps))


if __name__ == "__main__":
    sys.exit(main())
