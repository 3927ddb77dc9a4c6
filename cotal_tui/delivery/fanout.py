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
import json
from collections.abc import Coroutine
from typing import Any

from nats.aio.msg import Msg

from cotal_tui.delivery.consumer_loop import ConsumerLoop
from cotal_tui.delivery.daemon_context import DaemonContext, entry_payload
from cotal_tui.protocol.consumers import fanout_durable_config
from cotal_tui.protocol.delivery import durable_copy_wanted, genuine_chat, mention_allowed
from cotal_tui.protocol.names import plane3_msg_id

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


class FanoutWriter(ConsumerLoop):
    def __init__(self, ctx: DaemonContext, *, batch: int = 256, depth: int = 4) -> None:
        super().__init__(
            ctx,
            ctx.chat_stream,
            fanout_durable_config(ctx.space),
            batch=batch,
            credit=batch * 2,
            depth=depth,
            task_name="plane3-fanout",
        )

    async def before_take(self) -> None:
        await self.ctx.inbox_room()

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
