"""The daemon across a broker restart, and when its lease is taken from under it."""

from __future__ import annotations

import json

import pytest
from plane3_support import NoResponders, connect, dlv_messages, publish_chat, request_delivery

from cotal_tui.delivery.daemon import DeliveryDaemon
from cotal_tui.mesh.kv import KvBucket
from cotal_tui.mesh.lease import read_lease
from cotal_tui.protocol.names import delivery_bucket
from waiting import wait_for

pytestmark = pytest.mark.timeout(120)


async def test_broker_restart_under_the_daemon(auth_space):
    s = auth_space.space
    delivery = await auth_space.mint("delivery", "delivery")
    chans = ["review"]
    alice = await auth_space.mint("alice", subscribe=chans, allow_publish=chans)
    bob = await auth_space.mint("bob", subscribe=chans, allow_publish=chans)
    carol = await auth_space.mint("carol", subscribe=chans, allow_publish=chans)
    dconn = await connect(auth_space.url, delivery.public_key, str(delivery.path))
    admin = await connect(auth_space.url, "manager", str(auth_space.manager_creds))
    conns = {
        m.public_key: await connect(auth_space.url, m.public_key, str(m.path))
        for m in (alice, bob, carol)
    }
    a, b, c = alice.public_key, bob.public_key, carol.public_key
    daemon = DeliveryDaemon(dconn, s, delivery.public_key)
    await daemon.start()
    try:
        assert (await request_delivery(conns[b], s, b, "durableJoin", {"channel": "review"}))["ok"]
        before, _ = await publish_chat(conns[a], s, a, "review", "before restart")

        async def ids(owner: str) -> list[str]:
            return [json.loads(m.data)["id"] for m in await dlv_messages(admin, s, owner)]

        await wait_for(lambda: _eq(ids(b), [before]), what="bob got the pre-restart message")

        auth_space.server.restart()
        await wait_for(lambda: dconn.is_connected, what="the daemon reconnected", timeout=30)
        await wait_for(lambda: all(x.is_connected for x in conns.values()), what="agents back")

        async def join_carol() -> bool:
            try:
                r = await request_delivery(
                    conns[c], s, c, "durableJoin", {"channel": "review"}, timeout=5
                )
            except (NoResponders, TimeoutError):
                return False
            return r == {"ok": True, "data": {"durable": True, "generation": 1}}

        await wait_for(join_carol, what="a join after the restart succeeds", timeout=30)
        after, _ = await publish_chat(conns[a], s, a, "review", "after restart")
        await wait_for(lambda: _eq(ids(b), [before, after]), what="bob got the post-restart msg")
        await wait_for(lambda: _eq(ids(c), [after]), what="carol got the post-restart msg")
        assert daemon.state.status == "serving"
    finally:
        await daemon.stop()
        for x in (dconn, admin, *conns.values()):
            await x.close()


async def _eq(coro, want) -> bool:
    return await coro == want


async def test_lost_lease_stops_serving_at_once(open_space):
    s = open_space.space
    dconn = await connect(open_space.url, "D-LOSER")
    other = await connect(open_space.url, "tools")
    daemon = DeliveryDaemon(dconn, s, "D-LOSER", renew_interval_s=0.3)
    await daemon.start()
    try:
        assert (await request_delivery(other, s, "UA", "listMemberships"))["ok"]
        kv = KvBucket(other, delivery_bucket(s))
        body = {"holder": "D-THIEF", "since": 1, "ready": True}
        await kv.put("lease.0", json.dumps(body).encode())  # another writer took the key
        await wait_for(lambda: daemon.state.status == "lost", what="the daemon noticed the loss")
        assert "lost the lease" in (daemon.state.stopped_reason or "")
        with pytest.raises(NoResponders):
            await request_delivery(other, s, "UA", "listMemberships", timeout=5)
        held = await read_lease(kv)
        assert held is not None and held.info.holder == "D-THIEF"  # not released by the loser
    finally:
        await daemon.stop()
        await dconn.close()
        await other.close()
