"""Scenario 3: a durable join through the other implementation's daemon; N messages sent while
the member is offline arrive once, in order, on its return; leave tombstones; listMemberships
agrees with the members registry.

(a) our agent, the reference daemon on a reference-provisioned space;
(b) a reference agent, our daemon on our space (`cotal-tui up`).

`ops` is a durable-class channel with replay off, so on return only the durable path (DLV) can
bring the offline messages — a join backfill cannot mask a daemon that did not copy them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conftest import RefSpace, start_our_space, start_ref_daemon
from refproc import NodeProcess, read_kv

from waiting import wait_for

N = 5
OPS = {"channels": {"ops": {"deliveryClass": "durable", "replay": False}}}
REF_AGENT = {"subscribe": ["ops"], "allowPublish": ["ops"]}
OUR_AGENT_ARGS = ("--subscribe", "ops", "--allow-publish", "ops")


async def test_ours_through_reference_daemon(
    ref_space: RefSpace, nodes: list[NodeProcess], our_agents: Any, ref_agents: Any
) -> None:
    await ref_space.channels(OPS)
    daemon = await start_ref_daemon(
        nodes, ref_space.build, ref_space.url, ref_space.space, ref_space.delivery.creds
    )
    await daemon.wait_line(r"✓ delivery daemon up", timeout=30)
    alice_c = await ref_space.agent("alice", **REF_AGENT)
    bob_c = await ref_space.agent("bob", **REF_AGENT)
    url, space = ref_space.url, ref_space.space

    alice = await our_agents(url, space, "alice", creds=alice_c.creds, channels=["ops"])
    await wait_for(
        lambda: alice.ep.has_durable_membership("ops"),
        what="our boot self-join of ops through the reference daemon",
        timeout=30,
    )
    listed = await _memberships(alice)
    generation = _only(listed, "ops")["generation"]
    record = await read_kv(
        url,
        ref_space.delivery.creds,
        ref_space.delivery.id,
        f"cotal_members_{space}",
        f"ops/{alice.id}",
    )
    assert record is not None and record["state"] == "durable-active", record
    assert record["generation"] == generation and "leaveCursor" not in record

    await alice.ep.stop()
    bob = await ref_agents(ref_space.build, url, space, "bob", creds=bob_c.creds, channels=["ops"])
    for i in range(N):
        await bob.call("multicast", channel="ops", text=f"offline-{i}")

    back = await our_agents(url, space, "alice", creds=alice_c.creds, channels=["ops"])
    want = [f"offline-{i}" for i in range(N)]
    await wait_for(
        lambda: back.texts(channel="ops") == want,
        what=f"{N} offline messages, once and in order, on our agent's return",
        timeout=30,
    )
    assert all(i.durable for i in back.inbound(channel="ops")), "expected DLV copies"
    listed = await _memberships(back)
    assert _only(listed, "ops")["generation"] == generation

    # leave: the reference daemon tombstones the record; listMemberships drops it
    assert await back.ep.leave_channel("ops")
    record = await read_kv(
        url,
        ref_space.delivery.creds,
        ref_space.delivery.id,
        f"cotal_members_{space}",
        f"ops/{alice.id}",
    )
    assert record is not None and record["state"] == "live-confirmed", record
    assert isinstance(record.get("leaveCursor"), int) and record["generation"] == generation
    listed = await _memberships(back)
    assert [m for m in listed if m["channel"] == "ops"] == []


async def test_reference_through_our_daemon(
    ref_build: str, tmp_path: Path, clis: list[Any], our_agents: Any, ref_agents: Any
) -> None:
    ours = await start_our_space(tmp_path, clis, channels=OPS)
    bob_c = await ours.mint("bob", *OUR_AGENT_ARGS)
    alice_c = await ours.mint("alice", *OUR_AGENT_ARGS)
    url, space = ours.url, ours.space

    bob = await ref_agents(ref_build, url, space, "bob", creds=bob_c.creds, channels=["ops"])

    async def bob_member() -> Any:
        got = await bob.call("memberships")
        return got and [m for m in got if m["channel"] == "ops" and m["activated"]]

    await wait_for(
        bob_member, what="the reference boot self-join of ops through our daemon", timeout=30
    )
    generation = (await bob.call("memberships"))[0]["generation"]
    record = await read_kv(
        url, ours.manager_creds, _manager_id(ours), f"cotal_members_{space}", f"ops/{bob.id}"
    )
    assert record is not None and record["state"] == "durable-active", record
    assert record["generation"] == generation

    await bob.call("stop")
    bob.kill()
    alice = await our_agents(url, space, "alice", creds=alice_c.creds, channels=["ops"])
    for i in range(N):
        await alice.ep.send("ops", f"offline-{i}")

    back = await ref_agents(ref_build, url, space, "bob", creds=bob_c.creds, channels=["ops"])
    want = [f"offline-{i}" for i in range(N)]
    await wait_for(
        lambda: back.texts(channel="ops") == want,
        what=f"{N} offline messages, once and in order, at the reference agent",
        timeout=30,
    )
    copies = back.copies(channel="ops")
    assert len(copies) == N and all(c["durable"] for c in copies), copies
    assert [m["generation"] for m in await back.call("memberships")] == [generation]

    await back.call("leave", channel="ops")
    record = await read_kv(
        url, ours.manager_creds, _manager_id(ours), f"cotal_members_{space}", f"ops/{bob.id}"
    )
    assert record is not None and record["state"] == "live-confirmed", record
    assert isinstance(record.get("leaveCursor"), int) and record["generation"] == generation
    assert await back.call("memberships") == []


async def _memberships(agent: Any) -> list[dict[str, Any]]:
    reply = await agent.ep.request_delivery("listMemberships", {})
    assert reply.ok, reply
    return list(reply.data["memberships"])


def _only(memberships: list[dict[str, Any]], channel: str) -> dict[str, Any]:
    found = [m for m in memberships if m["channel"] == channel]
    assert len(found) == 1, memberships
    return found[0]


def _manager_id(ours: Any) -> str:
    from cotal_tui.mesh.endpoint import creds_identity

    return creds_identity(str(ours.manager_creds))
