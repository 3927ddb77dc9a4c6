"""The fan-out writer (PROTOCOL §5.3): routing, not authorization.

Reads CHAT through the ``fanout`` durable and writes one dinbox entry per eligible member of a
durable-class channel, or per ACL-covered @mention on a live channel. A message is acked only
when every one of its entries got a PubAck; otherwise it is nak'd with a growing delay and comes
back (the entries carry ``<msg.id>:<owner>:<generation>`` ids, so a retry never duplicates one
in INBOX), and after ``MAX_ROUTE_ATTEMPTS`` deliveries it is dead-lettered.

A message that cannot be routed at all is dead-lettered at once (``protocol.dead_letter``):
refused by the decoding rule or the CotalMessage schema, a spoofed sender, a body ``channel``
other than the subject's, or an entry over the server's ``max_payload``.

Speed: a batch of messages is routed at once. The delivery class is read fresh once per channel
per batch (after the batch arrived), members come from the local index (see
``member_index``), and all entries of the batch are published with their PubAcks in flight
together.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from nats.aio.msg import Msg

from cotal_tui.delivery.consumer_loop import ConsumerLoop
from cotal_tui.delivery.daemon_context import DaemonContext, entry_payload
from cotal_tui.protocol.consumers import fanout_durable_config
from cotal_tui.protocol.dead_letter import MAX_ROUTE_ATTEMPTS
from cotal_tui.protocol.delivery import chat_origin, durable_copy_wanted, mention_allowed
from cotal_tui.protocol.models import CotalMessage
from cotal_tui.protocol.names import plane3_msg_id
from cotal_tui.protocol.subjects import parse_subject
from cotal_tui.protocol.untrusted import MAX_WIRE_BYTES, Refused

# Room left for the entry's headers (Nats-Msg-Id) under the server's max_payload.
ENTRY_HEADROOM = 512

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
        """Route a batch and start its publishes; returns the completion that acks/naks.

        Every message gets its own outcome (issue 10): bytes the decoding rule refuses, a
        spoofed sender and a body whose ``channel`` is not the subject's are dead-lettered
        (acked out with a record of why), never retried and never forwarded.
        """
        ctx = self.ctx
        routed: list[tuple[Msg, str, str, CotalMessage, int]] = []
        for m in msgs:
            outcome = CotalMessage.decode(m.data)
            if isinstance(outcome, Refused):
                await ctx.dead_letter(m, ctx.chat_stream, outcome.reason, outcome.detail)
                continue
            message = outcome.value
            verdict = chat_origin(m.subject, message.from_.id, message.channel)
            if verdict == "not-chat":  # as the reference: acked and skipped
                await m.ack()
                continue
            if verdict != "routable":
                await ctx.dead_letter(
                    m,
                    ctx.chat_stream,
                    verdict,
                    f"body says from.id={message.from_.id!r} channel={message.channel!r}; "
                    f"subject is {m.subject}",
                )
                continue
            parsed = parse_subject(m.subject)
            assert parsed is not None
            routed.append((m, parsed.rest, parsed.sender, message, stream_seq(m)))
        if not routed:
            return None
        classes = await ctx.delivery_classes(r[1] for r in routed)
        names: dict[str, list[str]] | None = None
        plans: list[list[Copy] | Exception] = []
        acl_owners: set[str] = set()
        for _m, channel, sender, message, seq in routed:
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
                mentions = message.mentions
                if mentions:
                    if names is None:
                        names = ctx.mention_names()
                    for name in mentions:
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
        kept: list[Msg] = []
        limit = self.entry_limit()
        for (m, channel, sender, message, seq), plan in zip(routed, plans, strict=True):
            if isinstance(plan, Exception):
                spans.append(plan)
                kept.append(m)
                continue
            start = len(items)
            failed: Exception | None = None
            oversized = 0
            for owner, gen, reason in plan:
                if reason == "live-mention":
                    acl = acls.get(owner)
                    if isinstance(acl, Exception):
                        failed = acl
                        break
                    if not mention_allowed(owner, sender, acl, channel):
                        continue
                entry = entry_payload(m.data, channel, seq, reason, gen)
                if len(entry) > limit:
                    oversized = len(entry)
                    break
                items.append(
                    (ctx.dinbox_subject(owner), entry, plane3_msg_id(message.id, owner, gen))
                )
            if oversized:
                del items[start:]
                await ctx.dead_letter(
                    m,
                    ctx.chat_stream,
                    "entry-oversized",
                    f"the {len(m.data)}-byte message makes a {oversized}-byte dinbox entry, over "
                    f"the server's {limit + ENTRY_HEADROOM}-byte max_payload",
                )
                continue
            kept.append(m)
            if failed is not None:
                del items[start:]
                spans.append(failed)
            else:
                spans.append((start, len(items)))
        futures = await ctx.publish_start(items)
        ctx.entries_written(len(items))
        return self._complete(kept, spans, futures)

    def entry_limit(self) -> int:
        """The largest dinbox entry the server takes: its ``max_payload`` less header room."""
        try:
            max_payload = int(self.ctx.conn.nc.max_payload)
        except Exception:  # noqa: BLE001 - not connected yet: the server default
            max_payload = MAX_WIRE_BYTES
        return (max_payload or MAX_WIRE_BYTES) - ENTRY_HEADROOM

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
                await self._retry(m, str(span))
                continue
            start, end = span
            if all(results[start:end]):
                ctx.counters.fanned_out += end - start
                await m.ack()
            else:
                ctx.counters.fanned_out += sum(results[start:end])
                failed = (end - start) - sum(results[start:end])
                await self._retry(m, f"{failed} of {end - start} dinbox entries were not stored")

    async def _retry(self, m: Msg, why: str) -> None:
        """Nak with a growing delay; after MAX_ROUTE_ATTEMPTS deliveries, dead-letter it."""
        ctx = self.ctx
        attempts = deliveries(m)
        if attempts >= MAX_ROUTE_ATTEMPTS:
            await ctx.dead_letter(
                m, ctx.chat_stream, "delivery-failed", f"routing failed {attempts} times: {why}"
            )
            return
        ctx.counters.naked += 1
        try:
            await m.nak(delay=retry_delay_s(attempts))
        except Exception as exc:  # noqa: BLE001 - redelivered after ack_wait anyway
            ctx.on_error(exc)


def retry_delay_s(attempts: int) -> float:
    """0.5 s after the first failed delivery, doubling, at most 30 s (no hot loop)."""
    return min(30.0, 0.5 * 2 ** max(0, attempts - 1))


def deliveries(m: Msg) -> int:
    try:
        return int(m.metadata.num_delivered)
    except Exception:  # noqa: BLE001 - not a JetStream message: treat as first delivery
        return 1
