"""Pairing (a): a space provisioned the reference way, the reference delivery daemon, our agents
next to reference agents. Also scenario 8's second half: the reference's provisioned creds work
for our endpoint unchanged."""

from __future__ import annotations

from typing import Any

from conftest import RefSpace, start_ref_daemon
from refproc import NodeProcess

from waiting import wait_for

AGENT = {"subscribe": ["general", "lounge"], "allowPublish": ["general", "lounge"]}
LIVE = {"channels": {"lounge": {"deliveryClass": "live"}}}


async def _ref_daemon(ref_space: RefSpace, nodes: list[NodeProcess]) -> NodeProcess:
    daemon = await start_ref_daemon(
        nodes, ref_space.build, ref_space.url, ref_space.space, ref_space.delivery.creds
    )
    await daemon.wait_line(r"✓ delivery daemon up", timeout=30)
    return daemon


async def test_presence_chat_and_dm_both_ways(
    ref_space: RefSpace, nodes: list[NodeProcess], our_agents: Any, ref_agents: Any
) -> None:
    """Scenario 1 × (a); scenario 8 × (a): reference-provisioned creds on our endpoint."""
    await ref_space.channels(LIVE)
    await _ref_daemon(ref_space, nodes)
    alice_c = await ref_space.agent("alice", **AGENT)
    bob_c = await ref_space.agent("bob", **AGENT)

    alice = await our_agents(
        ref_space.url, ref_space.space, "alice", creds=alice_c.creds, channels=["general", "lounge"]
    )
    bob = await ref_agents(
        ref_space.build,
        ref_space.url,
        ref_space.space,
        "bob",
        creds=bob_c.creds,
        channels=["general", "lounge"],
    )

    # presence both ways
    await wait_for(
        lambda: any(p.card.id == bob.id for p in alice.ep.roster_entries()),
        what="our roster to list the reference agent",
        timeout=30,
    )
    await wait_for(
        lambda: any(p["card"]["id"] == alice.id for p in _roster_sync(bob)),
        what="the reference roster to list our agent",
        timeout=30,
    )
    roster = await bob.call("roster")
    mine = next(p for p in roster if p["card"]["id"] == alice.id)
    assert mine["card"]["name"] == "alice" and mine["status"] in ("idle", "working", "waiting")

    # the boot durable self-join went through the reference daemon for both
    await wait_for(
        lambda: alice.ep.has_durable_membership("general"),
        what="our agent's durable membership of general (reference daemon)",
        timeout=30,
    )
    health = await bob.call("health")
    assert health["channels"].get("general") == "active", health

    # chat both ways, durable (general) and live (lounge)
    for ch in ("general", "lounge"):
        await alice.ep.send(ch, f"from-ours-{ch}")
        await bob.call("multicast", channel=ch, text=f"from-ref-{ch}")
        await wait_for(
            lambda ch=ch: f"from-ours-{ch}" in bob.texts(channel=ch),
            what=f"the reference agent to receive our {ch} message",
            timeout=30,
        )
        await wait_for(
            lambda ch=ch: f"from-ref-{ch}" in alice.texts(channel=ch),
            what=f"our agent to receive the reference {ch} message",
            timeout=30,
        )
    # each id reaches the application once (live + durable copies coalesced)
    assert alice.texts(channel="general").count("from-ref-general") == 1
    assert bob.texts(channel="general").count("from-ours-general") == 1

    # DM both ways
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
    assert not [e for e in bob.errors() if "permission" in e.lower()], bob.errors()


def _roster_sync(ref: Any) -> list[dict[str, Any]]:
    return [e["presence"] for e in ref.events if e.get("event") == "presence"]
