"""Pull pumps over durable consumers (``dm_<id>``, ``svc_<role>``, ``dlv_<id>``).

Each pump is one task that keeps a pull request outstanding on
``$JS.API.CONSUMER.MSG.NEXT.<stream>.<durable>`` (batch, expires) and hands every delivery to
its handler as it arrives, so a message is never held back waiting for a batch to fill. Only the
MSG.NEXT and ACK verbs are used: the agent grants allow exactly those on its own durables.
A reconnect loses the outstanding request; the connection's re-arm makes the loop ask again at
once. Stopping unsubscribes the inbox before the connection closes, so no drain waits on it
(§10.13).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from cotal_tui.mesh.connection import Connection
from cotal_tui.mesh.jsapi import API
from cotal_tui.mesh.tasks import cancel_and_wait

Handler = Callable[[Msg], Awaitable[None]]
_NS = 1_000_000_000


class PullPump:
    def __init__(
        self,
        conn: Connection,
        stream: str,
        durable: str,
        handler: Handler,
        *,
        batch: int = 64,
        expires_s: float = 5.0,
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        self.conn = conn
        self.stream = stream
        self.durable = durable
        self.handler = handler
        self.batch = batch
        self.expires_s = expires_s
        self.on_error = on_error
        self._task: asyncio.Task[None] | None = None
        self._sub: Subscription | None = None
        self._inbox = ""
        self._queue: asyncio.Queue[Msg | None] = asyncio.Queue()
        self._unrearm: Callable[[], None] | None = None
        self.delivered = 0

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        # One inbox for the pump's whole life: a pull request buffered while disconnected and
        # flushed on reconnect still delivers here, so no message goes to a dead inbox and
        # waits out its ack_wait.
        nc = self.conn.nc
        self._inbox = nc.new_inbox()
        self._sub = await nc.subscribe(self._inbox, cb=self._enqueue)
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"pump:{self.stream}/{self.durable}"
        )
        self._unrearm = self.conn.register_rearm(f"pump {self.durable}", self._rearm)

    async def _enqueue(self, msg: Msg) -> None:
        self._queue.put_nowait(msg)

    async def _rearm(self) -> None:
        """The outstanding pull request died with the old connection: ask again at once."""
        self._queue.put_nowait(None)

    async def stop(self) -> None:
        if self._unrearm is not None:
            self._unrearm()
            self._unrearm = None
        task, self._task = self._task, None
        await cancel_and_wait([task])
        sub, self._sub = self._sub, None
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _run(self) -> None:
        subject = f"{API}.CONSUMER.MSG.NEXT.{self.stream}.{self.durable}"
        request = json.dumps({"batch": self.batch, "expires": int(self.expires_s * _NS)}).encode()
        backoff = 0.0
        while True:
            if backoff:
                await asyncio.sleep(backoff)
            try:
                await self.conn.nc.publish(subject, request, reply=self._inbox)
            except Exception as exc:  # noqa: BLE001 - disconnected: retry after a pause
                self._report(exc)
                backoff = min(5.0, (backoff or 0.25) * 2)
                continue
            received = 0
            trouble = False
            while received < self.batch:
                try:
                    async with asyncio.timeout(self.expires_s + 1):  # not wait_for: tasks.py
                        msg = await self._queue.get()
                except TimeoutError:
                    break
                if msg is None:  # re-armed after a reconnect
                    break
                status = (msg.headers or {}).get("Status") if not msg.data else None
                if status is not None:
                    if status == "100":
                        continue
                    if status not in ("404", "408"):
                        trouble = True
                        desc = (msg.headers or {}).get("Description", "")
                        self._report(PumpStatus(self.stream, self.durable, status, desc))
                    break
                received += 1
                self.delivered += 1
                try:
                    await self.handler(msg)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - one bad message must not stop the pump
                    self._report(exc)
            backoff = min(5.0, (backoff or 0.25) * 2) if trouble else 0.0

    def _report(self, exc: Exception) -> None:
        if self.on_error is not None:
            self.on_error(exc)


class PumpStatus(Exception):
    def __init__(self, stream: str, durable: str, status: str, description: str) -> None:
        super().__init__(
            f"pull from {stream}/{durable} answered {status} {description}".strip()
            + "; retrying with backoff"
        )
        self.status = status
