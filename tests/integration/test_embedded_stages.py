"""The embeddable daemon with its stages in processes (``stages="processes"``, issue 16): join →
route → transfer → leave as inline, its figures summed from the stages, and a stage's death is
the daemon's (status ``failed``, the other stage gone, the lease released)."""

from __future__ import annotations

import os
import signal

from cli_process import pid_alive
from plane3_support import connect, dlv_ids, publish_chat, request_delivery, set_acl

from cotal_tui.delivery.daemon import DeliveryDaemon
from cotal_tui.mesh.lease import read_lease
from waiting import wait_for

BOB = "UBOB" + "B" * 52
ALICE = "UALICE" + "A" * 50


async def _started(open_space, name: str) -> tuple[DeliveryDaemon, object]:
    conn = await connect(open_space.url, name)
    d = DeliveryDaemon(conn, open_space.space, name, stages="processes")
    await d.start()
    return d, conn


async def test_join_route_transfer_leave_with_stage_processes(open_space) -> None:
    d, conn = await _started(open_space, "DSTAGES")
    agent = await connect(open_space.url, "agent-tools")
    space = open_space.space
    try:
        pids = d.stage_pids
        assert set(pids) == {"fanout", "reader"} and all(pid_alive(p) for p in pids.values())
        await set_acl(agent, space, BOB, ["review"])
        before, _ = await publish_chat(agent, space, ALICE, "review", "before join")
        reply = await request_delivery(agent, space, BOB, "durableJoin", {"channel": "review"})
        assert reply == {"ok": True, "data": {"durable": True, "generation": 1}}
        # the join's record reached the fan-out stage before the reply: the very next message
        # is routed to bob
        sent = [(await publish_chat(agent, space, ALICE, "review", f"m{i}"))[0] for i in range(5)]
        await wait_for(
            lambda: _dlv_is(agent, space, BOB, sent), what="bob's DLV holds the 5 messages"
        )
        assert before not in await dlv_ids(agent, space, BOB)
        listed = await request_delivery(agent, space, BOB, "listMemberships")
        assert listed["data"]["memberships"] == [
            {"channel": "review", "generation": 1, "activated": True}
        ]
        left = await request_delivery(
            agent, space, BOB, "durableLeave", {"channel": "review", "generation": 1}
        )
        assert left == {"ok": True, "data": {"channel": "review"}}
        # the stages' counts reach the parent's state within a moment of happening
        await wait_for(
            lambda: d.counters.transferred == 5 and d.counters.fanned_out == 5,
            what=f"the stages' counts summed in the parent (now {d.counters})",
        )
        st = d.state
        assert st.status == "serving" and st.lease.holder == "DSTAGES" and st.lease.ready
        assert st.counters.joins == 1 and st.counters.leaves == 1  # the parent's own counts
        stats = await request_delivery(agent, space, BOB, "deliveryStats")
        assert stats["ok"] and stats["data"]["evictedBeforeRouting"] == {}, stats
    finally:
        await d.stop()
        await agent.close()
        await conn.close()  # type: ignore[attr-defined]
    assert not any(pid_alive(p) for p in pids.values() if p), pids


async def _dlv_is(conn, space, owner, want) -> bool:
    return await dlv_ids(conn, space, owner) == want


async def test_a_stage_killed_fails_the_embedded_daemon_whole(open_space) -> None:
    d, conn = await _started(open_space, "DSTAGES2")
    agent = await connect(open_space.url, "agent-tools")
    try:
        await set_acl(agent, open_space.space, BOB, ["review"])
        reply = await request_delivery(
            agent, open_space.space, BOB, "durableJoin", {"channel": "review"}
        )
        assert reply["ok"], reply
        await publish_chat(agent, open_space.space, ALICE, "review", "one")
        await wait_for(lambda: d.counters.transferred >= 1, what="the reader stage's count")
        pids = d.stage_pids
        os.kill(pids["reader"], signal.SIGKILL)
        reason = await d.wait_done()
        assert d.state.status == "failed" and "the reader stage" in reason, reason
        await wait_for(
            lambda: not any(pid_alive(p) for p in pids.values() if p),
            what="both stage processes gone",
        )
        assert await read_lease(d.ctx.lease) is None
    finally:
        await d.stop()
        await agent.close()
        await conn.close()  # type: ignore[attr-defined]
