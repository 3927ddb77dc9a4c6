"""Pull consumers driven by hand: a streaming pump with credits, and a one-shot no-wait fetch.

nats-py's ``fetch(batch>1)`` holds a long poll open until the whole batch or the deadline
arrives, which adds its timeout to the latency of a quiet stream. :class:`PullPump` keeps pull
requests outstanding instead (like nats.js ``consume()``): messages stream in as soon as they
are stored, and new credit is requested when half of it is used. Idle heartbeats on every
request prove the requests alive; after a reconnect (the broker forgets pull requests) or a
silent spell, the credit is reset and requested again.

A pull request that ends (expired 408, or 409) is replaced as soon as its end arrives, not at
the owner's next :meth:`PullPump.take`: otherwise a quiet stream has nothing outstanding from
the expiry until ``take()`` times out, and a message stored in that gap waits up to that
timeout (this was the daemon's ~1 s p99). Credit counts what is queued and not yet taken, so
asking early never reads further ahead than ``batch``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from cotal_tui.mesh.connection import Connection
from cotal_tui.mesh.direct_sub import subscribe_direct
from cotal_tui.mesh.fast_parser import header_status

_NS = 1_000_000_000


def status_of(msg: Msg) -> str | None:
    """The ``Status`` header (None without one); for a message from the fast parser, without
    building its headers dict unless the block can hold a status."""
    return header_status(msg)


class _Arrivals:
    """What ``asyncio.Queue`` did here, for one taker, at a deque's cost: the pump queues every
    message the daemon handles, and the Queue's bookkeeping was a visible share of a copy."""

    def __init__(self) -> None:
        self._items: deque[Msg] = deque()
        self._waiter: asyncio.Future[None] | None = None

    def qsize(self) -> int:
        return len(self._items)

    def empty(self) -> bool:
        return not self._items

    def put_nowait(self, msg: Msg) -> None:
        self._items.append(msg)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def get_nowait(self) -> Msg:
        return self._items.popleft()

    async def get(self) -> Msg:
        while not self._items:
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        return self._items.popleft()


class ConsumerGone(RuntimeError):
    """The server says the consumer was deleted; the owner must re-create it."""


