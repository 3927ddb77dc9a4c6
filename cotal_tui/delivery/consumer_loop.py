"""The daemon's two pull loops (fan-out over CHAT, the trusted reader over INBOX) share one shape.

:class:`ConsumerLoop` owns it: create-or-confirm the durable, pump it, hand every batch to
:meth:`ConsumerLoop.dispatch` (which starts the batch's publishes and returns the completion
that acks or naks), overlap completions in a :class:`Pipeline`, re-arm on reconnect, and on stop
let what is in flight finish before the pump naks whatever it still holds. A batch that throws is
nak'd (as the reference does, so nothing is lost) with a growing delay, and a message that has
failed ``MAX_ROUTE_ATTEMPTS`` deliveries is dead-lettered; a vanished consumer is re-created.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any

from nats.aio.msg import Msg

from cotal_tui.delivery import wait_stats
from cotal_tui.delivery.daemon_context import DaemonContext, Pipeline
from cotal_tui.mesh.jsapi import API, api_request
from cotal_tui.mesh.pull import ConsumerGone, PullPump
from cotal_tui.mesh.tasks import cancel_and_wait
from cotal_tui.protocol.dead_letter import MAX_ROUTE_ATTEMPTS


def _deliveries(m: Msg) -> int:
    try:
        return int(m.metadata.num_delivered)
    except Exception:  # noqa: BLE001 - not a JetStream message: treat as first delivery
        return 1


async def create_durable(ctx: DaemonContext, stream: str, config: dict[str, Any]) -> None:
    """Create (or confirm) a durable on the legacy ``DURABLE.CREATE.<stream>.<name>`` subject.

    That form carries no filter in the subject and is the one the delivery grants allow for the
    INBOX reader (``$JS.API.CONSUMER.DURABLE.CREATE.INBOX_<s>.reader``) as well as on CHAT.
    Raises :class:`~cotal_tui.mesh.jsapi.JsApiError` or ``JsApiUnavailable``.
    """
    name = config["durable_name"]
    await api_request(
        ctx.conn,
        f"{API}.CONSUMER.DURABLE.CREATE.{stream}.{name}",
        {"stream_name": stream, "config": config},
        what=f"cannot create consumer {stream}/{name}",
    )


class ConsumerLoop:
    """One durable, pumped in batches; subclasses say what a batch becomes (:meth:`dispatch`)."""

    def __init__(
        self,
        ctx: DaemonContext,
        stream: str,
        config: dict[str, Any],
        *,
        batch: int,
        credit: int,
        depth: int,
        task_name: str,
    ) -> None:
        self.ctx = ctx
        self.stream = stream
        self.config = config
        self.batch = batch
        self.durable: str = config["durable_name"]
        self.pump = PullPump(ctx.conn, stream, self.durable, batch=credit)
        self.pipeline = Pipeline(depth)
        self._task_name = task_name
        self._task: asyncio.Task[None] | None = None
        self._taken: list[Msg] = []  # the batch of the current turn (given back if stopped)

    async def ensure_consumer(self) -> None:
        """Idempotent create; an error is reported and ignored, as the reference does."""
        try:
            await create_durable(self.ctx, self.stream, self.config)
        except Exception as exc:  # noqa: BLE001 - the bind below surfaces a real absence
            self.ctx.on_error(exc)

    async def start(self) -> None:
        await self.ensure_consumer()
        await self.pump.start()
        if wait_stats.STATS is not None:
            wait_stats.STATS.start()
        self._task = asyncio.get_running_loop().create_task(self._run(), name=self._task_name)

    async def rearm(self) -> None:
        await self.ensure_consumer()
        self.pump.reset()

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait([task])
        await self.pipeline.drain(5.0)
        await self.pump.stop()

    async def before_take(self) -> None:
        """Wait for room before taking a batch (fan-out: INBOX backpressure); none by default."""

    async def _run(self) -> None:
        stats = wait_stats.STATS
        while True:
            self._taken = []
            try:
                await (self._turn() if stats is None else self._timed_turn(stats))
            except asyncio.CancelledError:
                self.pump.give_back(self._taken)  # stopped mid-batch: nak'd once pump is closed
                raise
            except ConsumerGone as exc:
                self.ctx.on_error(exc)
                await self.rearm()
            except Exception as exc:  # noqa: BLE001 - reported; the loop keeps going
                self.ctx.on_error(exc)
                await self.fail_batch(self._taken, exc)
                await asyncio.sleep(0.5)

    async def _turn(self) -> None:
        """Take one batch, dispatch it and hand its completion to the pipeline."""
        await self.before_take()
        self._taken = msgs = await self.pump.take(self.batch, 1.0)
        if msgs:
            completion = await self.dispatch(msgs)
            if completion is not None:
                await self.pipeline.submit(completion)

    async def _timed_turn(self, stats: wait_stats.WaitStats) -> None:
        """:meth:`_turn` with each phase's wall-clock time added to ``stats`` (wait_stats.py)."""
        tag = self.stats_tag
        clock = time.perf_counter
        t0 = clock()
        await self.before_take()
        t1 = clock()
        stats.add(f"{tag}.busy_slots_at_take", 0.0, self.pipeline.busy)
        self._taken = msgs = await self.pump.take(self.batch, 1.0)
        t2 = clock()
        stats.add(f"{tag}.before_take", t1 - t0)
        if not msgs:
            stats.add(f"{tag}.idle", t2 - t1)
            return
        stats.add(f"{tag}.take", t2 - t1)
        stats.add(f"{tag}.msgs", 0.0, len(msgs))
        completion = await self.dispatch(msgs)
        t3 = clock()
        stats.add(f"{tag}.dispatch", t3 - t2)
        if completion is not None:
            await self.pipeline.submit(completion)
            stats.add(f"{tag}.slot", clock() - t3)

    @property
    def stats_tag(self) -> str:
        return self._task_name.removeprefix("plane3-")

    async def fail_batch(self, msgs: list[Msg], exc: Exception) -> None:
        """A batch that threw: as the reference, nak what is unsettled (nothing is lost), but
        with a growing delay, and dead-letter a message that has now failed
        ``MAX_ROUTE_ATTEMPTS`` deliveries, so no one message can hold the loop forever."""
        for m in msgs:
            if m.is_acked:
                continue
            attempts = _deliveries(m)
            if attempts >= MAX_ROUTE_ATTEMPTS:
                await self.ctx.dead_letter(
                    m, self.stream, "delivery-failed", f"its batch failed {attempts} times: {exc}"
                )
                continue
            try:
                await m.nak(delay=min(30.0, 0.5 * 2 ** max(0, attempts - 1)))
            except Exception as nak_exc:  # noqa: BLE001 - redelivered after ack_wait anyway
                self.ctx.on_error(nak_exc)

    async def handle(self, msgs: list[Msg]) -> None:
        """Decide one batch and wait for its acks (the loop overlaps batches instead)."""
        completion = await self.dispatch(msgs)
        if completion is not None:
            await completion

    async def dispatch(self, msgs: list[Msg]) -> Coroutine[Any, Any, None] | None:
        """Decide a batch and start its publishes; returns the completion that acks/naks."""
        raise NotImplementedError
