"""`Plane3Agent.retry_now` against a real server and daemon: it wakes a pending boot join or leave
retry out of a long backoff sleep, and names what is not pending."""

from __future__ import annotations

import pytest
from plane3_support import connect

from cotal_tui.delivery.daemon import DeliveryDaemon
from cotal_tui.mesh.endpoint import Endpoint
from cotal_tui.mesh.plane3_agent import NothingPending, Plane3Agent, probe_delivery_responder
from waiting import wait_for

pytestmark = pytest.mark.timeout(120)
FAST = {"ttl_ms": 1500, "heartbeat_ms": 300, "sweep_ms": 300, "watch_heartbeat_ms": 300}
CHANS = ["review", "general"]
LONG_BACKOFF_S = 120.0
"""Far beyond every wait below: only a wake can make the retry land in time."""
PROMPT_S = 15.0


async def test_retry_now_wakes_a_long_backoff_join_and_leave(auth_space):
    bob_c = await auth_space.mint("bob", subscribe=CHANS, allow_publish=CHANS)
    cred = await auth_space.mint("delivery", "delivery")
    dconn = await connect(auth_space.url, cred.public_key, str(cred.path))
    daemon = DeliveryDaemon(dconn, auth_space.space, cred.public_key)
    bob = Endpoint(
        auth_space.url,
        auth_space.space,
        name="bob",
        creds=str(bob_c.path),
        channels=["review"],
        durable=lambda ep: Plane3Agent(
            ep, backoff_base_s=LONG_BACKOFF_S, backoff_max_s=LONG_BACKOFF_S
        ),
        **FAST,  # type: ignore[arg-type]
    )
    await bob.start()
    agent: Plane3Agent = bob.durable  # type: ignore[assignment]
    try:
        # no daemon: the boot join waits out a long backoff
        await wait_for(
            lambda: [p for p in agent.pending_boot_joins() if p.next_retry_at is not None],
            what="a pending boot join of #review sleeping its backoff",
        )
        with pytest.raises(NothingPending, match="no pending boot join for #general"):
            agent.retry_now("general", "join")
        with pytest.raises(NothingPending, match="no pending leave retry for #review"):
            agent.retry_now("review", "leave")
        with pytest.raises(NothingPending, match="'join' or 'leave'"):
            agent.retry_now("review", "durableJoin")  # type: ignore[arg-type]

        await daemon.start()
        await wait_for(
            lambda: _answered(bob), what="the daemon answering ctl.delivery", timeout=PROMPT_S
        )
        assert not bob.has_durable_membership("review"), "landed without a wake"
        agent.retry_now("review", "join")
        await wait_for(
            lambda: bob.has_durable_membership("review") and not agent.pending_boot_joins(),
            what="the woken boot join to land well inside its backoff",
            timeout=PROMPT_S,
        )
        with pytest.raises(NothingPending, match="no pending boot join for #review"):
            agent.retry_now("review", "join")

        # a late refusal with no responder: the leave retry waits out a long backoff
        await daemon.service.stop()
        agent.on_refused("review")
        await wait_for(
            lambda: [p for p in agent.pending_leaves() if p.next_retry_at is not None],
            what="a pending leave retry sleeping its backoff",
        )
        await daemon.service.start()
        await wait_for(
            lambda: _answered(bob), what="the responder back on ctl.delivery", timeout=PROMPT_S
        )
        assert bob.has_durable_membership("review"), "the tombstone landed without a wake"
        agent.retry_now("review", "leave")
        await wait_for(
            lambda: not agent.pending_leaves() and not bob.has_durable_membership("review"),
            what="the woken leave retry to land its tombstone well inside its backoff",
            timeout=PROMPT_S,
        )
    finally:
        await bob.stop()
        await daemon.stop()
        await dconn.close()


async def _answered(ep: Endpoint) -> bool:
    outcome, _ = await probe_delivery_responder(ep)
    return outcome == "answered"
