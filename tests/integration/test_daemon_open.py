"""The delivery daemon in open mode: join, route, transfer, leave, list; reply guard; errors."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import pytest
from plane3_support import (
    chat_message,
    connect,
    dlv_ids,
    dlv_messages,
    publish_chat,
    request_delivery,
    set_acl,
)

from cotal_tui.delivery.daemon import DeliveryDaemon
from waiting import wait_for

BOB = "UBOB" + "B" * 52
ALICE = "UALICE" + "A" * 50


@pytest.fixture
async def daemon(open_space):
    conn = await connect(open_space.url, "DAEMON1")
    d = DeliveryDaemon(conn, open_space.space, "DAEMON1")
    await d.start()
    try:
        yield d
    finally:
        await d.stop()
        await conn.close()


@pytest.fixture
async def agent(open_space):
    conn = await connect(open_space.url, "agent-tools")
    try:
        yield conn
    finally:
        await conn.close()


async def test_join_route_transfer_leave(open_space, daemon, agent):
    space = open_space.space
    await set_acl(agent, space, BOB, ["review"])
    before, _ = await publish_chat(agent, space, ALICE, "review", "before join")
    reply = await request_delivery(agent, space, BOB, "durableJoin", {"channel": "review"})
    assert reply == {"ok": True, "data": {"durable": True, "generation": 1}}
    sent = [(await publish_chat(agent, space, ALICE, "review", f"m{i}"))[0] for i in range(5)]
    own, _ = await publish_chat(agent, space, BOB, "review", "bob's own")
    await wait_for(
        lambda: _ids_equal(agent, space, BOB, sent), what="bob's DLV holds the 5 messages"
    )
    msgs = await dlv_messages(agent, space, BOB)
    assert [m.headers["Nats-Msg-Id"] for m in msgs] == [f"{i}:{BOB}:1" for i in sent]
    assert before not in await dlv_ids(agent, space, BOB) and own not in sent

    listed = await request_delivery(agent, space, BOB, "listMemberships")
    assert listed == {
        "ok": True,
        "data": {"memberships": [{"channel": "review", "generation": 1, "activated": True}]},
    }
    left = await request_delivery(
        agent, space, BOB, "durableLeave", {"channel": "review", "generation": 1}
    )
    assert left == {"ok": True, "data": {"channel": "review"}}
    after = [(await publish_chat(agent, space, ALICE, "review", f"late{i}"))[0] for i in range(3)]
    marker_ch = "review"
    await set_acl(agent, space, ALICE, ["review"])
    await request_delivery(agent, space, ALICE, "durableJoin", {"channel": marker_ch})
    last, _ = await publish_chat(agent, space, BOB, "review", "to alice")
    await wait_for(lambda: _has(agent, space, ALICE, last), what="alice got the post-leave marker")
    got = await dlv_ids(agent, space, BOB)
    assert got == sent and not set(after) & set(got)
    assert (await request_delivery(agent, space, BOB, "listMemberships"))["data"] == {
        "memberships": []
    }
    again = await request_delivery(
        agent, space, "UNOBODY", "durableLeave", {"channel": "review", "generation": 1}
    )
    assert again == {"ok": True, "data": {"channel": "review", "alreadyLeft": True}}
    st = daemon.state
    assert st.status == "serving" and st.lease.holder == "DAEMON1" and st.lease.ready
    assert st.counters.transferred >= 6 and st.counters.fanned_out >= 6


async def _ids_equal(conn, space, owner, want):
    return await dlv_ids(conn, space, owner) == want


async def _has(conn, space, owner, msg_id):
    return msg_id in await dlv_ids(conn, space, owner)


async def test_validation_order_and_error_strings(open_space, daemon, agent):
    space = open_space.space
    ask = lambda op, args, who=BOB: request_delivery(agent, space, who, op, args)  # noqa: E731
    assert (await ask("durableJoin", {"channel": "  "}))["error"] == (
        "durableJoin: channel must be a non-blank string"
    )
    assert (await ask("durableJoin", {}))["error"] == (
        "durableJoin: channel must be a non-blank string"
    )
    bad = await ask("durableJoin", {"channel": "a..b"})
    assert bad["ok"] is False and "invalid channel" in bad["error"]
    assert (await ask("durableJoin", {"channel": "team.*"}))["error"] == (
        'durableJoin: "team.*" must be a concrete channel (durable membership is '
        "per-concrete-channel, not wildcard)"
    )
    assert (await ask("durableJoin", {"channel": "review"}))["error"] == (
        f"durableJoin: no read ACL on record for {BOB} (not provisioned for durable delivery)"
    )
    await set_acl(agent, space, BOB, ["general", "review", "lounge", "team.>"])
    assert (await ask("durableJoin", {"channel": "secret"}))["error"] == (
        'channel "secret" is not within your read ACL [general, review, lounge, team.>]'
    )
    assert (await ask("durableLeave", {"channel": "team.>", "generation": 1}))["error"] == (
        'durableLeave: "team.>" must be a concrete channel (durable membership is '
        "per-concrete-channel, not wildcard)"
    )
    for gen in (None, "1", True):
        assert (await ask("durableLeave", {"channel": "review", "generation": gen}))[
            "error"
        ] == "durableLeave: a finite generation is required (fail-closed stale-leave guard)"
    assert (await ask("frobnicate", {"channel": "review"})) == {
        "ok": False,
        "error": 'op "frobnicate" not supported on the delivery control service',
    }
    # sender check: the body claims another id than the subject's sender token
    nc = agent.nc
    subject = f"cotal.{space}.ctl.delivery.{BOB}"
    reply = f"{subject}.reply.x1"
    sub = await nc.subscribe(reply, max_msgs=1)
    body = {"op": "listMemberships", "args": {}, "from": {"id": ALICE, "name": "alice"}}
    await nc.publish(subject, json.dumps(body).encode(), reply=reply)
    msg = await sub.next_msg(timeout=5)
    assert json.loads(msg.data) == {"ok": False, "error": "sender mismatch — request rejected"}
    # stale leave after a rejoin: generation 1 must not close generation 2
    await ask("durableJoin", {"channel": "review"})
    await ask("durableLeave", {"channel": "review", "generation": 1})
    assert (await ask("durableJoin", {"channel": "review"}))["data"]["generation"] == 2
    stale = await ask("durableLeave", {"channel": "review", "generation": 1})
    assert stale["ok"] is False and "stale membership write" in stale["error"]
    listed = (await ask("listMemberships", {}))["data"]["memberships"]
    assert listed == [{"channel": "review", "generation": 2, "activated": True}]


async def test_reply_injection_gets_no_reply(open_space, daemon, agent):
    """A reply aimed at a peer's lane (or a muxed inbox) is dropped: nobody receives anything."""
    space = open_space.space
    await set_acl(agent, space, BOB, ["review"])
    nc = agent.nc
    peer_lane = f"cotal.{space}.ctl.delivery.{ALICE}.reply.stolen"
    peer = await nc.subscribe(f"cotal.{space}.ctl.delivery.{ALICE}.reply.>")
    body = {"op": "listMemberships", "args": {}, "from": {"id": BOB, "name": "bob"}}
    subject = f"cotal.{space}.ctl.delivery.{BOB}"
    errors_before = daemon.state.last_error
    await nc.publish(subject, json.dumps(body).encode(), reply=peer_lane)
    await nc.publish(subject, json.dumps(body).encode(), reply=nc.new_inbox())
    await nc.publish(subject, json.dumps(body).encode())
    await wait_for(
        lambda: (
            daemon.state.last_error not in (None, errors_before)
            and "not under" in (daemon.state.last_error or "")
        ),
        what="the daemon reported the dropped request",
    )
    # a proper request afterwards is answered, and the peer still got nothing
    ok = await request_delivery(agent, space, BOB, "listMemberships")
    assert ok["ok"] is True
    with pytest.raises(asyncio.TimeoutError):
        await peer.next_msg(timeout=0.5)


