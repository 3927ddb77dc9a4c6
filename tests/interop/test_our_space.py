"""Pairing (b): our space (`cotal-tui up`, with its in-process delivery daemon), reference agents
next to ours. Also scenario 8's first half: creds from our `mint` accepted by the reference
endpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conftest import start_our_space

from waiting import wait_for

LIVE = {"channels": {"lounge": {"deliveryClass": "live"}}}
AGENT_ARGS = ("--subscribe", "general", "lounge", "--allow-publish", "general", "lounge")


async def test_presence_chat_and_dm_both_ways(
    ref_build: str, tmp_path: Path, clis: list[Any], our_agents: Any, ref_agents: Any
) -> None:
    """Scenario 1 × (b); scenario 8 × (b): our minted creds on the reference endpoint."""
    ours = await start_our_space(tmp_path, clis, channels=LIVE)
    alice_c = await ours.mint("alice", *AGENT_ARGS)
    bob_c = await ours.mint("bob", *AGENT_ARGS)

    alice = await our_agents(
        ours.url, ours.space, "alice", creds=alice_c.creds, channels=["general", "lounge"]
    )
    bob = await ref_agents(
        ref_build, ours.url, ours.space, "bob", creds=bob_c.creds, channels=["general", "lounge"]
    )
    assert bob.id == bob_c.id

    await wait_for(
        lambda: any(p.card.id == bob.id for p in alice.ep.roster_entries()),
        what="our roster to list the reference agent",
        timeout=30,
    )
    await wait_for(
        lambda: bob.presence_of(alice.id), what="the reference roster to list our agent", timeout=30
    )

    # the reference agent's boot durable self-join went through our daemon
    async def ref_active() -> bool:
        return (await bob.call("health"))["channels"].get("general") == "active"

    await wait_for(
        ref_active, what="the reference agent's general backstop active (our daemon)", timeout=30
    )
    await wait_for(
        lambda: alice.ep.has_durable_membership("general"),
        what="our agent's durable membership of general",
        timeout=30,
    )

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
    assert alice.texts(channel="general").count("from-ref-general") == 1

    # the reference agent's durable copy of our durable-channel message came through our daemon
    await wait_for(
        lambda: any(
            c["durable"]
            for c in bob.copies(channel="general")
            if c["msg"]["parts"][0]["text"] == "from-ours-general"
        ),
        what="a durable (DLV) copy of our general message at the reference agent",
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
    assert not [e for e in bob.errors() if "permission" in e.lower()], bob.errors()
