"""A KV cache fed by a watch, with a freshness barrier: as fresh as a direct read, far cheaper.

``await cache.barrier()`` reads the bucket stream's ``last_seq`` (one STREAM.INFO request) and
waits until the watch has applied every message up to it. Any write that was stored before the
barrier was called is therefore visible afterwards — the same guarantee a direct per-key read
made at that moment gives — but one request covers a whole batch of keys. If the watch does not
catch up in time, or its watch is gone (a failed rebind), the barrier returns False and the
caller reads directly.

The ``last_seq`` request is shared: callers that came while it was not sent yet all wait on the
same one (each called before it went out, so each gets the guarantee), and its answer is read
as JSON, not built into nats-py's ``StreamInfo`` (the reader asks for two per batch).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Generic, TypeVar

from cotal_tui.mesh.jsapi import API, api_request
from cotal_tui.mesh.kv import KvBucket, KvEntry, KvWatch

T = TypeVar("T")


class FreshKvCache(Generic[T]):
    def __init__(
        self,
        bucket: KvBucket,
        decode: Callable[[KvEntry], T | None],
        listener: Callable[[KvEntry], None] | None = None,
    ) -> None:
        self.bucket = bucket
        self.decode = decode
        self.listener = listener
        self.values: dict[str, tuple[T, int]] = {}
        self.seen_seq = 0
        self._advanced = asyncio.Event()
        self._initial = asyncio.Event()
        self._watch: KvWatch | None = None
        self._unsent: asyncio.Task[int] | None = None  # a last_seq request not sent yet

    async def start(self, timeout: float = 10.0) -> None:
        self._initial.clear()
        self._watch = KvWatch(self.bucket, self._on_entry, on_initial=self._initial.set)
        await self._watch.start()
        await asyncio.wait_for(self._initial.wait(), timeout)

    async def rebind(self) -> None:
        if self._watch is not None:
            await self._watch.rebind()

    async def stop(self) -> None:
        watch, self._watch = self._watch, None
        if watch is not None:
            with contextlib.suppress(Exception):
                await watch.stop()

    def _on_entry(self, entry: KvEntry) -> None:
        if entry.revision > self.seen_seq:
            self.seen_seq = entry.revision
        current = self.values.get(entry.key)
        if current is None or current[1] <= entry.revision:
            value = None if entry.deleted else self.decode(entry)
            if value is None:
                self.values.pop(entry.key, None)
            else:
                self.values[entry.key] = (value, entry.revision)
        if self.listener is not None:
            self.listener(entry)
        self._advanced.set()

    def get(self, key: str) -> T | None:
        found = self.values.get(key)
        return found[0] if found else None

    def _last_seq_asked_now(self) -> asyncio.Task[int]:
        """The bucket stream's ``last_seq`` from a request sent after this call: the one not
        sent yet if there is one (it goes out at its task's first step), else a new one."""
        task = self._unsent
        if task is None:
            task = self._unsent = asyncio.get_running_loop().create_task(self._ask_last_seq())
            task.add_done_callback(_retrieve)  # every caller may have been cancelled
        return task

    async def _ask_last_seq(self) -> int:
        self._unsent = None  # sent from here on: a later caller needs a request of its own
        conn, stream = self.bucket.conn, self.bucket.stream
        info = await api_request(
            conn,
            f"{API}.STREAM.INFO.{stream}",
            None,
            what=f"reading {stream}'s last sequence",
            timeout=conn.js_timeout,
        )
        return int(info["state"]["last_seq"])

    async def barrier(self, timeout: float = 2.0) -> bool:
        """True once every write stored before this call has been applied to the cache."""
        if self._watch is None or not self._watch.alive or not self._initial.is_set():
            return False  # no watch (stopped, or a failed rebind): the caller reads directly
        target = await asyncio.shield(self._last_seq_asked_now())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.seen_seq < target:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            self._advanced.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):  # not wait_for: tasks.py
                    await self._advanced.wait()
        return True


def _retrieve(task: asyncio.Task[int]) -> None:
    if not task.cancelled():
        task.exception()
