"""The endpoint under the reference's auth profiles: every verb it uses is one the grants allow."""

from __future__ import annotations

import asyncio
import json

import nats
import pytest
from spaces import AuthSpace

from cotal_tui.commands.status import take_snapshot
from cotal_tui.mesh.chat import JoinRefused
from cotal_tui.mesh.durable import LiveOnly
from cotal_tui.mesh.endpoint import Endpoint
from cotal_tui.mesh.events import ChannelDropped, EndpointError, EndpointEvent, MessageReceived
from cotal_tui.protocol.permissions import agent_permissions
from cotal_tui.server.auth import write_creds
from cotal_tui.server.nats_jwt import Nkey
from waiting import wait_for

FAST = {"ttl_ms": 1500, "heartbeat_ms": 300, "sweep_ms": 300, "watch_heartbeat_ms": 300}


async def test_agents_in_auth_mode(auth_space: AuthSpace) -> None:
    common = {"allow_subscribe": ["general", "review"], "allow_publish": ["general", "review"]}
    alice_creds = await auth_space.mint("alice", "agent", **common)
    bob_creds = await auth_space.mint("bob", "agent", role="builder", **common)
    url, space = auth_space.url, auth_space.space
    alice = Endpoint(url, space, name="alice", creds=str(alice_creds.path), **FAST)  # type: ignore[arg-type]
    bob = Endpoint(url, space, name="bob", role="builder", creds=str(bob_creds.path), **FAST)  # type: ignore[arg-type]
    assert alice.id == alice_creds.public_key
    events: list[EndpointEvent] = []
    bob.on_event(events.append)
    await alice.start()
    await bob.start()
    try:
        await wait_for(
            lambda: (
                bob.roster_view == "current"
                and {p.card.name for p in bob.roster_entries()} >= {"alice", "bob"}
            ),
            what="roster current under auth grants",
        )
        await alice.send("general", "before bob joins")
        res = await bob.join_channel("general")
        assert res.joined and res.backfilled == 1  # chathist consumer on the granted subject
        with pytest.raises(JoinRefused):
            await bob.join_channel("secret")
        assert "secret" not in bob.joined_channels()
        assert not [s for s in bob.conn.nc._subs.values() if s.subject.endswith(".secret")]
        await alice.send("general", "live")
        await alice.send_dm("bob", "a dm")
        await alice.send_anycast("builder", "a job")

        def texts() -> list[str]:
            return [e.inbound.message.text for e in events if isinstance(e, MessageReceived)]

        await wait_for(
            lambda: {"before bob joins", "live", "a dm", "a job"} <= set(texts()),
            what="backfill, live chat, DM and anycast under auth",
        )
        rows = {r.channel: r for r in await bob.list_channels()}
        # the agent reads lease.0 (no daemon here: no lease), so the joined durable-class
        # channel is degraded, never active
        assert rows["general"].joined and rows["general"].delivery_health == "degraded"
        snap = await take_snapshot(url, space, creds=str(bob_creds.path), timeout=5)
        assert snap["roster"]["view"] == "current" and snap["connection"]["mode"] == "auth"
        assert {e["name"] for e in snap["roster"]["entries"]} >= {"alice", "bob"}
        errors = [e for e in events if isinstance(e, EndpointError)]
        assert not [e for e in errors if "permission" in str(e.error).lower()], errors
    finally:
        await asyncio.wait_for(alice.stop(), 10)
        await asyncio.wait_for(bob.stop(), 10)


async def test_dlv_copies_coalesce_with_the_live_copy(auth_space: AuthSpace) -> None:
    common = {"allow_subscribe": ["general"], "allow_publish": ["general"]}
    alice_creds = await auth_space.mint("alice", "agent", **common)
    bob_creds = await auth_space.mint("bob", "agent", **common)
    url, space = auth_space.url, auth_space.space
    alice = Endpoint(url, space, name="alice", creds=str(alice_creds.path), **FAST)  # type: ignore[arg-type]
    bob = Endpoint(url, space, name="bob", creds=str(bob_creds.path), channels=["general"], **FAST)  # type: ignore[arg-type]
    events: list[EndpointEvent] = []
    bob.on_event(events.append)
    await alice.start()
    await bob.start()
    manager = await nats.connect(url, user_credentials=str(auth_space.manager_creds))
    try:
        assert "general" in bob.joined_channels()
        live = await alice.send("general", "seen live first")
        await wait_for(
            lambda: any(isinstance(e, MessageReceived) for e in events), what="the live copy"
        )
        js = manager.jetstream()
        dlv_subject = f"cotal.{space}.dlv.{bob.id}"
        # the daemon's durable copy of the same message, then one only DLV carries
        await js.publish(
            dlv_subject, live.to_json(), headers={"Nats-Msg-Id": f"{live.id}:{bob.id}:1"}
        )
        only = {
            **json.loads(live.to_json()),
            "id": "dlv-only-1",
            "parts": [{"kind": "text", "text": "offline copy"}],
        }
        await js.publish(
            dlv_subject,
            json.dumps(only).encode(),
            headers={"Nats-Msg-Id": f"dlv-only-1:{bob.id}:1"},
        )

        def received() -> list[MessageReceived]:
            return [e for e in events if isinstance(e, MessageReceived)]

        await wait_for(lambda: len(received()) == 2, what="the DLV-only message")
        first, second = received()
        assert first.inbound.id == live.id and not first.inbound.durable
        assert second.inbound.id == "dlv-only-1" and second.inbound.durable
        assert second.inbound.kind == "channel" and second.inbound.channel == "general"

        async def dlv_settled() -> bool:
            info = await js.consumer_info(f"DLV_{space}", f"dlv_{bob.id}")
            return info.num_pending == 0 and info.num_ack_pending == 0

        await wait_for(dlv_settled, what="both DLV copies acked (the duplicate too)")
        assert len(received()) == 2
    finally:
        await manager.close()
        await asyncio.wait_for(alice.stop(), 10)
        await asyncio.wait_for(bob.stop(), 10)