async def test_embeds_on_a_plain_nats_client_and_survives_a_restart(open_space, agent):
    import nats as nats_py

    async def quiet(exc: Exception) -> None:
        return None

    nc = await nats_py.connect(
        open_space.url, error_cb=quiet, max_reconnect_attempts=-1, reconnect_time_wait=0.2
    )
    d = DeliveryDaemon(nc, open_space.space, "EMBEDDED")
    await d.start()
    try:
        space = open_space.space
        await set_acl(agent, space, BOB, ["review"])
        assert (await request_delivery(agent, space, BOB, "durableJoin", {"channel": "review"}))[
            "ok"
        ]
        open_space.server.restart()
        await wait_for(lambda: nc.is_connected and agent.is_connected, what="both reconnected")
        subject, data, sent = chat_message(space, ALICE, "review", "after restart")

        async def stored() -> bool:  # JetStream needs a moment after a restart; dedup by id
            await agent.js.publish(subject, data, headers={"Nats-Msg-Id": sent}, timeout=1)
            return True

        await wait_for(stored, what="JetStream accepts the publish after the restart")
        await wait_for(lambda: _has(agent, space, BOB, sent), what="routed after the restart")
        assert d.state.status == "serving"
    finally:
        await d.stop()
        await nc.close()


CAROL = "UCAROL" + "C" * 50


