"""Scenario 4: narrowing an agent's read ACL while it holds a durable membership. The daemon of
either implementation re-authorizes every entry at the trusted reader against the ACL row, so
after the narrowing it stops the agent's copies (a wire fact: nothing more lands on
`dlv.<owner>`), and the agent's leave still completes (leave needs no ACL coverage, §5.6).

(a) our agent, the reference daemon (reference-provisioned space, ACL row via `commitAcl`);
(b) a reference agent, our daemon (our space, ACL row via our manager connection).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nats
from conftest import RefSpace, start_our_space, start_ref_daemon
from refproc import NodeProcess, js_api, read_kv

from cotal_tui.mesh.endpoint import creds_identity
from cotal_tui.server.agents import commit_acl_row
from waiting import wait_for

OPS = {"channels": {"ops": {"deliveryClass": "durable", "replay": False}}}


class Wire:
    """The daemon's consumers and the owner's DLV subject, read with the delivery cred."""

    def __init__(self, url: str, space: str, creds: Path) -> None:
        self.url, self.space, self.creds = url, space, creds
        self.id = creds_identity(str(creds))

    async def _api(self, subject: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        return await js_api(self.url, self.creds, self.id, subject, body)

    async def drained(self) -> bool:
        """Fan-out then reader: nothing pending, nothing unacked (every entry decided)."""
        for stream, name in ((f"CHAT_{self.space}", "fanout"), (f"INBOX_{self.space}", "reader")):
            info = await self._api(f"$JS.API.CONSUMER.INFO.{stream}.{name}")
            if info.get("num_pending") or info.get("num_ack_pending"):
                return False
        return True

    async def dlv_count(self, owner: str) -> int:
        subject = f"cotal.{self.space}.dlv.{owner}"
        info = await self._api(
            f"$JS.API.STREAM.INFO.DLV_{self.space}", {"subjects_filter": subject}
        )
        return int((info.get("state", {}).get("subjects") or {}).get(subject, 0))


async def _narrowed_copies_stop(wire: Wire, owner: str, send: Any, narrow: Any) -> None:
    await send("before")
    await wait_for(wire.drained, what="the daemon to route the pre-narrowing message", timeout=30)
    assert await wire.dlv_count(owner) == 1
    await narrow()
    for i in range(3):
        await send(f"after-{i}")
    await wait_for(wire.drained, what="the daemon to decide the post-narrowing entries", timeout=30)
    assert await wire.dlv_count(owner) == 1, "copies written to DLV after the ACL was narrowed"


async def test_reference_daemon_stops_copies_to_our_agent(
    ref_space: RefSpace, nodes: list[NodeProcess], our_agents: Any, ref_agents: Any
) -> None:
    await ref_space.channels(OPS)
    url, space = ref_space.url, ref_space.space
    daemon = await start_ref_daemon(nodes, ref_space.build, url, space, ref_space.delivery.creds)
    await daemon.wait_line(r"✓ delivery daemon up", timeout=30)
    alice_c = await ref_space.agent("alice", subscribe=["general", "ops"], allowPublish=["ops"])
    bob_c = await ref_space.agent("bob", subscribe=["ops"], allowPublish=["ops"])
    wire = Wire(url, space, ref_space.delivery.creds)

    alice = await our_agents(url, space, "alice", creds=alice_c.creds, channels=["ops"])
    await wait_for(
        lambda: alice.ep.has_durable_membership("ops"),
        what="our agent's ops membership",
        timeout=30,
    )
    await alice.ep.stop()
    bob = await ref_agents(ref_space.build, url, space, "bob", creds=bob_c.creds, channels=["ops"])
    await _narrowed_copies_stop(
        wire,
        alice_c.id,
        lambda t: bob.call("multicast", channel="ops", text=t),
        lambda: ref_space.commit_acl(alice_c.id, ["general"]),
    )

    back = await our_agents(url, space, "alice", creds=alice_c.creds, channels=["ops"])
    await wait_for(
        lambda: back.texts(channel="ops") == ["before"],
        what="the pre-narrowing copy at our returning agent",
        timeout=30,
    )
    assert await back.ep.leave_channel("ops")
    record = await read_kv(
        url, ref_space.delivery.creds, wire.id, f"cotal_members_{space}", f"ops/{alice_c.id}"
    )
    assert record is not None and isinstance(record.get("leaveCursor"), int), record
    assert back.texts(channel="ops") == ["before"]


async def test_our_daemon_stops_copies_to_reference_agent(
    ref_build: str, tmp_path: Path, clis: list[Any], our_agents: Any, ref_agents: Any
) -> None:
    ours = await start_our_space(tmp_path, clis, channels=OPS)
    bob_c = await ours.mint("bob", "--subscribe", "general", "ops", "--allow-publish", "ops")
    alice_c = await ours.mint("alice", "--subscribe", "ops", "--allow-publish", "ops")
    wire = Wire(ours.url, ours.space, ours.delivery_creds)

    bob = await ref_agents(
        ref_build, ours.url, ours.space, "bob", creds=bob_c.creds, channels=["ops"]
    )

    async def member() -> Any:
        got = await bob.call("memberships")
        return got and [m for m in got if m["channel"] == "ops" and m["activated"]]

    await wait_for(member, what="the reference agent's ops membership via our daemon", timeout=30)
    await bob.call("stop")
    bob.kill()
    alice = await our_agents(ours.url, ours.space, "alice", creds=alice_c.creds, channels=["ops"])

    async def narrow() -> None:
        nc = await nats.connect(ours.url, user_credentials=str(ours.manager_creds))
        try:
            await commit_acl_row(nc, ours.space, bob_c.id, ["general"])
        finally:
            await nc.close()

    await _narrowed_copies_stop(wire, bob_c.id, lambda t: alice.ep.send("ops", t), narrow)

    back = await ref_agents(
        ref_build, ours.url, ours.space, "bob", creds=bob_c.creds, channels=["ops"]
    )
    await wait_for(
        lambda: back.texts(channel="ops") == ["before"],
        what="the pre-narrowing copy at the returning reference agent",
        timeout=30,
    )
    await back.call("leave", channel="ops")
    record = await read_kv(
        ours.url, ours.delivery_creds, wire.id, f"cotal_members_{ours.space}", f"ops/{bob_c.id}"
    )
    assert record is not None and isinstance(record.get("leaveCursor"), int), record
    assert back.texts(channel="ops") == ["before"]


async def test_refused_live_sub_closes_through_reference_daemon(
    ref_build: str,
    tmp_path: Path,
    clis: list[Any],
    nodes: list[NodeProcess],
    our_agents: Any,
) -> None:
    """Scenario 4, the whole operator path, our agent with the reference daemon on our space:
    narrower ACL row + re-issued creds (same identity) + a kick. The broker refuses our agent's
    re-sent `ops` subscription; its leave retry goes to the reference daemon, which tombstones
    the membership; copies stop."""
    from cotal_tui.demo.admin import SpaceAdmin
    from cotal_tui.server.auth import load_space_auth

    ours = await start_our_space(tmp_path, clis, daemon=False, channels=OPS)
    cred = await ours.mint("refdaemon", profile="delivery")
    daemon = await start_ref_daemon(nodes, ref_build, ours.url, ours.space, cred.creds)
    await daemon.wait_line(r"✓ delivery daemon up", timeout=30)
    wire = Wire(ours.url, ours.space, cred.creds)
    alice_c = await ours.mint(
        "alice", "--subscribe", "general", "ops", "--allow-publish", "general", "ops"
    )
    dave_c = await ours.mint("dave", "--subscribe", "ops", "--allow-publish", "ops")
    alice = await our_agents(
        ours.url, ours.space, "alice", creds=alice_c.creds, channels=["general", "ops"]
    )
    dave = await our_agents(ours.url, ours.space, "dave", creds=dave_c.creds, channels=["ops"])
    await wait_for(
        lambda: alice.ep.has_durable_membership("ops"),
        what="our agent's ops membership via the reference daemon",
        timeout=30,
    )

    admin = SpaceAdmin(ours.url, ours.space, load_space_auth(ours.state_dir, ours.space), tmp_path)
    await admin.start()
    try:
        await admin.commit_acl(alice.id, ["general"])
        admin.reissue_agent_creds(
            alice_c.creds,
            alice.id,
            allow_subscribe=["general"],
            allow_publish=["general"],
            role=None,
        )
        await admin.kick(alice.ep.conn.nc.client_id or 0)
    finally:
        await admin.stop()

    await wait_for(
        lambda: "ops" not in alice.ep.joined_channels(),
        what="the broker to refuse our agent's re-sent ops subscription",
        timeout=30,
    )
    await wait_for(
        lambda: not alice.ep.has_durable_membership("ops") and not alice.ep.pending_leaves(),
        what="our leave retry to close the membership at the reference daemon",
        timeout=60,
    )
    record = await read_kv(
        ours.url, cred.creds, wire.id, f"cotal_members_{ours.space}", f"ops/{alice.id}"
    )
    assert record is not None and isinstance(record.get("leaveCursor"), int), record
    before = await wire.dlv_count(alice.id)
    await dave.ep.send("ops", "after-the-refusal")
    await wait_for(wire.drained, what="the reference daemon to decide the entry", timeout=30)
    assert await wire.dlv_count(alice.id) == before
