"""The agent side of Plane-3 against our daemon, in auth mode: boot retry, runtime join,
fail-closed leave and tombstone, late-refusal leave retry, delivery health with a probe."""

from __future__ import annotations

import pytest
from plane3_support import connect, dlv_messages

from cotal_tui.delivery.daemon import DeliveryDaemon
from cotal_tui.delivery.members import read_member
from cotal_tui.mesh.control import NoResponders
from cotal_tui.mesh.durable import LiveOnly
from cotal_tui.mesh.endpoint import Endpoint
from cotal_tui.mesh.events import MessageReceived
from cotal_tui.mesh.kv import KvBucket
from cotal_tui.mesh.plane3_agent import Plane3Agent, backoff_s
from cotal_tui.protocol.names import members_bucket
from waiting import wait_for

pytestmark = pytest.mark.timeout(120)
FAST = {"ttl_ms": 1500, "heartbeat_ms": 300, "sweep_ms": 300, "watch_heartbeat_ms": 300}
CHANS = ["review", "general"]


def test_backoff_doubles_to_thirty_seconds():
    assert [backoff_s(a) for a in range(8)] == [1, 2, 4, 8, 16, 30, 30, 30]


async def _daemon(auth_space):
    cred = await auth_space.mint("delivery", "delivery")
    conn = await connect(auth_space.url, cred.public_key, str(cred.path))
    daemon = DeliveryDaemon(conn, auth_space.space, cred.public_key)
    return conn, daemon


def _agent(auth_space, minted, name, **kw) -> Endpoint:
    return Endpoint(
        auth_space.url,
        auth_space.space,
        name=name,
        creds=str(minted.path),
        durable=lambda ep: Plane3Agent(ep, backoff_base_s=0.2, backoff_max_s=1.0),
        **FAST,  # type: ignore[arg-type]
        **kw,
    )


async def test_boot_retry_then_join_leave_and_exactly_once(auth_space):
    alice_c = await auth_space.mint("alice", subscribe=CHANS, allow_publish=CHANS)
    bob_c = await auth_space.mint("bob", subscribe=CHANS, allow_publish=CHANS)
    dconn, daemon = await _daemon(auth_space)
    admin = await connect(auth_space.url, "manager", str(auth_space.manager_creds))
    bob = _agent(auth_space, bob_c, "bob", channels=["review"])
    alice = _agent(auth_space, alice_c, "alice")
    got: list[str] = []
    bob.on_event(
        lambda e: got.append(e.inbound.message.text) if isinstance(e, MessageReceived) else None
    )
    await bob.start()
    await alice.start()
    try:
        # no daemon: the boot self-join is pending, with the reason
        pending = await wait_for(bob.pending_boot_joins, what="a pending boot join")
        assert pending[0].channel == "review" and pending[0].operation == "durableJoin"
        assert pending[0].next_retry_at is not None
        assert not bob.has_durable_membership("review")
        health = await bob.durable.delivery_health()  # type: ignore[attr-defined]
        assert health.lease.verdict == "no-lease"
        assert health.channels[0].health == "degraded"

        await daemon.start()
        await wait_for(lambda: bob.has_durable_membership("review"), what="boot join durable")
        await wait_for(lambda: not bob.pending_boot_joins(), what="pending entry gone")
        health = await bob.durable.delivery_health()  # type: ignore[attr-defined]
        assert health.lease.verdict == "serving" and health.lease.green
        assert [(c.channel, c.health) for c in health.channels] == [("review", "active")]
        assert health.to_json()["lease"]["responder"] == "answered"

        # runtime join of a durable-class channel: reported as durable
        res = await bob.join_channel("general")
        assert res.joined and res.durable and res.reason is None
        for i in range(3):
            await alice.send("review", f"r{i}")
        await wait_for(
            lambda: _count(admin, auth_space.space, bob.id, 3), what="3 copies in bob's DLV"
        )
        await wait_for(lambda: sorted(got) == ["r0", "r1", "r2"], what="bob saw each once")

        # leave: tombstone at the frontier; later messages never reach bob's DLV
        assert await bob.leave_channel("review")
        assert not bob.has_durable_membership("review")
        rec = await read_member(KvBucket(admin, members_bucket(auth_space.space)), "review", bob.id)
        assert rec is not None and rec.record.leave_cursor is not None
        await alice.send("review", "after leave")
        await alice.send("general", "marker")
        await wait_for(lambda: "marker" in got, what="bob got the general marker")
        await wait_for(
            lambda: _count(admin, auth_space.space, bob.id, 4), what="the marker's DLV copy"
        )
        texts = [m.data for m in await dlv_messages(admin, auth_space.space, bob.id)]
        assert len(texts) == 4 and not any(b"after leave" in t for t in texts)
        assert sorted(got) == ["marker", "r0", "r1", "r2"]  # none twice, none after the leave
    finally:
        await alice.stop()
        await bob.stop()
        await daemon.stop()
        await dconn.close()
        await admin.close()


async def _count(conn, space, owner, n) -> bool:
    return len(await dlv_messages(conn, space, owner)) == n


