"""Scenario 5: a burst past CHAT's 1,000-per-subject cap (`max_msgs_per_subject`, discard Old),
both daemons side by side on one space — a reference-provisioned one, and ours (`up`): the
same sender, one offline member per daemon (DLV also caps an owner's subject at 1,000).

What is recorded (printed, and in the README): how many of the burst's messages each daemon
copied to its offline member's `dlv.<owner>`, and whether its fan-out settled or stalled. What
is asserted is only wire fact: CHAT keeps at most 1,000 messages of the subject, DLV at most
1,000 of the owner's, every copy the member takes is a distinct message of the burst.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import RefSpace, start_our_daemon, start_our_space, start_ref_daemon, wait_cli_line
from refproc import Minted, NodeProcess
from test_acl import Wire

from waiting import wait_for

BURST = 2000
CHANNELS = {"channels": {c: {"deliveryClass": "durable", "replay": False} for c in ("b1", "b2")}}
QUIET_S = 12.0


async def _settle(wire: Wire, owner: str, timeout: float = 150.0) -> str:
    """`drained`, or `stalled` when neither the fan-out cursor nor the owner's DLV moved for
    QUIET_S seconds while entries stayed pending (a livelock is recorded, not waited out)."""
    last: tuple[Any, ...] | None = None
    since = time.monotonic()
    deadline = since + timeout
    while time.monotonic() < deadline:
        if await wire.drained():
            return "drained"
        info = await wire._api(f"$JS.API.CONSUMER.INFO.CHAT_{wire.space}.fanout")
        mark = (info.get("ack_floor", {}).get("stream_seq"), await wire.dlv_count(owner))
        if mark != last:
            last, since = mark, time.monotonic()
        elif time.monotonic() - since > QUIET_S:
            return f"stalled (fan-out ack floor {mark[0]}, {info.get('num_ack_pending')} unacked)"
        await asyncio.sleep(0.5)
    raise AssertionError(f"the daemon neither drained nor stalled in {timeout}s")


@dataclass
class BurstSpace:
    """Where the burst runs: the space's url and name, the delivery cred both daemons use, and a
    way to provision an agent (boot channels, may post) the space's own way."""

    build: str
    url: str
    space: str
    delivery: Path
    agent: Callable[[str, list[str], list[str]], Awaitable[Minted]]


@pytest.mark.interop_full
@pytest.mark.timeout(480)
async def test_burst_past_the_subject_cap_side_by_side(
    ref_space: RefSpace,
    nodes: list[NodeProcess],
    clis: list[Any],
    tmp_path: Path,
    our_agents: Any,
    ref_agents: Any,
) -> None:
    """On a reference-provisioned space."""
    await ref_space.channels(CHANNELS)

    async def agent(name: str, subscribe: list[str], publish: list[str]) -> Minted:
        return await ref_space.agent(name, subscribe=subscribe, allowPublish=publish)

    where = BurstSpace(
        ref_space.build, ref_space.url, ref_space.space, ref_space.delivery.creds, agent
    )
    await _burst_side_by_side(where, nodes, clis, tmp_path, our_agents, ref_agents)


@pytest.mark.interop_full
@pytest.mark.timeout(480)
async def test_burst_past_the_subject_cap_side_by_side_on_our_space(
    ref_build: str,
    nodes: list[NodeProcess],
    clis: list[Any],
    tmp_path: Path,
    our_agents: Any,
    ref_agents: Any,
) -> None:
    """The same on our space (`cotal-tui up --no-daemon`, then the two daemons in turn)."""
    ours = await start_our_space(tmp_path, clis, daemon=False, channels=CHANNELS)

    async def agent(name: str, subscribe: list[str], publish: list[str]) -> Minted:
        args = ["--subscribe", *subscribe]
        if publish:
            args += ["--allow-publish", *publish]
        return await ours.mint(name, *args)

    delivery = await ours.mint("burst-daemon", profile="delivery")
    where = BurstSpace(ref_build, ours.url, ours.space, delivery.creds, agent)
    await _burst_side_by_side(where, nodes, clis, tmp_path, our_agents, ref_agents)


