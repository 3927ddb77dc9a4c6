"""PullPump (mesh/pull.py) against a real server: an ended pull request is replaced at once.

Before, a request that expired left nothing outstanding until the owner's next ``take()``; a
message stored in that gap waited up to ``take()``'s timeout (the daemon's ~1 s p99, issue 11
cause 5). These tests hold ``take()`` back on purpose and show the message still arrives.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import nats
import pytest
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig

from cotal_tui.mesh.connection import Connection
from cotal_tui.mesh.pull import PullPump
from waiting import wait_for


@pytest.fixture
async def conn(nats_server) -> AsyncIterator[Connection]:
    c = Connection(nats_server.url, "pump-test", "pump-test")
    await c.connect()
    try:
        yield c
    finally:
        await c.close()


async def _stream(url: str) -> None:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        await js.add_stream(StreamConfig(name="PT", subjects=["pt.>"]))
        await js.add_consumer("PT", ConsumerConfig(durable_name="c", ack_policy=AckPolicy.EXPLICIT))
    finally:
        await nc.close()


async def test_expired_request_is_replaced_without_a_take(nats_server, conn) -> None:
    await _stream(nats_server.url)
    pump = PullPump(conn, "PT", "c", batch=8, expires_s=0.3, heartbeat_s=0.1)
    await pump.start()
    try:
        assert await pump.take(8, 0.05) == []  # first request out; it expires unread
        first = pump.requests
        await wait_for(lambda: pump.requests >= first + 3, what="expired requests replaced")
        js = conn.nc.jetstream()
        sent = time.monotonic()
        await js.publish("pt.x", b"hello")
        await wait_for(lambda: pump.queued == 1, what="the message queued while no take() ran")
        assert time.monotonic() - sent < 0.25, "waited for a request instead of streaming in"
        got = await pump.take(8, 1.0)
        assert [m.data for m in got] == [b"hello"]
        await got[0].ack()
    finally:
        await pump.stop()


async def test_replacing_requests_never_reads_ahead_of_batch(nats_server, conn) -> None:
    await _stream(nats_server.url)
    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream()
        for i in range(50):
            await js.publish("pt.x", str(i).encode())
    finally:
        await nc.close()
    pump = PullPump(conn, "PT", "c", batch=8, expires_s=0.3, heartbeat_s=0.1)
    await pump.start()
    try:
        assert len(await pump.take(1, 5.0)) == 1
        await wait_for(lambda: pump.queued == 7, what="the rest of the first request queued")
        assert pump.requests == 1, "asked for more while 7 of 8 were still untaken"
        assert len(await pump.take(4, 1.0)) == 4  # 3 left: take() asks for 5 more
        await wait_for(lambda: pump.queued == 8, what="the refill of 5 queued")
        assert pump.requests == 2
    finally:
        await pump.stop()
