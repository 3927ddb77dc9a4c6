"""Plane-3 behaviours in auth mode, every message accounted for: the ACL gate, catch-up
exactly once, eviction, live mentions, unknown-owner deferral."""

from __future__ import annotations

import json
import time

import pytest
from plane3_support import (
    chat_message,
    connect,
    dlv_messages,
    publish_chat,
    request_delivery,
    set_acl,
    set_channel_class,
)

from cotal_tui.delivery.acl import delete_acl
from cotal_tui.delivery.daemon import DeliveryDaemon
from cotal_tui.delivery.members import read_member
from cotal_tui.mesh.kv import KvBucket
from cotal_tui.protocol.names import acl_bucket, inbox_stream, members_bucket, presence_bucket
from waiting import wait_for

pytestmark = pytest.mark.timeout(120)


class World:
    def __init__(self, space, daemon, admin, agents):
        self.space = space
        self.s = space.space
        self.daemon = daemon
        self.admin = admin
        self.agents = agents  # name -> (id, conn)

    def id(self, name: str) -> str:
        return self.agents[name][0]

    def conn(self, name: str):
        return self.agents[name][1]

    async def ask(self, name: str, op: str, args=None):
        return await request_delivery(self.conn(name), self.s, self.id(name), op, args or {})

    async def say(self, name: str, channel: str, text: str, **kw) -> tuple[str, int]:
        return await publish_chat(self.conn(name), self.s, self.id(name), channel, text, **kw)

    async def dlv(self, name: str) -> list[tuple[str, str]]:
        """(message id, Nats-Msg-Id) of every DLV message of ``name``."""
        msgs = await dlv_messages(self.admin, self.s, self.id(name))
        return [(json.loads(m.data)["id"], m.headers["Nats-Msg-Id"]) for m in msgs]

    async def settled(self) -> bool:
        """Fan-out and reader have nothing pending or unacked (every entry decided)."""
        js = self.admin.js
        fan = await js.consumer_info(f"CHAT_{self.s}", "fanout")
        rd = await js.consumer_info(inbox_stream(self.s), "reader")
        return (
            fan.num_pending == 0
            and fan.num_ack_pending == 0
            and rd.num_pending == 0
            and rd.num_ack_pending == 0
        )


@pytest.fixture
async def world(auth_space):
    delivery = await auth_space.mint("delivery", "delivery")
    chans = ["review", "lounge"]
    made = {
        "alice": await auth_space.mint("alice", subscribe=chans, allow_publish=chans),
        "bob": await auth_space.mint("bob", subscribe=chans, allow_publish=chans),
        "carol": await auth_space.mint("carol", subscribe=["review"], allow_publish=["review"]),
    }
    dconn = await connect(auth_space.url, delivery.public_key, str(delivery.path))
    admin = await connect(auth_space.url, "manager", str(auth_space.manager_creds))
    agents = {}
    for name, m in made.items():
        agents[name] = (m.public_key, await connect(auth_space.url, m.public_key, str(m.path)))
    daemon = DeliveryDaemon(dconn, auth_space.space, delivery.public_key)
    await daemon.start()
    try:
        yield World(auth_space, daemon, admin, agents)
    finally:
        await daemon.stop()
        for c in (dconn, admin, *(c for _, c in agents.values())):
            await c.close()


async def test_acl_narrowing_drops_later_entries(world):
    assert (await world.ask("bob", "durableJoin", {"channel": "review"}))["data"]["durable"]
    m1, _ = await world.say("alice", "review", "before narrowing")
    await wait_for(lambda: _ids(world, "bob", [m1]), what="bob got m1")
    await set_acl(world.admin, world.s, world.id("bob"), ["lounge"])  # review no longer covered
    dropped_before = world.daemon.counters.dropped
    m2, _ = await world.say("alice", "review", "after narrowing")
    await wait_for(world.settled, what="fan-out and reader settled")
    await wait_for(
        lambda: world.daemon.counters.dropped == dropped_before + 1, what="the reader dropped m2"
    )
    assert [i for i, _ in await world.dlv("bob")] == [m1]
    c = world.daemon.counters
    assert c.fanned_out == c.transferred + c.dropped  # every entry accounted for
    del m2


async def _ids(world, name, want) -> bool:
    return [i for i, _ in await world.dlv(name)] == want


async def test_catchup_window_arrives_exactly_once(world):
    """Messages published between the join cursor and the fence come through catch-up (and
    fan-out too): DLV holds each exactly once."""
    service = world.daemon.service
    original = service.chat_last_seq
    calls = 0
    window: list[str] = []

    async def cursor_then_publish() -> int:
        nonlocal calls
        value = await original()
        calls += 1
        if calls == 1:  # the join cursor was just taken: publish inside the window
            for i in range(5):
                window.append((await world.say("alice", "review", f"window {i}"))[0])
        return await original() if calls > 1 else value

    await world.daemon.fanout.stop()  # nothing routed by fan-out until after the join
    service.chat_last_seq = cursor_then_publish  # type: ignore[method-assign]
    try:
        reply = await world.ask("bob", "durableJoin", {"channel": "review"})
    finally:
        service.chat_last_seq = original  # type: ignore[method-assign]
    assert reply == {"ok": True, "data": {"durable": True, "generation": 1}}
    copied = world.daemon.counters.fanned_out
    assert copied == 5  # catch-up wrote the window
    await world.daemon.fanout.start()  # fan-out now routes the same messages again
    after, _ = await world.say("alice", "review", "after activation")
    await wait_for(lambda: _ids(world, "bob", [*window, after]), what="bob got window + after")
    await wait_for(world.settled, what="settled")
    got = await world.dlv("bob")
    assert [i for i, _ in got] == [*window, after]
    assert all(h == f"{i}:{world.id('bob')}:1" for i, h in got)


