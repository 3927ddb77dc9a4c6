"""The demo simulation, headless, against a real auth-mode server on the fast timeline: the cast
comes up, messages flow on live and durable channels, and each scripted case happens as the
operator would see it; stopping leaves no child process behind."""

from __future__ import annotations

import asyncio
import os
from dataclasses import replace
from pathlib import Path

import pytest

from cotal_tui.delivery.members import read_member
from cotal_tui.demo.cast import CRASHER, EARLY_BIRD, NARROWED, NARROWED_CHANNEL, cast
from cotal_tui.demo.simulation import DemoSimulation, agent_rngs, channel_seed
from cotal_tui.demo.timeline import Timeline
from cotal_tui.mesh.events import ChannelDropped, EndpointEvent, MessageReceived, PresenceChanged
from cotal_tui.mesh.kv import KvBucket
from cotal_tui.protocol.models import Presence
from cotal_tui.protocol.names import members_bucket, presence_bucket
from cotal_tui.server.local import start_local_space
from waiting import wait_for

pytestmark = pytest.mark.timeout(90)


def children(pid: int) -> set[int]:
    """Live (non-zombie) children of ``pid``, from /proc (a `ps` child would list itself)."""
    out = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.add(int(stat.parent.name))
    return out


def test_a_seed_fixes_every_agents_draws() -> None:
    specs = cast(8)
    a, b = agent_rngs(7, specs), agent_rngs(7, specs)
    assert [[r.random() for _ in range(5)] for r in a.values()] == [
        [r.random() for _ in range(5)] for r in b.values()
    ]
    other = agent_rngs(8, specs)
    assert a[EARLY_BIRD].random() != other[EARLY_BIRD].random()


def test_the_cast_needs_room_for_the_scripted_cases() -> None:
    with pytest.raises(ValueError, match="first three play the scripted cases"):
        cast(2)
    names = [s.name for s in cast(20)]
    assert names[:3] == [EARLY_BIRD, NARROWED, CRASHER] and len(set(names)) == 20


async def test_demo_cases_happen_and_stop_cleans_up(tmp_path: Path) -> None:
    before = children(os.getpid())
    space = await start_local_space(
        "demo", state_dir=tmp_path / "state", channels_seed=channel_seed()
    )
    server_pid = space.server.pid
    assert server_pid is not None and server_pid in children(os.getpid())
    timeline = replace(Timeline.fast(), reboot_after_s=6.0)
    sim = DemoSimulation(space, agents=8, seed=3, timeline=timeline)
    events: list[EndpointEvent] = []
    try:
        await sim.start()
        assert sim.operator is not None
        op = sim.operator
        op.on_event(events.append)
        early = sim.agents[EARLY_BIRD].endpoint
        ivy_events: list[EndpointEvent] = []
        sim.agents[NARROWED].endpoint.on_event(ivy_events.append)

        # (a) booted before the daemon: both durable boot joins wait, then resolve
        pending = await wait_for(early.pending_boot_joins, what="ada's pending boot joins")
        assert {p.channel for p in pending} == {"general", "review"}
        assert all(p.operation == "durableJoin" for p in pending)
        assert sim.daemon is None  # the daemon is not up yet: this is the boot-before case
        await wait_for(lambda: sim.daemon is not None, what="the daemon bound", timeout=10)
        await wait_for(
            lambda: (
                not early.pending_boot_joins()
                and early.has_durable_membership("general")
                and early.has_durable_membership("review")
            ),
            what="ada's boot joins resolved to durable memberships",
            timeout=15,
        )

        # the cast is on the operator's roster
        names = {s.name for s in sim.specs} | {"operator"}
        await wait_for(
            lambda: names <= {p.card.name for p in op.roster_entries()},
            what="every agent and the operator on the roster",
            timeout=15,
        )

        # (b) the crasher goes offline by the sweep: its stored record never says offline
        crasher = sim.agents[CRASHER]
        await wait_for(
            lambda: any(
                isinstance(e, PresenceChanged)
                and e.event.type == "offline"
                and e.event.presence.card.name == CRASHER
                for e in events
            ),
            what="gus swept offline on the operator's roster",
            timeout=20,
        )
        assert crasher.crashed
        assert sim.daemon_conn is not None
        stored = await KvBucket(sim.daemon_conn, presence_bucket(space.space)).get(crasher.id)
        assert stored is not None
        assert Presence.from_json(stored.value).status != "offline"  # no graceful offline

        # (c) the narrowed agent: refusal, a leave retry that fails while the responder is
        # paused, then the tombstone lands and the retry clears
        ivy = sim.agents[NARROWED].endpoint
        retry = await wait_for(
            lambda: [p for p in ivy.pending_leaves() if p.attempt >= 1],
            what="ivy's leave retry after a failed attempt",
            timeout=20,
        )
        assert retry[0].channel == NARROWED_CHANNEL and retry[0].operation == "durableLeave"
        assert "no responders" in (retry[0].last_error or "")
        assert NARROWED_CHANNEL not in ivy.joined_channels()
        assert any(
            isinstance(e, ChannelDropped) and e.channel == NARROWED_CHANNEL for e in ivy_events
        )
        await wait_for(
            lambda: not ivy.pending_leaves(), what="ivy's leave retry cleared", timeout=15
        )
        assert not ivy.has_durable_membership(NARROWED_CHANNEL)
        member = await read_member(
            KvBucket(sim.daemon_conn, members_bucket(space.space)), NARROWED_CHANNEL, ivy.id
        )
        assert member is not None and member.record.leave_cursor is not None
        kinds = [n.kind for n in sim.notes]
        assert "narrow" in kinds and "crash" in kinds and "daemon" in kinds
        assert not [n for n in sim.notes if n.kind == "error"], sim.notes

        # messages flow on the live channel and on both durable channels the operator joined
        def seen_on(channel: str) -> bool:
            return any(
                isinstance(e, MessageReceived)
                and e.inbound.channel == channel
                and e.inbound.message.from_.id != op.id
                for e in events
            )

        for channel in ("lounge", "general", "review"):
            await wait_for(
                lambda c=channel: seen_on(c), what=f"a message on #{channel}", timeout=15
            )
        await wait_for(sim.scenario_done.is_set, what="the timeline finished", timeout=15)

        # the crasher reboots with the same identity: back on the roster, live again
        offline_at = next(
            i
            for i, e in enumerate(events)
            if isinstance(e, PresenceChanged)
            and e.event.type == "offline"
            and e.event.presence.card.name == CRASHER
        )
        await wait_for(
            lambda: any(
                isinstance(e, PresenceChanged)
                and e.event.type == "join"
                and e.event.presence.card.id == crasher.id
                for e in events[offline_at:]
            ),
            what="gus back on the roster after its reboot",
            timeout=10,
        )
        assert not crasher.crashed and "reboot" in [n.kind for n in sim.notes]
        # what it missed on its durable channels while dead comes through its DLV
        crashed_at = next(n.at for n in sim.notes if n.kind == "crash") * 1000
        rebooted_at = next(n.at for n in sim.notes if n.kind == "reboot") * 1000
        await wait_for(
            lambda: [t for t in crasher.durable_sent_at if crashed_at < t < rebooted_at],
            what="gus receiving, through its DLV, messages sent while it was dead",
            timeout=10,
        )
    finally:
        await asyncio.wait_for(sim.stop(), 30)
        space.stop()
    assert not any(isinstance(e, ChannelDropped) for e in events)  # the operator kept its grants
    await wait_for(lambda: children(os.getpid()) <= before, what="no child process left")
    assert not Path(f"/proc/{server_pid}").exists()
