"""The eviction count in the fan-out's hands (issue 11): what a broker restart or a second
delivery of one sequence must not make silent, or over-count. Real nats-server, the real CHAT
stream (1,000 kept per sender-channel subject) and a real ``fanout`` consumer."""

from __future__ import annotations

import pytest
from plane3_support import chat_message, connect

from cotal_tui.delivery.chat_gaps import EvictionTracker
from cotal_tui.mesh.jsapi import API, api_request
from cotal_tui.mesh.pull import fetch_no_wait
from cotal_tui.protocol.consumers import fanout_durable_config
from cotal_tui.protocol.names import chat_stream, inbox_stream
from waiting import wait_for

pytestmark = pytest.mark.timeout(60)
SENDER = "UGAPSENDER" + "S" * 46


async def _setup(open_space):
    conn = await connect(open_space.url, "gaps-tools")
    space = open_space.space
    stream, cfg = chat_stream(space), fanout_durable_config(space)
    durable = cfg["durable_name"]
    await api_request(
        conn,
        f"{API}.CONSUMER.DURABLE.CREATE.{stream}.{durable}",
        {"stream_name": stream, "config": cfg},
        what="create fanout",
    )
    events: list[Exception] = []
    tracker = EvictionTracker(
        conn, stream, durable, f"cotal.{space}.chat.", events.append,
        inbox_stream=inbox_stream(space),
    )  # fmt: skip
    await tracker.start()
    return conn, space, stream, durable, tracker, events


async def _publish(conn, space: str, n: int) -> None:
    for i in range(n):
        subject, data, mid = chat_message(space, SENDER, "hot", f"m{i}")
        await conn.js.publish(subject, data, headers={"Nats-Msg-Id": mid})


async def _floor(conn, stream: str, durable: str) -> int:
    info = await conn.js.consumer_info(stream, durable)
    return int(info.ack_floor.stream_seq)


async def test_a_message_released_after_the_floor_passed_it_is_counted(open_space) -> None:
    """Taken, then evicted by CHAT while its routing still waited (the floor moves over it), then
    nak'd: it can never come back, so it is counted — not lost silently."""
    conn, space, stream, durable, tracker, events = await _setup(open_space)
    try:
        await _publish(conn, space, 5)
        msgs = await fetch_no_wait(conn, stream, durable, 5)
        seqs = [int(m.metadata.sequence.stream) for m in msgs]
        assert len(seqs) == 5
        for s in seqs:
            tracker.taken(s)
        await _publish(conn, space, 1_000)  # CHAT keeps the newest 1,000: the 5 are evicted
        floor = 0

        async def passed() -> bool:
            nonlocal floor
            floor = await _floor(conn, stream, durable)
            return floor >= seqs[-1]

        await wait_for(passed, what="the fanout floor to move over the evicted 5", timeout=20)
        await tracker.check()
        assert tracker.total == 0  # still in our hands: routed from memory, or released
        for m in msgs:
            tracker.released(int(m.metadata.sequence.stream))
        await tracker.check()
        assert tracker.by_channel == {"hot": 5}, (tracker.by_channel, events)
    finally:
        await tracker.stop()
        await conn.close()


async def test_a_sequence_delivered_twice_and_routed_once_is_not_counted(open_space) -> None:
    """A restored consumer hands one sequence to us twice; one delivery is routed, the other
    (stuck on a dead connection's PubAcks) is released later: routed, so never counted."""
    conn, space, stream, durable, tracker, events = await _setup(open_space)
    try:
        await _publish(conn, space, 3)
        msgs = await fetch_no_wait(conn, stream, durable, 3)
        seqs = [int(m.metadata.sequence.stream) for m in msgs]
        for s in seqs:
            tracker.taken(s)
            tracker.taken(s)  # the second delivery
        for s in seqs:
            tracker.released(s)  # one delivery given back while the other routes from memory
        await _publish(conn, space, 1_000)

        async def passed() -> bool:
            return await _floor(conn, stream, durable) >= seqs[-1]

        await wait_for(passed, what="the fanout floor to move over the evicted 3", timeout=20)
        for s in seqs:
            tracker.routed_ok(s)
        await tracker.check()
        assert tracker.total == 0, (tracker.by_channel, events)
        for s in seqs:
            tracker.released(s)  # a late release of an already routed sequence changes nothing
        await tracker.check()
        assert tracker.total == 0, (tracker.by_channel, events)
    finally:
        await tracker.stop()
        await conn.close()
