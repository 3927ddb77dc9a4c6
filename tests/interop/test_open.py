"""Pairing (c): open mode both ways — a space set up by our `cotal-tui up --open`, and one set up
the reference way (`setupSpaceStreams` on a bare connection); on each, our agents and reference
agents: presence, chat, DM and anycast (open-mode agents create their own DM/TASK durables).

Open mode has no daemon: a durable-class join is live-only in both implementations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import start_our_space
from refproc import provision
from spaces import unique_space

from cotal_tui.server.process import EmbeddedServer
from waiting import wait_for


async def _both_ways(build: str, url: str, space: str, our_agents: Any, ref_agents: Any) -> None:
    alice = await our_agents(url, space, "alice", role="worker", channels=["general"])
    bob = await ref_agents(build, url, space, "bob", role="worker", channels=["general"])
    await wait_for(
        lambda: any(p.card.id == bob.id for p in alice.ep.roster_entries()),
        what="our roster to list the reference agent",
        timeout=30,
    )
    await wait_for(
        lambda: bob.presence_of(alice.id), what="the reference roster to list our agent", timeout=30
    )

    await alice.ep.send("general", "from-ours")
    await bob.call("multicast", channel="general", text="from-ref")
    await wait_for(
        lambda: "from-ours" in bob.texts(channel="general"),
        what="the reference agent to receive our message",
        timeout=30,
    )
    await wait_for(
        lambda: "from-ref" in alice.texts(channel="general"),
        what="our agent to receive the reference message",
        timeout=30,
    )

    await alice.ep.send_dm(bob.id, "dm-from-ours")
    await bob.call("unicast", to=alice.id, text="dm-from-ref")
    await wait_for(
        lambda: "dm-from-ours" in bob.texts(to=bob.id),
        what="the reference agent to receive our DM",
        timeout=30,
    )
    await wait_for(
        lambda: "dm-from-ref" in alice.texts(to=alice.id),
        what="our agent to receive the reference DM",
        timeout=30,
    )

    # the sender is not in the role: a worker drops its own echo (§2.3), on both sides
    boss = await our_agents(url, space, "boss")
    for i in range(6):
        await boss.ep.send_anycast("worker", f"task-{i}")
    want = {f"task-{i}" for i in range(6)}

    def got() -> list[str]:
        return alice.texts(to_service="worker") + bob.texts(toService="worker")

    await wait_for(
        lambda: len(got()) >= 6,
        timeout=30,
        what=f"all anycast tasks taken (reference errors: {bob.errors()})",
    )
    assert sorted(got()) == sorted(want), got()

    # no daemon in open mode: a durable-class join is live only, on both sides
    joined = await bob.call("join", channel="ops")
    assert joined["joined"] and not joined["durable"], joined
    ours = await alice.ep.join_channel("ops")
    assert ours.joined and not ours.durable


async def test_open_space_of_ours(
    ref_build: str, tmp_path: Path, clis: list[Any], our_agents: Any, ref_agents: Any
) -> None:
    space = await start_our_space(tmp_path, clis, open_mode=True)
    await _both_ways(ref_build, space.url, space.space, our_agents, ref_agents)


@pytest.fixture
def open_server(tmp_path: Path) -> Any:
    server = EmbeddedServer(store_dir=str(tmp_path / "openstore")).start()
    try:
        yield server
    finally:
        server.close()


async def test_open_space_of_the_reference(
    ref_build: str, open_server: EmbeddedServer, our_agents: Any, ref_agents: Any
) -> None:
    space = unique_space("ro")
    await provision(ref_build, "setup", open=True, server=open_server.url, space=space)
    await _both_ways(ref_build, open_server.url, space, our_agents, ref_agents)
