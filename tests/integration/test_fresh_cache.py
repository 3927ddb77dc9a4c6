"""The delivery daemon's watched KV cache (delivery/fresh_cache.py): its freshness barrier."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from cotal_tui.delivery.fresh_cache import FreshKvCache
from cotal_tui.mesh.connection import Connection
from cotal_tui.mesh.kv import BucketNotFound, KvBucket, KvEntry

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
async def conn(open_space) -> AsyncIterator[Connection]:
    c = Connection(open_space.url, "fresh-cache-test", "fresh-cache-test")
    await c.connect()
    try:
        yield c
    finally:
        await c.close()


def _text(entry: KvEntry) -> str:
    return entry.value.decode()


async def test_barrier_gives_up_at_once_when_the_watch_died(conn):
    """After a failed rebind the cache's watch is gone: the barrier must answer False (the
    caller reads directly) at once, not wait out its timeout on a watch that cannot advance —
    the daemon calls it once per batch."""
    await conn.js.create_key_value(bucket="freshtest", history=1)
    bucket = KvBucket(conn, "freshtest")
    cache: FreshKvCache[str] = FreshKvCache(bucket, _text)
    await cache.start()
    try:
        await bucket.put("a", b"1")
        assert await asyncio.wait_for(cache.barrier(timeout=30), 40) is True
        assert cache.get("a") == "1"

        await conn.js.delete_key_value("freshtest")
        with pytest.raises(BucketNotFound):
            await cache.rebind()
        await conn.js.create_key_value(bucket="freshtest", history=1)
        for key in ("b", "c", "d"):  # the new stream's last_seq is past what the cache saw
            await bucket.put(key, b"2")

        # A watch that is not alive never catches up: a barrier that waited for it would hang
        # for its whole (here: hour-long) timeout.
        fresh = await asyncio.wait_for(cache.barrier(timeout=3600), 30)
        assert fresh is False, "a dead watch's cache claimed to be fresh"
    finally:
        await cache.stop()


async def test_barriers_waiting_together_share_one_request_and_stay_fresh(conn):
    """Barriers called while a last_seq request is not sent yet share it (each called before
    it went out); one called after it went out asks again. Each still sees every write stored
    before it was called, and a cancelled caller does not take the answer from the others."""
    await conn.js.create_key_value(bucket="freshshare", history=1)
    bucket = KvBucket(conn, "freshshare")
    cache: FreshKvCache[str] = FreshKvCache(bucket, _text)
    await cache.start()
    try:
        await bucket.put("a", b"1")
        first, second = cache._last_seq_asked_now(), cache._last_seq_asked_now()
        assert first is second, "two callers in one turn sent two requests"
        assert await first >= 1
        third = cache._last_seq_asked_now()
        assert third is not first, "a caller after the request went out shared it"
        await third

        await bucket.put("a", b"2")
        fresh = await asyncio.wait_for(
            asyncio.gather(*(cache.barrier(timeout=30) for _ in range(5))), 40
        )
        assert fresh == [True] * 5 and cache.get("a") == "2"

        await bucket.put("a", b"3")
        gone = asyncio.ensure_future(cache.barrier(timeout=30))
        kept = asyncio.ensure_future(cache.barrier(timeout=30))
        await asyncio.sleep(0)  # both are waiting on the same request now
        gone.cancel()
        assert await asyncio.wait_for(kept, 40) is True
        assert cache.get("a") == "3"
    finally:
        await cache.stop()
