"""A clean handover under traffic: every message reaches the member exactly once, promptly."""

from __future__ import annotations

import asyncio
import time

import pytest
from plane3_support import chat_message, connect, dlv_ids, request_delivery, set_acl

from cotal_tui.delivery.daemon import DeliveryDaemon
from waiting import wait_for

pytestmark = pytest.mark.timeout(120)
BOB = "UBOB" + "B" * 52
ALICE = "UALICE" + "A" * 50


async def test_clean_handover_mid_stream_loses_nothing(open_space):
    s = open_space.space
    tools = await connect(open_space.url, "tools")
    first_conn = await connect(open_space.url, "D-FIRST")
    second_conn = await connect(open_space.url, "D-SECOND")
    first = DeliveryDaemon(first_conn, s, "D-FIRST")
    second = DeliveryDaemon(second_conn, s, "D-SECOND")
    await first.start()
    try:
        await set_acl(tools, s, BOB, ["review"])
        assert (await request_delivery(tools, s, BOB, "durableJoin", {"channel": "review"}))["ok"]
        sent: list[str] = []

        async def publish(n: int, rate: float) -> None:
            js = tools.js
            for _ in range(n):
                subject, data, mid = chat_message(s, ALICE, "review", "x")
                await js.publish(subject, data, headers={"Nats-Msg-Id": mid})
                sent.append(mid)
                await asyncio.sleep(1 / rate)

        publisher = asyncio.ensure_future(publish(300, 300))
        await wait_for(lambda: len(sent) >= 100, what="100 messages published")
        await first.stop()
        await second.start()  # binds at once: the lease was released
        await publisher
        t_done = time.monotonic()
        await wait_for(
            lambda: _same(dlv_ids(tools, s, BOB), sent),
            what="all 300 in bob's DLV, once each",
            timeout=30,
        )
        assert time.monotonic() - t_done < 10  # no ack_wait (60 s) stall across the handover
    finally:
        await first.stop()
        await second.stop()
        for c in (tools, first_conn, second_conn):
            await c.close()


async def _same(coro, want) -> bool:
    got = await coro
    return sorted(got) == sorted(want) and len(got) == len(want)