async def test_fail_closed_leave_and_refusal_retry_and_probe(auth_space):
    bob_c = await auth_space.mint("bob", subscribe=CHANS, allow_publish=CHANS)
    dconn, daemon = await _daemon(auth_space)
    await daemon.start()
    bob = _agent(auth_space, bob_c, "bob", channels=["review", "general"])
    await bob.start()
    agent: Plane3Agent = bob.durable  # type: ignore[assignment]
    try:
        await wait_for(
            lambda: bob.has_durable_membership("review") and bob.has_durable_membership("general"),
            what="both boot channels durable",
        )
        assert agent.can_probe()

        # a live lease whose responder is gone reads degraded, with the reason named
        await daemon.service.stop()
        health = await agent.delivery_health()
        assert health.lease.verdict == "no-responder" and not health.lease.green
        assert {c.health for c in health.channels} == {"degraded"}
        assert "no responder" in (health.channels[0].reason or "")

        # fail-closed: with a known generation and no responder, the leave raises, nothing changes
        with pytest.raises(NoResponders):
            await bob.leave_channel("review")
        assert "review" in bob.joined_channels() and bob.has_durable_membership("review")

        # a late broker refusal: the leave-retry loop runs until the tombstone lands
        agent.on_refused("general")
        pending = await wait_for(agent.pending_leaves, what="a pending leave retry")
        assert pending[0].channel == "general" and pending[0].operation == "durableLeave"
        await daemon.service.start()
        await wait_for(lambda: not agent.pending_leaves(), what="the leave retry landed")
        assert not bob.has_durable_membership("general")
        admin = await connect(auth_space.url, "manager", str(auth_space.manager_creds))
        try:
            kv = KvBucket(admin, members_bucket(auth_space.space))
            rec = await read_member(kv, "general", bob.id)
            assert rec is not None and rec.record.leave_cursor is not None
        finally:
            await admin.close()
        assert await bob.leave_channel("review")  # with the responder back, the leave works
        assert not bob.has_durable_membership("review")
    finally:
        await bob.stop()
        await daemon.stop()
        await dconn.close()


async def test_observer_cannot_probe_so_never_green(auth_space):
    observer_c = await auth_space.mint("watcher", "observer")
    ep = Endpoint(
        auth_space.url,
        auth_space.space,
        name="watcher",
        creds=str(observer_c.path),
        register_presence=False,
        consume=False,
        **FAST,  # type: ignore[arg-type]
    )
    await ep.start()
    try:
        agent = ep.durable
        assert isinstance(agent, Plane3Agent)  # the auth-mode default
        assert agent.can_probe() is False
        assert await agent.probe_responder() == ("unknown", None)
        verdict, _, _ = await agent.lease_verdict()
        assert not verdict.green
    finally:
        await ep.stop()


def test_the_default_durable_membership_follows_the_mode():
    assert isinstance(Endpoint("nats://127.0.0.1:1", "s", name="open").durable, LiveOnly)


async def test_an_auth_endpoint_joins_durable_by_default(auth_space):
    """No factory given: with creds the endpoint asks the running daemon and reports durable."""
    bob_c = await auth_space.mint("bob", subscribe=CHANS, allow_publish=CHANS)
    dconn, daemon = await _daemon(auth_space)
    await daemon.start()
    bob = Endpoint(
        auth_space.url,
        auth_space.space,
        name="bob",
        creds=str(bob_c.path),
        **FAST,  # type: ignore[arg-type]
    )
    await bob.start()
    try:
        assert isinstance(bob.durable, Plane3Agent)
        res = await bob.join_channel("general")
        assert res.joined and res.durable, res.reason
        assert bob.has_durable_membership("general")
        kv = KvBucket(dconn, members_bucket(auth_space.space))
        rec = await read_member(kv, "general", bob.id)
        assert rec is not None and rec.record.leave_cursor is None
    finally:
        await bob.stop()
        await daemon.stop()
        await dconn.close()


async def test_boot_reconcile_survives_a_broker_restart(auth_space):
    bob_c = await auth_space.mint("bob", subscribe=CHANS, allow_publish=CHANS)
    bob = _agent(auth_space, bob_c, "bob", channels=["review"])
    await bob.start()
    dconn = daemon = None
    try:
        await wait_for(bob.pending_boot_joins, what="a pending boot join")
        auth_space.server.restart()
        await wait_for(lambda: bob.connected, what="bob reconnected", timeout=30)
        assert [p.channel for p in bob.pending_boot_joins()] == ["review"]  # still retrying
        dconn, daemon = await _daemon(auth_space)

        async def started() -> bool:  # JetStream needs a moment after the restart
            try:
                await daemon.start()
            except Exception:  # noqa: BLE001 - retried
                return False
            return True

        await wait_for(started, what="the daemon starts after the restart", timeout=30)
        await wait_for(
            lambda: bob.has_durable_membership("review"), what="durable after the restart"
        )
        assert not bob.pending_boot_joins()
    finally:
        await bob.stop()
        if daemon is not None:
            await daemon.stop()
        if dconn is not None:
            await dconn.close()
