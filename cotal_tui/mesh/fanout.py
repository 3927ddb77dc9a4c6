"""The fan-out writer (PROTOCOL §5.3): routing, not authorization.

Reads CHAT through the ``fanout`` durable and writes one dinbox entry per eligible member of a
durable-class channel, or per ACL-covered @mention on a live channel. A message is acked only
when every one of its entries got a PubAck; otherwise it is nak'd and comes back (the entries
carry ``<msg.id>:<owner>:<generation>`` ids, so a retry never duplicates one in INBOX).

Speed: a batch of messages is routed at once. The delivery class is read fresh once per channel
per batch (after the batch arrived), members come from the local index (see
``member_index``), and all entries of the batch are published with their PubAcks in flight
together.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Coroutine
from typing import Any

from nats.aio.msg import Msg

from cotal_tui.mesh.daemon_context import DaemonContext, Pipeline, entry_payload, nak_unsettled
from cotal_tui.mesh.pull import ConsumerGone, PullPump
from cotal_tui.protocol.consumers import fanout_durable_config
from cotal_tui.protocol.delivery import durable_copy_wanted, genuine_chat, mention_allowed
from cotal_tui.protocol.names import fanout_durable, plane3_msg_id

# One planned copy: (owner, generation, reason).
Copy = tuple[str, int, str]


def stream_seq(msg: Msg) -> int:
    """The stream sequence from a JetStream ack subject ``$JS.ACK.<s>.<c>.<n>.<sseq>.…``."""
    reply = msg.reply or ""
    parts = reply.split(".")
    if len(parts) >= 9 and parts[0] == "$JS" and parts[1] == "ACK":
        # $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending> (v1 form)
        return int(parts[5]) if len(parts) == 9 else int(msg.metadata.sequence.stream)
    return int(msg.metadata.sequence.stream)


async def create_durable(ctx: DaemonContext, stream: str, config: dict[str, Any]) -> None:
    """Create (or confirm) a durable on the legacy ``DURABLE.CREATE.<stream>.<name>`` subject.

    That form carries no filter in the subject and is the one the delivery grants allow for the
    INBOX reader (``$JS.API.CONSUMER.DURABLE.CREATE.INBOX_<s>.reader``) as well as on CHAT.
    """
    name = config["durable_name"]
    req = {"stream_name": stream, "config": config}
    resp = await ctx.conn.nc.request(
        f"$JS.API.CONSUMER.DURABLE.CREATE.{stream}.{name}", json.dumps(req).encode(), timeout=5
    )
    body = json.loads(resp.data or b"{}")
    if "error" in body:
        err = body["error"]
        raise ConsumerCreateFailed(
            f"cannot create consumer {stream}/{name}: {err.get('description', err)} "
            f"(err_code {err.get('err_code')})"
        )


class ConsumerCreateFailed(RuntimeError):
    pass


class FanoutWriter:
    def __init__(self, ctx: DaemonContext, *, batch: int = 256, depth: int = 4) -> None:
        self.ctx = ctx
        self.batch = batch
        self.durable = fanout_durable()
        self.pump = PullPump(ctx.conn, ctx.chat_stream, self.durable, batch=batch * 2)
        self.pipeline = Pipeline(depth)
        self._task: asyncio.Task[None] | None = None

    async def ensure_consumer(self) -> None:
        """Idempotent create; an error is reported and ignored, as the reference does."""
        try:
            await create_durable(
                self.ctx, self.ctx.chat_stream, fanout_durable_config(self.ctx.space)
            )
        except Exception as exc:  # noqa: BLE001 - the bind below surfaces a real absence
            self.ctx.on_error(exc)

    async def start(self) -> None:
        await self.ensure_consumer()
        await self.pump.start()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="plane3-fanout")

    async def rearm(self) -> None:
        await self.ensure_consumer()
        self.pump.reset()

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        await self.pipeline.drain(5.0)
        await self.pump.stop()

    async def _run(self) -> None:
        while True:
            msgs: list[Msg] = []
            try:
                await self.ctx.inbox_room()
                msgs = await self.pump.take(self.batch, 1.0)
                if msgs:
                    completion = await self.dispatch(msgs)
                    if completion is not None:
                        await self.pipeline.submit(completion)
            except asyncio.CancelledError:
                self.pump.give_back(msgs)  # stopped mid-batch: nak'd once the pump is closed
                raise
            except ConsumerGone as exc:
                self.ctx.on_error(exc)
                await self.rearm()
            except Exception as exc:  # noqa: BLE001 - reported; the loop keeps routing
                self.ctx.on_error(exc)
                await nak_unsettled(msgs)  # as the reference: a throw naks, nothing is lost
                await asyncio.sleep(0.5)

    async def handle(self, msgs: list[Msg]) -> None:
        """Route one batch and wait for its acks (the loop overlaps batches instead)."""
        completion = await self.dispatch(msgs)
        if completion is not None:
            await completion

    async def dispatch(self, msgs: list[Msg]) -> Coroutine[Any, Any, None] | None:
        """Route a batch and start its publishes; returns the completion that acks/naks."""
        ctx = self.ctx
        routed: list[tuple[Msg, str, str, dict[str, Any], int]] = []
        for m in msgs:
            try:
                data = json.loads(m.data)
            except ValueError:
                await m.ack()
                continue
            sender = data.get("from") if isinstance(data, dict) else None
            origin = genuine_chat(m.subject, sender.get("id") if isinstance(sender, dict) else None)
            if origin is None:  # not a chat subject, or a spoofed sender: never routed
                await m.ack()
                continue
            routed.append((m, origin.rest, origin.sender, data, stream_seq(m)))
        if not routed:
            return None
        classes = await ctx.delivery_classes(r[1] for r in routed)
        names: dict[str, list[str]] | None = None
        plans: list[list[Copy] | Exception] = []
        acl_owners: set[str] = set()
        for _m, channel, sender, data, seq in routed:
            cls = classes[channel]
            if isinstance(cls, Exception):
                plans.append(cls)
                continue
            copies: list[Copy] = []
            if cls == "durable":
                for owner, gen, join_cursor, leave_cursor in ctx.index.routes(channel):
                    if durable_copy_wanted(owner, sender, join_cursor, leave_cursor, seq):
                        copies.append((owner, gen, "durable-channel"))
            else:
                mentions = data.get("mentions")
                if isinstance(mentions, list) and mentions:
                    if names is None:
                        names = ctx.mention_names()
                    for name in mentions:
                        if not isinstance(name, str):
                            continue
                        # the index of mention_owner: exactly one name match, any status
                        ids = names.get(name.lower())
                        if ids is None or len(ids) != 1 or ids[0] == sender:
                            continue  # (the sender's own ACL is not worth reading)
                        copy = (ids[0], 0, "live-mention")
                        if copy not in copies:
                            copies.append(copy)
                            acl_owners.add(ids[0])
            plans.append(copies)
        acls = await ctx.acls_fresh(acl_owners) if acl_owners else {}

        items: list[tuple[str, bytes, str]] = []
        spans: list[tuple[int, int] | Exception] = []
        for (m, channel, sender, data, seq), plan in zip(routed, plans, strict=True):
            if isinstance(plan, Exception):
                spans.append(plan)
                continue
            start = len(items)
            failed: Exception | None = None
            msg_id = data.get("id")
            for owner, gen, reason in plan:
                if reason == "live-mention":
                    acl = acls.get(owner)
                    if isinstance(acl, Exception):
                        failed = acl
                        break
                    if not mention_allowed(owner, sender, acl, channel):
                        continue
                items.append(
                    (
                        ctx.dinbox_subject(owner),
                        entry_payload(m.data, channel, seq, reason, gen),
                        plane3_msg_id(msg_id, owner, gen),
                    )
                )
            if failed is not None:
                del items[start:]
                spans.append(failed)
            else:
                spans.append((start, len(items)))
        futures = await ctx.publish_start(items)
        ctx.entries_written(len(items))
        return self._complete([r[0] for r in routed], spans, futures)

    async def _complete(
        self,
        msgs: list[Msg],
        spans: list[tuple[int, int] | Exception],
        futures: list[asyncio.Future[None] | None],
    ) -> None:
        ctx = self.ctx
        try:
            results = await ctx.settle(futures)
        except asyncio.CancelledError:
            self.pump.give_back(msgs)
            raise
        ctx.entries_decided(results.count(False))  # never stored: nothing for the reader
        for m, span in zip(msgs, spans, strict=True):
            if isinstance(span, Exception):
                ctx.on_error(span)
                ctx.counters.naked += 1
                await m.nak()
                continue
            start, end = span
            if all(results[start:end]):
                ctx.counters.fanned_out += end - start
                await m.ack()
            else:
                ctx.counters.fanned_out += sum(results[start:end])
                ctx.counters.naked += 1
                await m.nak()