async def _burst_side_by_side(
    where: BurstSpace,
    nodes: list[NodeProcess],
    clis: list[Any],
    tmp_path: Path,
    our_agents: Any,
    ref_agents: Any,
) -> None:
    url, space, build = where.url, where.space, where.build
    wire = Wire(url, space, where.delivery)
    ours = await start_our_daemon(clis, tmp_path, url, space, where.delivery)
    await wait_cli_line(ours, r"✓ delivery: serving space", timeout=30)
    sender_c = await where.agent("sender", ["b1", "b2"], ["b1", "b2"])
    members = {}
    for label, channel in (("ours", "b1"), ("reference", "b2")):
        creds = await where.agent(f"m-{channel}", [channel], [])
        member = await our_agents(url, space, f"m-{channel}", creds=creds.creds, channels=[channel])
        await wait_for(
            lambda m=member, c=channel: m.ep.has_durable_membership(c),
            what=f"the member's durable membership of {channel}",
            timeout=30,
        )
        await member.ep.stop()
        members[label] = (channel, creds)
    sender = await ref_agents(build, url, space, "sender", creds=sender_c.creds)

    results = {}
    notes: list[str] = []
    for label, (channel, member_c) in members.items():
        if label == "reference":
            ours.proc.send_signal(signal.SIGTERM)
            await wait_for(
                lambda: ours.proc.poll() is not None, what="our daemon to stop", timeout=20
            )
            ref = await start_ref_daemon(nodes, build, url, space, where.delivery)
            await ref.wait_line(r"✓ delivery daemon up", timeout=30)
        dlv_before = await _dlv_last_seq(wire)
        t0 = time.monotonic()
        await sender.call("burst", channel=channel, count=BURST, prefix=f"{channel}-", timeout=180)
        sent_s = time.monotonic() - t0
        state = await _settle(wire, member_c.id)
        copies = await wire.dlv_count(member_c.id)
        written = await _dlv_last_seq(wire) - dlv_before
        retained = await _chat_retained(wire, sender_c.id, channel)
        results[label] = (written, copies, retained, sent_s, time.monotonic() - t0, state)
        info = await wire._api("$JS.API.INFO")
        notes.append(
            f"after the {label} daemon's burst the account holds {info.get('consumers')} consumers"
        )
        assert retained <= 1000, f"CHAT kept {retained} > 1000 messages of one subject"
        assert 0 < copies <= 1000, f"DLV holds {copies} of one owner (cap 1000)"
        assert copies <= written <= BURST, (copies, written)

    ref.signal(signal.SIGTERM)
    await ref.exited()
    again = await _restart_ours(clis, tmp_path, url, space, where.delivery)
    notes.append(f"our daemon restarted after the reference's burst: {again}")

    lines = [
        f"[interop {build}] burst of {BURST} on one subject (CHAT and DLV cap "
        "1000 per subject), one offline member per daemon:"
    ]
    for label, (written, copies, retained, sent_s, total_s, state) in results.items():
        lines.append(
            f"  {label:9} daemon: {written} copies written to DLV, {copies} kept for the "
            f"member; CHAT retains {retained}; sent in {sent_s:.1f}s; {state} after "
            f"{total_s:.1f}s"
        )
    print("\n" + "\n".join(lines + [f"  note: {n}" for n in notes]))

    for label, (channel, member_c) in members.items():
        back = await our_agents(
            url, space, f"m-{channel}", creds=member_c.creds, channels=[channel]
        )
        copies = results[label][1]
        await wait_for(
            lambda b=back, n=copies: len(b.received) >= n,
            timeout=60,
            what=f"the {label} member to take its {copies} durable copies",
        )
        texts = [ev.inbound.message.text for ev in back.received]
        assert len(texts) == len(set(texts)) and all(t.startswith(f"{channel}-") for t in texts)


async def _restart_ours(clis: list[Any], cwd: Path, url: str, space: str, creds: Path) -> str:
    """Our daemon once more, on the space the reference daemon just left: it serves, or — while
    the reference's leftover consumers still exhaust the account — refuses in one line (exit 1,
    no traceback)."""
    daemon = await start_our_daemon(clis, cwd, url, space, creds)
    line = (
        await wait_cli_line(daemon, r"✓ delivery: serving space|✗ delivery: .*", timeout=60)
    ).group(0)
    if line.startswith("✗"):
        await wait_for(
            lambda: daemon.proc.poll() is not None, what="our refused daemon to exit", timeout=20
        )
        assert daemon.proc.returncode == 1 and "Traceback" not in daemon.output, daemon.output
    return line


async def _dlv_last_seq(wire: Wire) -> int:
    info = await wire._api(f"$JS.API.STREAM.INFO.DLV_{wire.space}")
    return int(info["state"]["last_seq"])


async def _chat_retained(wire: Wire, sender: str, channel: str) -> int:
    subject = f"cotal.{wire.space}.chat.{sender}.{channel}"
    info = await wire._api(f"$JS.API.STREAM.INFO.CHAT_{wire.space}", {"subjects_filter": subject})
    return int((info.get("state", {}).get("subjects") or {}).get(subject, 0))