async def test_backlog_copies_reach_dlv_in_chat_order_for_every_member(open_space, agent):
    """A backlog the reader takes in several batches at once (its reads and PubAcks overlap,
    issue 16) still lands in each member's DLV in CHAT order: batches gate and publish in turn."""
    space = open_space.space
    conn = await connect(open_space.url, "DAEMON1")
    first = DeliveryDaemon(conn, space, "DAEMON1")
    await first.start()
    try:
        for who in (BOB, CAROL):
            await set_acl(agent, space, who, ["review"])
            reply = await request_delivery(agent, space, who, "durableJoin", {"channel": "review"})
            assert reply["ok"] is True, reply
    finally:
        await first.stop()
    # 800 messages x 2 members: several reader batches of up to 256, under CHAT's and INBOX's
    # 1,000-per-subject caps, stored while no daemon runs
    sent = [(await publish_chat(agent, space, ALICE, "review", f"b{i}"))[0] for i in range(800)]
    second = DeliveryDaemon(conn, space, "DAEMON1")
    await second.start()
    try:
        for who in (BOB, CAROL):
            await wait_for(
                lambda who=who: _count_is(agent, space, who, len(sent)),
                what=f"all 800 copies in {who[:6]}'s DLV",
                timeout=60.0,
            )
            assert await dlv_ids(agent, space, who) == sent
    finally:
        await second.stop()
        await conn.close()


async def _count_is(conn, space, owner, n):
    return len(await dlv_ids(conn, space, owner)) >= n


@contextlib.asynccontextmanager
async def _daemon_with_bob_joined(open_space, agent) -> AsyncIterator[DeliveryDaemon]:
    """A daemon serving the space, bob allowed on #review and durably joined to it."""
    space = open_space.space
    conn = await connect(open_space.url, "DAEMON1")
    d = DeliveryDaemon(conn, space, "DAEMON1")
    await d.start()
    try:
        await set_acl(agent, space, BOB, ["review"])
        reply = await request_delivery(agent, space, BOB, "durableJoin", {"channel": "review"})
        assert reply["ok"] is True, reply
        yield d
    finally:
        await d.stop()
        await conn.close()


async def test_a_restarted_pipeline_never_waits_on_a_completion_that_never_ran(open_space, agent):
    """Both loops chain their batch completions (acks, gating in order). A completion cancelled
    before its first step, or never handed to the pipeline because the loop was cancelled while
    it waited for a slot, never sets its event; this is the state such a stop leaves. The loops
    started again (the lease lost and won back) must deliver, not wait on it forever."""
    space = open_space.space
    async with _daemon_with_bob_joined(open_space, agent) as d:
        d.fanout._acked_before = asyncio.Event()  # a completion that never ran: never set
        d.reader._gated_before = asyncio.Event()
        await asyncio.gather(d.fanout.stop(), d.reader.stop())
        await d.fanout.start()
        await d.reader.start()
        # one batch each, more batches than the pipelines have slots: a stuck chain shows once
        # the slots are full (each waiting completion holds one)
        for i in range(max(d.fanout.pipeline.depth, d.reader.pipeline.depth) + 2):
            sent, _ = await publish_chat(agent, space, ALICE, "review", f"after the restart {i}")
            await wait_for(
                lambda sent=sent: _has(agent, space, BOB, sent),
                what=f"copy {i} through the restarted fan-out and reader into bob's DLV",
                timeout=30.0,
            )


async def test_wait_accounting_when_asked_adds_up_each_loops_phases(
    open_space, agent, tmp_path, monkeypatch
):
    """COTAL_DELIVERY_WAIT_STATS (a measuring aid, bench/wait_stats.py): with it on, a delivered
    copy leaves each loop's phases and the completions' PubAck waits in the file, and delivery
    is the same."""
    import json

    from cotal_tui.delivery import wait_stats

    out = tmp_path / "wait.jsonl"
    monkeypatch.setattr(wait_stats, "STATS", wait_stats.WaitStats(out))
    space = open_space.space
    async with _daemon_with_bob_joined(open_space, agent):
        sent, _ = await publish_chat(agent, space, ALICE, "review", "measured")
        await wait_for(lambda: _has(agent, space, BOB, sent), what="the copy in bob's DLV")

        def last() -> dict:
            lines = out.read_text().splitlines() if out.exists() else []
            return json.loads(lines[-1]) if lines else {"n": {}, "s": {}}

        wanted = ("fanout.msgs", "reader.msgs", "fanout.pubacks", "reader.pubacks")
        await wait_for(
            lambda: all(last()["n"].get(k, 0) >= 1 for k in wanted),
            what=f"{', '.join(wanted)} counted in the wait-stats file",
        )
        seconds = last()["s"]
        for tag in ("fanout", "reader"):
            assert {f"{tag}.take", f"{tag}.dispatch", f"{tag}.before_take"} <= seconds.keys()
            assert all(seconds[k] >= 0 for k in seconds)
        task = wait_stats.STATS._task  # the dumper runs until the process ends; not here
        if task is not None:
            task.cancel()
