"""The delivery daemon under the reference's auth profiles: delivery cred, agent creds."""

from __future__ import annotations

import json

import pytest
from plane3_support import connect, dlv_messages, publish_chat, request_delivery

from cotal_tui.delivery.daemon import DaemonPermissionDenied, DeliveryDaemon
from waiting import wait_for


@pytest.fixture
async def world(auth_space):
    """A delivery daemon on its own cred, agents bob and alice, and an allow-all observer."""
    delivery = await auth_space.mint("delivery", "delivery")
    bob = await auth_space.mint("bob", subscribe=["review"], allow_publish=["review"])
    alice = await auth_space.mint("alice", subscribe=["review"], allow_publish=["review"])
    dconn = await connect(auth_space.url, delivery.public_key, str(delivery.path))
    daemon = DeliveryDaemon(dconn, auth_space.space, delivery.public_key)
    admin = await connect(auth_space.url, "manager", str(auth_space.manager_creds))
    bconn = await connect(auth_space.url, bob.public_key, str(bob.path))
    aconn = await connect(auth_space.url, alice.public_key, str(alice.path))
    await daemon.start()
    try:
        yield auth_space, daemon, admin, (bob.public_key, bconn), (alice.public_key, aconn)
    finally:
        await daemon.stop()
        for c in (dconn, admin, bconn, aconn):
            await c.close()


async def test_auth_join_route_transfer_and_leave(world):
    space, daemon, admin, (bob, bconn), (alice, aconn) = world
    s = space.space
    joined = await request_delivery(bconn, s, bob, "durableJoin", {"channel": "review"})
    assert joined == {"ok": True, "data": {"durable": True, "generation": 1}}
    sent = [(await publish_chat(aconn, s, alice, "review", f"m{i}"))[0] for i in range(4)]

    async def bob_has_all() -> bool:
        msgs = await dlv_messages(admin, s, bob)
        return [m.headers["Nats-Msg-Id"] for m in msgs] == [f"{i}:{bob}:1" for i in sent]

    await wait_for(bob_has_all, what="bob's DLV holds alice's 4 messages with plane-3 ids")
    left = await request_delivery(
        bconn, s, bob, "durableLeave", {"channel": "review", "generation": 1}
    )
    assert left["ok"] is True
    late = (await publish_chat(aconn, s, alice, "review", "late"))[0]
    # alice joins after bob left; her own message to bob's old channel is the marker
    assert (await request_delivery(aconn, s, alice, "durableJoin", {"channel": "review"}))["ok"]
    marker = (await publish_chat(bconn, s, bob, "review", "marker"))[0]
    await wait_for(lambda: _contains(admin, s, alice, marker), what="alice received bob's marker")
    got = [m.headers["Nats-Msg-Id"].split(":")[0] for m in await dlv_messages(admin, s, bob)]
    assert got == sent and late not in got
    st = daemon.state
    assert st.status == "serving" and st.lease.ready and st.lease.holder == daemon.daemon_id


async def _contains(conn, space, owner, msg_id) -> bool:
    return msg_id in [
        m.headers["Nats-Msg-Id"].split(":")[0] for m in await dlv_messages(conn, space, owner)
    ]


async def test_agent_cred_cannot_run_a_daemon(auth_space):
    agent = await auth_space.mint("mallory", subscribe=["review"])
    conn = await connect(auth_space.url, agent.public_key, str(agent.path))
    try:
        daemon = DeliveryDaemon(conn, auth_space.space, agent.public_key)
        with pytest.raises(DaemonPermissionDenied, match="refused"):
            await daemon.start()
        assert daemon.state.status == "failed"
    finally:
        await conn.close()


async def test_reply_injection_under_auth_reaches_nobody(world):
    """Bob aims ctl.delivery replies at Alice's reply lane: no reply, Alice receives nothing."""
    space, daemon, admin, (bob, bconn), (alice, aconn) = world
    s = space.space
    lane = f"cotal.{s}.ctl.delivery.{alice}.reply.stolen"
    alice_lane = await aconn.nc.subscribe(f"cotal.{s}.ctl.delivery.{alice}.reply.>")
    await aconn.nc.flush()
    body = json.dumps({"op": "listMemberships", "args": {}, "from": {"id": bob, "name": "bob"}})
    await bconn.nc.publish(f"cotal.{s}.ctl.delivery.{bob}", body.encode(), reply=lane)
    await bconn.nc.flush()
    await wait_for(
        lambda: "is not under" in (daemon.state.last_error or ""),
        what="the daemon dropped the misdirected request",
    )
    # bob's own lane still works, and alice's lane stayed silent throughout
    ok = await request_delivery(bconn, s, bob, "listMemberships")
    assert ok == {"ok": True, "data": {"memberships": []}}
    with pytest.raises(TimeoutError):
        await alice_lane.next_msg(timeout=0.5)


async def test_stale_leave_does_not_close_a_rejoin_under_auth(world):
    space, daemon, admin, (bob, bconn), _alice = world
    s = space.space
    first = await request_delivery(bconn, s, bob, "durableJoin", {"channel": "review"})
    assert first["data"]["generation"] == 1
    leave = {"channel": "review", "generation": 1}
    assert (await request_delivery(bconn, s, bob, "durableLeave", leave))["ok"]
    again = await request_delivery(bconn, s, bob, "durableJoin", {"channel": "review"})
    assert again == {"ok": True, "data": {"durable": True, "generation": 2}}
    stale = await request_delivery(bconn, s, bob, "durableLeave", leave)
    assert stale["ok"] is False and "stale membership write" in stale["error"]
    listed = await request_delivery(bconn, s, bob, "listMemberships")
    assert listed["data"] == {
        "memberships": [{"channel": "review", "generation": 2, "activated": True}]
    }