class PullPump:
    """Keeps up to ``batch`` messages requested from ``stream``/``consumer`` at all times."""

    def __init__(
        self,
        conn: Connection,
        stream: str,
        consumer: str,
        *,
        batch: int = 256,
        expires_s: float = 2.0,
        heartbeat_s: float = 0.5,
    ) -> None:
        self.conn = conn
        self.stream = stream
        self.consumer = consumer
        self.batch = batch
        self.expires_s = expires_s
        self.heartbeat_s = heartbeat_s
        self._queue = _Arrivals()
        self._sub: Subscription | None = None
        self._inbox = ""
        self._credits = 0
        self._last_activity = 0.0
        self._gone: str | None = None
        self._stopping = False
        self._refilling: asyncio.Task[None] | None = None
        self._side_tasks: set[asyncio.Task[None]] = set()
        self.requests = 0
        self.on_message: Callable[[Msg], None] | None = None
        """Told of every message as it arrives, before it waits in the queue for take()."""

    @property
    def queued(self) -> int:
        """Messages delivered to us and not yet taken."""
        return self._queue.qsize()

    @property
    def next_subject(self) -> str:
        return f"$JS.API.CONSUMER.MSG.NEXT.{self.stream}.{self.consumer}"

    async def start(self) -> None:
        if self._sub is not None:
            await self.stop()
        nc = self.conn.nc
        self._inbox = nc.new_inbox()
        self._sub = await subscribe_direct(nc, self._inbox, self._on_msg)
        self.reset()

    async def stop(self) -> None:
        """Let outstanding pull requests run out, then unsubscribe and nak what was never
        processed, so the next holder of the consumer gets it at once (not after ack_wait).

        Naking earlier would only hand the message back to one of our own pending requests,
        and unsubscribing earlier would drop whatever is already on the wire to us.
        """
        self._stopping = True
        refilling, self._refilling = self._refilling, None
        if refilling is not None:
            refilling.cancel()
            with contextlib.suppress(BaseException):
                await refilling
        if self._sub is not None and self.conn.is_connected:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.expires_s + 0.5
            while self._credits > 0 and loop.time() < deadline:
                await asyncio.sleep(0.05)
        sub, self._sub = self._sub, None
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        self._credits = 0
        while not self._queue.empty():
            msg = self._queue.get_nowait()
            with contextlib.suppress(Exception):
                await msg.nak()

    def give_back(self, msgs: list[Msg]) -> None:
        """Messages taken but not settled: nak'd when the pump stops (see :meth:`stop`)."""
        for m in msgs:
            if not m.is_acked:
                self._queue.put_nowait(m)

    def reset(self) -> None:
        """Forget outstanding credit (after a reconnect the broker no longer holds it)."""
        self._stopping = False
        self._credits = 0
        self._gone = None
        self._last_activity = time.monotonic()

    def _on_msg(self, msg: Msg) -> None:
        """Handled as parsed (mesh/direct_sub.py); never waits."""
        self._last_activity = time.monotonic()
        status = status_of(msg)
        if status is None:
            self._credits = max(0, self._credits - 1)
            if self.on_message is not None:
                with contextlib.suppress(Exception):
                    self.on_message(msg)
            self._queue.put_nowait(msg)
            return
        headers = msg.headers or {}
        if status == "100":
            if msg.reply:  # flow control
                self._spawn(self._answer_flow_control(msg.reply))
            return
        pending = headers.get("Nats-Pending-Messages")
        if status in ("408", "409") and pending is not None:
            with contextlib.suppress(ValueError):
                self._credits = max(0, self._credits - int(pending))
            desc = headers.get("Description", "")
            if status == "409" and "deleted" in desc.lower():
                self._gone = desc
            self._ask_again()
            return
        if status == "409":
            desc = headers.get("Description", "")
            if "deleted" in desc.lower():
                self._gone = desc
            self._credits = 0  # leadership change, exceeded limits...: ask again
            self._ask_again()
            return
        if status in ("404", "408"):
            self._credits = 0
            self._ask_again()

    async def _answer_flow_control(self, reply: str) -> None:
        with contextlib.suppress(Exception):
            await self.conn.nc.publish(reply, b"")

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    def _ask_again(self) -> None:
        """A pull request ended: replace it now, without waiting for the next take()."""
        if self._gone is not None or self._stopping or self._sub is None:
            return
        if self._refilling is not None and not self._refilling.done():
            return
        self._refilling = asyncio.get_running_loop().create_task(self._refill_quietly())

    async def _refill_quietly(self) -> None:
        with contextlib.suppress(Exception):  # disconnected: take() or the re-arm asks again
            if self.conn.is_connected:
                await self._refill()

    async def _refill(self) -> None:
        silent = time.monotonic() - self._last_activity
        if self._credits > 0 and silent > 3 * self.heartbeat_s:
            self._credits = 0  # requests lost (reconnect, server restart): ask again
        outstanding = self._credits + self._queue.qsize()
        if outstanding > self.batch // 2 or self._sub is None or self._stopping:
            return
        want = self.batch - outstanding
        req: dict[str, Any] = {
            "batch": want,
            "expires": int(self.expires_s * _NS),
            "idle_heartbeat": int(self.heartbeat_s * _NS),
        }
        self._credits += want  # before the await: a concurrent refill must see it
        try:
            await self.conn.nc.publish(
                self.next_subject, json.dumps(req).encode(), reply=self._inbox
            )
        except BaseException:
            self._credits = max(0, self._credits - want)
            raise
        self.requests += 1
        self._last_activity = time.monotonic()

    async def take(self, max_n: int, timeout: float) -> list[Msg]:
        """Up to ``max_n`` messages: wait up to ``timeout`` for the first, then take the queued."""
        if self._gone is not None:
            gone, self._gone = self._gone, None
            raise ConsumerGone(f"consumer {self.stream}/{self.consumer}: {gone}")
        if self._queue.empty() and self.conn.is_connected:
            await self._refill()
        try:
            async with asyncio.timeout(timeout):  # not wait_for: it can swallow a cancel (tasks.py)
                first = await self._queue.get()
        except TimeoutError:
            return []
        out = [first]
        while len(out) < max_n and not self._queue.empty():
            out.append(self._queue.get_nowait())
        if self.conn.is_connected:
            await self._refill()
        return out


async def fetch_no_wait(
    conn: Connection, stream: str, consumer: str, batch: int, timeout: float = 5.0
) -> list[Msg]:
    """Take up to ``batch`` messages that are already stored, without waiting for new ones."""
    nc = conn.nc
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    out: list[Msg] = []
    try:
        req = {"batch": batch, "no_wait": True}
        await nc.publish(
            f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}",
            json.dumps(req).encode(),
            reply=inbox,
        )
        deadline = time.monotonic() + timeout
        while len(out) < batch:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                msg = await sub.next_msg(timeout=remaining)
            except TimeoutError:
                break
            status = status_of(msg)
            if status is None:
                out.append(msg)
            elif status != "100":
                break  # 404 no messages / 408 request done
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
    return out
