"""What bench/daemon.py and bench/cluster.py share: messages, pacing, copy counting, latency.

Both publish CotalMessages with ``publish_async`` (PubAcks gathered), count durable copies by
the DLV stream's last sequence, time publish → DLV store through an ordered consumer on one
member's DLV subject, ask the daemon over ``ctl.delivery``, and run ``cotal-tui daemon`` as its
own process.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from nats.js.api import DeliverPolicy

ROOT = Path(__file__).resolve().parent.parent


async def quiet(exc: Exception) -> None:
    """An ``error_cb`` that says nothing (the benches read their own figures)."""
    return None


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def loadavg() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f} (1/5/15 min, {os.cpu_count()} cores)"


def chat(space: str, sender: str, channel: str, text: str) -> tuple[str, bytes, str]:
    """One CotalMessage on ``channel`` from ``sender``: (subject, bytes, message id)."""
    mid = str(uuid.uuid4())
    body = {
        "id": mid,
        "ts": int(time.time() * 1000),
        "space": space,
        "from": {"id": sender, "name": "sender"},
        "channel": channel,
        "parts": [{"kind": "text", "text": text}],
    }
    # compact, as every real sender writes it (JSON.stringify; CotalMessage.to_json)
    data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    return f"cotal.{space}.chat.{sender}.{channel}", data, mid


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
        elif i % 200 == 0:
            await asyncio.sleep(0)  # unpaced: let PubAcks be read now and then
        sent.append(time.perf_counter())
        futures.append(await js.publish_async(subject, data, headers={"Nats-Msg-Id": mid}))
    await asyncio.gather(*futures)
    return sent


async def request(
    nc: Any, space: str, agent: str, op: str, args: dict[str, Any]
) -> tuple[dict[str, Any], float]:
    """One ``ctl.delivery`` request on ``agent``'s behalf: (reply, round trip in ms)."""
    subject = f"cotal.{space}.ctl.delivery.{agent}"
    reply = f"{subject}.reply.{uuid.uuid4()}"
    sub = await nc.subscribe(reply, max_msgs=1)
    body = {"op": op, "args": args, "from": {"id": agent, "name": "bench"}}
    t0 = time.perf_counter()
    await nc.publish(subject, json.dumps(body).encode(), reply=reply)
    msg = await sub.next_msg(timeout=30)
    return dict(json.loads(msg.data)), (time.perf_counter() - t0) * 1000


async def durable_join(nc: Any, space: str, agent: str, channel: str) -> None:
    reply, _ = await request(nc, space, agent, "durableJoin", {"channel": channel})
    assert reply.get("ok") and reply["data"]["durable"], reply


async def dlv_last_seq(js: Any, space: str) -> int:
    return int((await js.stream_info(f"DLV_{space}")).state.last_seq)


async def count_copies(
    js: Any, space: str, base: int, want: int, publishing: asyncio.Future[Any] | None = None
) -> tuple[int, float]:
    """Poll DLV until ``want`` copies past ``base`` are stored, or nothing moved for 5 s (30 s
    before the first copy) after the publishing finished: (copies stored, perf_counter of the
    last one seen)."""
    last, last_change = 0, time.perf_counter()
    while True:
        await asyncio.sleep(0.05)
        got = await dlv_last_seq(js, space) - base
        now = time.perf_counter()
        if got != last:
            last, last_change = got, now
        done = publishing is None or publishing.done()
        if got >= want or (done and now - last_change > (5 if last else 30)):
            break
    if publishing is not None:
        await publishing
    return last, last_change


async def dlv_latency(
    js: Any,
    recv: Any,
    space: str,
    channel: str,
    member: str,
    sender: str,
    rate: float,
    seconds: float,
    label: str,
    during: Any = None,
) -> tuple[list[float], int]:
    """Publish at ``rate`` for ``seconds`` and time each copy from publish to its DLV store
    (seen by an ordered consumer on the member's DLV subject); returns (latencies ms, sent)."""
    received: dict[str, float] = {}

    async def on_dlv(msg: Any) -> None:
        received[json.loads(msg.data)["id"]] = time.perf_counter()

    sub = await recv.jetstream().subscribe(
        f"cotal.{space}.dlv.{member}",
        stream=f"DLV_{space}",
        cb=on_dlv,
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.NEW,
    )
    items = [chat(space, sender, channel, f"{label} {i}") for i in range(int(rate * seconds))]
    if during is not None:
        sent, _ = await asyncio.gather(paced_publish(js, items, rate), during())
    else:
        sent = await paced_publish(js, items, rate)
    deadline = time.perf_counter() + 15
    while len(received) < len(items) and time.perf_counter() < deadline:
        await asyncio.sleep(0.05)
    await sub.unsubscribe()
    lat = [
        (received[mid] - t) * 1000
        for (_, _, mid), t in zip(items, sent, strict=True)
        if mid in received
    ]
    return lat, len(items)


# --- the daemon as its own process ------------------------------------------------------------


async def start_daemon(
    url: str,
    space: str,
    args: list[str],
    log: Path,
    timeout: float = 40.0,
    profile: Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """``cotal-tui daemon`` with its stderr in ``log``, once it says it is serving; with
    ``profile``, under cProfile (the stats are written there when it is stopped); ``env`` is
    added to this process's environment."""
    out = log.open("w")
    python = [sys.executable, *(["-m", "cProfile", "-o", str(profile)] if profile else [])]
    proc = subprocess.Popen(
        [*python, "-m", "cotal_tui", "daemon", "--server", url, "--space", space, *args],
        stdout=subprocess.DEVNULL,
        stderr=out,
        cwd=str(ROOT),
        env={**os.environ, **(env or {})},
    )
    deadline = time.time() + timeout
    while "✓ delivery: serving" not in log.read_text():
        if proc.poll() is not None or time.time() > deadline:
            stop_process(proc)
            raise RuntimeError(f"daemon for {space} did not start:\n{log.read_text()}")
        await asyncio.sleep(0.1)
    return proc


def stop_process(proc: subprocess.Popen[bytes] | None, timeout: float = 10.0) -> None:
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def process_tree(pid: int) -> list[int]:
    """``pid`` and every process below it (a daemon may run its stages as child processes)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_seconds(pid: int, *, children: bool = True) -> float:
    """User + system CPU seconds of ``pid`` and its children (live ones; not with
    ``children=False``)."""
    total = 0.0
    for p in process_tree(pid) if children else [pid]:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            continue
    return total


def signal_tree(pid: int, sig: signal.Signals) -> None:
    """Pause (SIGSTOP) or resume (SIGCONT) a process with all its children."""
    for p in process_tree(pid):
        try:
            os.kill(p, sig)
        except ProcessLookupError:
            continue
