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
import json
import time
from collections.abc import Callable, Coroutine
from typing import Any

from nats.aio.msg import Msg

from cotal_tui.delivery import wait_stats
from cotal_tui.delivery.chat_gaps import EvictionTracker
from cotal_tui.delivery.consumer_loop import ConsumerLoop
from cotal_tui.delivery.daemon_context import DaemonContext, PendingBatch
from cotal_tui.delivery.member_index import Route
from cotal_tui.mesh.ack_subject import deliveries, stream_seq
from cotal_tui.mesh.batch_send import ack_many
from cotal_tui.protocol.consumers import fanout_durable_config
from cotal_tui.protocol.dead_letter import MAX_ROUTE_ATTEMPTS
from cotal_tui.protocol.delivery import chat_origin, durable_copy_wanted, mention_allowed
from cotal_tui.protocol.models import CotalMessage
from cotal_tui.protocol.names import plane3_msg_id
from cotal_tui.protocol.subjects import parse_subject
from cotal_tui.protocol.untrusted import MAX_WIRE_BYTES, Refused

# Room left for the entry's headers (Nats-Msg-Id) under the server's max_payload.
ENTRY_HEADROOM = 512

# Messages pulled from CHAT ahead of routing. CHAT keeps 1,000 per sender-channel subject and
# discards the oldest, so an unpaced burst from one sender fills its subject within a fraction of
# a second: what the fan-out already holds is what survives beyond the 1,000 kept. At 512 a burst
# of 2,000 lost ~24 % of its copies; at 1,000 all of them arrived (issue 11, cause 6). The
# consumer's max_ack_pending (server default 1,000) caps it anyway.
READ_AHEAD = 1000

# One planned copy: (owner, generation, reason, dinbox subject, entry tail, Nats-Msg-Id end):
# all but the first three worked out once per owner, generation and reason (``Targets``).
Copy = tuple[str, int, str, str, bytes, str]
Targets = dict[tuple[str, int, str], Copy]
# A channel's routes as last read from the index, and each with its durable copy's target.
Prepared = tuple[tuple[Route, ...], list[tuple[str, int, int | None, Copy]]]
TARGETS_KEPT = 50_000


__all__ = ["FanoutWriter", "deliveries", "entry_head", "entry_tail", "stream_seq"]


def entry_head(raw_msg: bytes, channel: str, seq: int) -> bytes:
    """The part of a message's dinbox entries that all its copies share (see ``entry_tail``):
    ``entry_head(m, c, s) + entry_tail(r, g) == entry_payload(m, c, s, r, g)``."""
    return (
        b'{"msg":'
        + raw_msg
        + f',"channel":{json.dumps(channel, ensure_ascii=False)},"seq":{seq},"reason":"'.encode()
    )


def entry_tail(reason: str, generation: int) -> bytes:
    return f'{reason}","generation":{generation}}}'.encode()


def copy_target(
    targets: Targets, dinbox_subject: Callable[[str], str], owner: str, gen: int, reason: str
) -> Copy:
    """What every copy to ``owner`` at ``gen`` for ``reason`` shares, memoized in ``targets``:
    its dinbox subject, its entry's tail and the ``:<owner>:<gen>`` end of its Nats-Msg-Id
    (``plane3_msg_id(id, owner, gen) == f"{id}" + end``)."""
    key = (owner, gen, reason)
    target = targets.get(key)
    if target is None:
        subject, tail = dinbox_subject(owner), entry_tail(reason, gen)
        target = targets[key] = (owner, gen, reason, subject, tail, plane3_msg_id("", owner, gen))
    return target