async def test_evicted_window_gives_live_only_and_tombstone(world):
    service = world.daemon.service
    original = service.chat_last_seq
    calls = 0

    async def cursor_then_flood() -> int:
        nonlocal calls
        value = await original()
        calls += 1
        if calls == 1:  # > 1000 messages of one sender: the oldest of the window are evicted
            js = world.conn("alice").js
            futs = []
            for i in range(1003):
                subj, data, mid = chat_message(world.s, world.id("alice"), "review", f"f{i}")
                futs.append(await js.publish_async(subj, data, headers={"Nats-Msg-Id": mid}))
            for f in futs:
                await f
        return value if calls == 1 else await original()

    service.chat_last_seq = cursor_then_flood  # type: ignore[method-assign]
    try:
        reply = await world.ask("bob", "durableJoin", {"channel": "review"})
    finally:
        service.chat_last_seq = original  # type: ignore[method-assign]
    assert reply == {
        "ok": True,
        "data": {
            "durable": False,
            "reason": "activation catch-up window partially evicted by retention",
            "generation": 1,
        },
    }
    rec = await read_member(
        KvBucket(world.admin, members_bucket(world.s)), "review", world.id("bob")
    )
    assert rec is not None and rec.record.leave_cursor is not None
    assert rec.record.state == "live-confirmed"
    fence = rec.record.leave_cursor
    assert (await world.ask("bob", "listMemberships"))["data"] == {"memberships": []}
    late, late_seq = await world.say("alice", "review", "after the tombstone")
    assert late_seq > fence
    await wait_for(world.settled, what="settled", timeout=60)
    ids = [i for i, _ in await world.dlv("bob")]
    assert late not in ids and len(ids) == len(set(ids))


async def test_live_mentions_reach_only_acl_covered_peers(world):
    await set_channel_class(world.admin, world.s, "lounge", "live")
    presence = KvBucket(world.admin, presence_bucket(world.s))
    for name in ("bob", "carol", "alice"):
        card = {"id": world.id(name), "name": name, "kind": "agent"}
        rec = {"card": card, "status": "idle", "ts": int(time.time() * 1000)}
        await presence.put(world.id(name), json.dumps(rec).encode())
    await wait_for(
        lambda: len(world.daemon.roster.entries()) >= 3, what="the daemon's roster has 3 peers"
    )
    # carol's ACL does not cover lounge; "ghost" is nobody; alice is the sender
    mid, _ = await world.say(
        "alice", "lounge", "hi @bob @carol", mentions=["bob", "carol", "ghost", "alice"]
    )
    plain, _ = await world.say("alice", "lounge", "no mentions")
    await wait_for(lambda: _ids(world, "bob", [mid]), what="bob got the mention")
    await wait_for(world.settled, what="settled")
    assert await world.dlv("bob") == [(mid, f"{mid}:{world.id('bob')}:0")]
    assert await world.dlv("carol") == [] and await world.dlv("alice") == []
    del plain


async def test_unknown_owner_deferred_then_delivered(world):
    assert (await world.ask("bob", "durableJoin", {"channel": "review"}))["data"]["durable"]
    acls = KvBucket(world.admin, acl_bucket(world.s))
    await delete_acl(acls, world.id("bob"))  # bob becomes unknown to the reader
    mid, _ = await world.say("alice", "review", "while unknown")
    await wait_for(lambda: world.daemon.counters.deferred >= 1, what="the reader deferred")
    assert await world.dlv("bob") == []
    await set_acl(world.admin, world.s, world.id("bob"), ["review"])
    await wait_for(lambda: _ids(world, "bob", [mid]), what="delivered once the ACL row appeared")
    await wait_for(world.settled, what="settled")
    assert [i for i, _ in await world.dlv("bob")] == [mid]


async def _retarget(admin, stream: str, subjects: list[str]) -> None:
    js = admin.js
    cfg = (await js.stream_info(stream)).config
    cfg.subjects = subjects
    await js.update_stream(cfg)


async def test_failed_publishes_are_nakd_and_nothing_is_lost(world):
    """INBOX, then DLV, stop accepting the daemon's writes for a while: every copy still lands."""
    s = world.s
    assert (await world.ask("bob", "durableJoin", {"channel": "review"}))["data"]["durable"]
    inbox, dlv = f"INBOX_{s}", f"DLV_{s}"
    await _retarget(world.admin, inbox, [f"cotal.{s}.parked-dinbox.>"])
    m1, _ = await world.say("alice", "review", "while INBOX refuses")
    await wait_for(lambda: world.daemon.counters.naked >= 1, what="fan-out nak'd m1")
    await _retarget(world.admin, inbox, [f"cotal.{s}.dinbox.>"])
    await wait_for(lambda: _ids(world, "bob", [m1]), what="m1 delivered after INBOX is back")

    await _retarget(world.admin, dlv, [f"cotal.{s}.parked-dlv.>"])
    naked = world.daemon.counters.naked
    m2, _ = await world.say("alice", "review", "while DLV refuses")
    await wait_for(
        lambda: world.daemon.counters.transfer_failures >= 1, what="the reader's transfer failed"
    )
    assert [i for i, _ in await world.dlv("bob")] == [m1]
    await _retarget(world.admin, dlv, [f"cotal.{s}.dlv.>"])
    await wait_for(lambda: _ids(world, "bob", [m1, m2]), what="m2 delivered after DLV is back")
    await wait_for(world.settled, what="settled")
    assert [i for i, _ in await world.dlv("bob")] == [m1, m2]  # once each
    assert world.daemon.counters.naked >= naked
