"""The fan-out's delivery classes from the watched channel registry (delivery/daemon_context.py):
the same answer as one direct read per channel, as fresh (a write just before the call is seen),
and direct reads again when the watch is gone."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from cotal_tui.delivery.daemon_context import (
    DaemonContext,
    InvalidRegistryValue,
    start_channels_cache,
    stop_channels_cache,
)
from cotal_tui.mesh.connection import Connection
from cotal_tui.protocol.names import CHANNEL_DEFAULTS_KEY

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def ctx(open_space) -> AsyncIterator[DaemonContext]:
    conn = Connection(open_space.url, "class-cache-test", "class-cache-test")
    await conn.connect()
    errors: list[Exception] = []
    context = DaemonContext(conn, open_space.space, "D" * 56, on_error=errors.append)
    context.errors = errors  # type: ignore[attr-defined]
    try:
        yield context
    finally:
        await stop_channels_cache(context)
        await conn.close()


async def _put(ctx: DaemonContext, key: str, value: Any) -> None:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    await ctx.channels.put(key, raw)


async def _both(ctx: DaemonContext, chans: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(from the cache, from direct reads), the same channels at the same moment."""
    cached = await ctx.delivery_classes(chans)
    cache, ctx.channels_cache = ctx.channels_cache, None
    try:
        direct = await ctx.delivery_classes(chans)
    finally:
        ctx.channels_cache = cache
    return cached, direct


async def test_cached_classes_are_the_direct_reads_and_as_fresh(ctx):
    await _put(ctx, "a", {"deliveryClass": "live"})
    await _put(ctx, "b", {"deliveryClass": "durable"})
    await _put(ctx, "c", {"deliveryClass": 5})  # read as the reference does: live, reported
    await _put(ctx, "d", b"{not json")  # unreadable: as missing
    await _put(ctx, "e", {"replay": False})  # no class: the default
    await start_channels_cache(ctx, 10)
    assert ctx.channels_cache is not None, ctx.errors
    chans = ["a", "b", "c", "d", "e", "missing", "x.y"]
    cached, direct = await _both(ctx, chans)
    assert cached == direct
    assert cached == {
        "a": "live",
        "b": "durable",
        "c": "live",
        "d": "durable",
        "e": "durable",
        "missing": "durable",
        "x.y": "durable",
    }
    assert [type(e) for e in ctx.errors] == [InvalidRegistryValue]  # said once, not twice

    # writes just before the call are seen (the barrier), defaults included
    await _put(ctx, CHANNEL_DEFAULTS_KEY, {"deliveryClass": "live"})
    await _put(ctx, "a", {"deliveryClass": "durable"})
    await ctx.channels.delete("b")
    cached, direct = await _both(ctx, chans)
    assert cached == direct
    assert (cached["a"], cached["b"], cached["e"], cached["missing"]) == (
        "durable",
        "live",
        "live",
        "live",
    )


async def test_a_dead_watch_means_direct_reads(ctx):
    await start_channels_cache(ctx, 10)
    cache = ctx.channels_cache
    assert cache is not None
    await _put(ctx, "a", {"deliveryClass": "live"})
    assert await ctx.delivery_classes(["a"]) == {"a": "live"}
    await cache.stop()  # the watch is gone: its barrier says so, and the reads go direct
    assert await cache.barrier() is False
    await _put(ctx, "a", {"deliveryClass": "durable"})
    assert await asyncio.wait_for(ctx.delivery_classes(["a"]), 30) == {"a": "durable"}