class FanoutWriter(ConsumerLoop):
    def __init__(self, ctx: DaemonContext, *, batch: int = 256, depth: int = 4) -> None:
        super().__init__(
            ctx,
            ctx.chat_stream,
            fanout_durable_config(ctx.space),
            batch=batch,
            credit=max(READ_AHEAD, batch * 2),
            depth=depth,
            task_name="plane3-fanout",
        )
        self.evictions = EvictionTracker(
            ctx.conn,
            ctx.chat_stream,
            self.durable,
            f"{ctx.prefix}.chat.",
            ctx.on_error,
            inbox_stream=ctx.inbox_stream,
        )
        # In our hands from the moment it arrives: routed from memory even if CHAT evicts it
        # meanwhile, and a broker restart that restores the floor past what waits in the pump's
        # queue must not make it look evicted (chat_gaps.py).
        self.pump.on_message = lambda m: self.evictions.taken(stream_seq(m))
        # Batches are acked in stream order (each completion waits for the one before), so the
        # consumer's ack floor is exactly what was acked: chat_gaps.py relies on it.
        self._acked_before: asyncio.Event | None = None
        self._targets: Targets = {}
        self._prepared: dict[str, Prepared] = {}

    def durable_targets(self, channel: str) -> list[tuple[str, int, int | None, Copy]]:
        """``(owner, join cursor, leave cursor, target)`` per route of ``channel``, rebuilt
        only when the index hands out a new routes tuple (a membership changed)."""
        routes = self.ctx.index.routes(channel)
        prepared = self._prepared.get(channel)
        if prepared is not None and prepared[0] is routes:
            return prepared[1]
        if len(self._targets) > TARGETS_KEPT:
            self._targets.clear()
        subject = self.ctx.dinbox_subject
        listed = [
            (owner, join, leave, copy_target(self._targets, subject, owner, gen, "durable-channel"))
            for owner, gen, join, leave in routes
        ]
        self._prepared[channel] = (routes, listed)
        return listed

    async def start(self) -> None:
        await self.ensure_consumer()
        await self.ctx.inbox.refresh()  # before our reader takes anything (inbox_pressure.py)
        await self.evictions.start()  # the floor before this process acks anything
        await super().start()

    async def stop(self) -> None:
        await super().stop()
        # A completion cancelled before its first step (or never handed to the pipeline, the
        # loop cancelled while it waited for a slot) never sets its event: a restarted loop
        # (the lease lost and won back) must not wait on it, or the fan-out stalls for good.
        self._acked_before = None
        await self.evictions.stop()

    async def _nak(self, m: Msg, delay: float | None = None) -> None:
        self.evictions.released(stream_seq(m))  # comes back; if evicted first, it is counted
        await m.nak(delay=delay)

    async def _ack(self, m: Msg) -> None:
        await m.ack()
        self.evictions.routed_ok(stream_seq(m))

    async def before_take(self) -> None:
        await self.ctx.inbox_room(self.batch)

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
                await self._dead_letter(m, outcome.reason, outcome.detail)
                continue
            message = outcome.value
            verdict = chat_origin(m.subject, message.from_.id, message.channel)
            if verdict == "not-chat":  # as the reference: acked and skipped
                await self._ack(m)
                continue
            if verdict != "routable":
                await self._dead_letter(
                    m,
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
        t0 = time.perf_counter() if wait_stats.STATS is not None else 0.0
        classes = await ctx.delivery_classes(r[1] for r in routed)
        if wait_stats.STATS is not None:
            wait_stats.STATS.add("fanout.reads", time.perf_counter() - t0)
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
                for owner, join_cursor, leave_cursor, target in self.durable_targets(channel):
                    if durable_copy_wanted(owner, sender, join_cursor, leave_cursor, seq):
                        copies.append(target)
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
                        copy = copy_target(
                            self._targets, ctx.dinbox_subject, ids[0], 0, "live-mention"
                        )
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
            head = entry_head(m.data, channel, seq) if plan else b""
            msg_id = f"{message.id}"
            for owner, _gen, reason, subject, tail, id_end in plan:
                if reason == "live-mention":
                    acl = acls.get(owner)
                    if isinstance(acl, Exception):
                        failed = acl
                        break
                    if not mention_allowed(owner, sender, acl, channel):
                        continue
                entry = head + tail
                if len(entry) > limit:
                    oversized = len(entry)
                    break
                items.append((subject, entry, msg_id + id_end))
            if oversized:
                del items[start:]
                await self._dead_letter(
                    m,
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
        before, mine = self._acked_before, asyncio.Event()
        self._acked_before = mine
        return self._complete(kept, spans, futures, before, mine)

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
        futures: PendingBatch,
        before: asyncio.Event | None = None,
        mine: asyncio.Event | None = None,
    ) -> None:
        try:
            await self._settle_and_ack(msgs, spans, futures, before)
        finally:
            if mine is not None:
                mine.set()

    async def _settle_and_ack(
        self,
        msgs: list[Msg],
        spans: list[tuple[int, int] | Exception],
        futures: PendingBatch,
        before: asyncio.Event | None,
    ) -> None:
        ctx = self.ctx
        t0 = time.perf_counter() if wait_stats.STATS is not None else 0.0
        try:
            results = await ctx.settle(futures)
            if wait_stats.STATS is not None:
                wait_stats.STATS.add("fanout.pubacks", time.perf_counter() - t0, len(results))
            if before is not None:
                await before.wait()  # acks in stream order: the batch before goes first
        except asyncio.CancelledError:
            self.pump.give_back(msgs)
            raise
        ctx.entries_settled(len(results))
        ctx.entries_decided(results.count(False))  # never stored: nothing for the reader
        # A message is acked only when every one of its entries got its PubAck (issue 11); the
        # acks of the batch go out together, in stream order, before its retries.
        done: list[Msg] = []
        retries: list[tuple[Msg, str]] = []
        for m, span in zip(msgs, spans, strict=True):
            if isinstance(span, Exception):
                ctx.on_error(span)
                retries.append((m, str(span)))
                continue
            start, end = span
            if all(results[start:end]):
                ctx.counters.fanned_out += end - start
                done.append(m)
            else:
                ctx.counters.fanned_out += sum(results[start:end])
                failed = (end - start) - sum(results[start:end])
                retries.append((m, f"{failed} of {end - start} dinbox entries were not stored"))
        await self._ack_all(done)
        for m, why in retries:
            await self._retry(m, why)

    async def _ack_all(self, msgs: list[Msg]) -> None:
        """:meth:`_ack` for each, sent as one batch (one by one if the batch cannot be sent)."""
        if not msgs:
            return
        try:
            await ack_many(self.ctx.conn.nc, msgs)
        except Exception:  # noqa: BLE001 - as the single acks would report it
            for m in msgs:
                if not m.is_acked:
                    await m.ack()
        for m in msgs:
            self.evictions.acked(stream_seq(m))

    async def _retry(self, m: Msg, why: str) -> None:
        """Nak with a growing delay; after MAX_ROUTE_ATTEMPTS deliveries, dead-letter it."""
        ctx = self.ctx
        attempts = deliveries(m)
        if attempts >= MAX_ROUTE_ATTEMPTS:
            await self._dead_letter(m, "delivery-failed", f"routing failed {attempts} times: {why}")
            return
        ctx.counters.naked += 1
        try:
            await self._nak(m, delay=retry_delay_s(attempts))
        except Exception as exc:  # noqa: BLE001 - redelivered after ack_wait anyway
            ctx.on_error(exc)

    async def _dead_letter(self, m: Msg, reason: str, detail: str) -> None:
        """Acked out with a record of why (issue 10): taken and settled, so never counted as
        evicted before routing (it is counted as a dead letter instead)."""
        await self.ctx.dead_letter(m, self.ctx.chat_stream, reason, detail)
        self.evictions.routed_ok(stream_seq(m))

    async def fail_batch(self, msgs: list[Msg], exc: Exception) -> None:
        """As the loop's (nak with backoff, dead-letter after MAX_ROUTE_ATTEMPTS), and what is
        nak'd is released from the eviction count's hands first (chat_gaps.py)."""
        for m in msgs:
            if not m.is_acked and deliveries(m) < MAX_ROUTE_ATTEMPTS:
                self.evictions.released(stream_seq(m))
        await super().fail_batch(msgs, exc)


def retry_delay_s(attempts: int) -> float:
    """0.5 s after the first failed delivery, doubling, at most 30 s (no hot loop)."""
    return min(30.0, 0.5 * 2 ** max(0, attempts - 1))