class RecordingDurable(LiveOnly):
    """The durable seam, recording what the endpoint tells it."""

    def __init__(self, endpoint: Endpoint) -> None:
        super().__init__(endpoint)
        self.refused: list[str] = []
        self.connects: list[bool] = []

    async def on_connected(self, first: bool, boot_channels: list[str]) -> None:
        self.connects.append(first)

    def on_refused(self, channel: str) -> None:
        self.refused.append(channel)


async def test_late_refusal_drops_the_channel(auth_space: AuthSpace) -> None:
    """Narrow the agent's grants while it is joined: after the reconnect the broker refuses the
    re-sent subscription, and the channel leaves the joined set (the durable seam is told)."""
    minted = await auth_space.mint(
        "bob", "agent", allow_subscribe=["general", "review"], allow_publish=["general"]
    )
    url, space = auth_space.url, auth_space.space
    seen: list[RecordingDurable] = []

    def factory(ep: Endpoint) -> RecordingDurable:
        seen.append(RecordingDurable(ep))
        return seen[-1]

    bob = Endpoint(url, space, name="bob", creds=str(minted.path), durable=factory, **FAST)  # type: ignore[arg-type]
    events: list[EndpointEvent] = []
    bob.on_event(events.append)
    await bob.start()
    try:
        await bob.join_channel("general")
        await bob.join_channel("review")
        seed = next(
            line.strip()
            for line in minted.path.read_text().splitlines()
            if line.strip().startswith("SU")
        )
        narrower = agent_permissions(
            space, bob.id, allow_subscribe=["review"], allow_publish=["general"]
        )
        write_creds(minted.path, auth_space.auth.mint_user("agent", narrower, Nkey(seed=seed)))
        auth_space.server.restart()  # the client re-reads the creds file when it reconnects
        await wait_for(
            lambda: any(isinstance(e, ChannelDropped) and e.channel == "general" for e in events),
            what="the late refusal of #general",
            timeout=15,
        )
        assert bob.joined_channels() == ["review"]
        assert seen[0].refused == ["general"]
        await wait_for(lambda: seen[0].connects == [True, False], what="the re-armed seam")
    finally:
        await asyncio.wait_for(bob.stop(), 10)


async def test_plane3_never_asks_ctl_delivery_with_a_cred_that_may_not(
    auth_space: AuthSpace,
) -> None:
    """Issue 12 item 4: a durable join with a cred that may not publish on ctl.delivery is
    refused at once (it used to wait out the 30 s join timeout), and no request is sent."""
    from cotal_tui.mesh.plane3_agent import DeliveryNotPermitted, Plane3Agent

    admin = await auth_space.mint("ops-admin", "admin")
    seen: list[bytes] = []

    async def record(msg) -> None:
        seen.append(msg.data)

    tap = await nats.connect(auth_space.url, user_credentials=str(auth_space.manager_creds))
    sub = await tap.subscribe(f"cotal.{auth_space.space}.ctl.delivery.>", cb=record)
    ep = Endpoint(auth_space.url, auth_space.space, name="ops", kind="endpoint",
                  creds=str(admin.path), channels=["general"], register_presence=False,
                  consume=False, create_space=False, durable=Plane3Agent)  # fmt: skip
    try:
        await asyncio.wait_for(ep.start(), 10)  # the boot channel's durable join is not sent
        assert isinstance(ep.durable, Plane3Agent) and not ep.durable.can_probe()
        with pytest.raises(DeliveryNotPermitted, match="may not publish on ctl.delivery"):
            await asyncio.wait_for(ep.durable.durable_join("general"), 2)
        assert ep.pending_boot_joins() == []
        await tap.flush()
        assert not [d for d in seen if b"durable" in d], seen
    finally:
        await ep.stop(graceful=False)
        await sub.unsubscribe()
        await tap.close()
