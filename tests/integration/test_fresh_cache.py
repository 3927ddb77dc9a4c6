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
