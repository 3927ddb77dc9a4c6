"""The trusted reader (PROTOCOL §5.4): the authorization gate between INBOX and DLV.

Every dinbox entry is checked against the owner's read ACL and (for ``durable-channel``) the
owner's membership interval, both read fresh from KV after the entry was received, so a
narrowed ACL or a leave applies to every entry read after it was written. The decision is the
table ``cotal_tui.protocol.delivery.READER_TABLE`` (through :func:`gate_action`); the delivery
count decides between retry and dead letter.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any

from nats.aio.msg import Msg

from cotal_tui.delivery import wait_stats
from cotal_tui.delivery.acl import AclEntry
from cotal_tui.delivery.consumer_loop import ConsumerLoop
from cotal_tui.delivery.daemon_context import DaemonContext, PendingBatch
from cotal_tui.delivery.members import MemberEntry
from cotal_tui.mesh.ack_subject import deliveries
from cotal_tui.mesh.batch_send import ack_many
from cotal_tui.protocol.consumers import inbox_reader_config
from cotal_tui.protocol.delivery import (
    READER_NAK_DELAY_MS,
    READER_TABLE,
    AclState,
    ReaderAction,
    acl_state,
    gate_action_in_state,
    transfer_failed_action,
)
from cotal_tui.protocol.jsstr import ABSENT, js_string
from cotal_tui.protocol.membership import durable_eligible
from cotal_tui.protocol.names import DINBOX_MAX_ACK_PENDING, plane3_msg_id
from cotal_tui.protocol.subjects import parse_dinbox_owner
from cotal_tui.protocol.untrusted import Decoded, Refused, decode_untrusted

DEFER_DELAY_S = READER_NAK_DELAY_MS / 1000


@dataclass(slots=True)
class Entry:
    msg: Msg
    owner: str
    raw: bytes  # the original message JSON, the DLV body
    msg_id: Any
    channel: str
    seq: int
    reason: str
    generation: Any

    @property
    def durable_channel(self) -> bool:
        return self.reason == "durable-channel"


_MSG_HEAD = b'{"msg":'
_TAIL_MARK = b',"channel":'
_ID_HEAD = b'{"id":"'
# The tail exactly as this daemon and JSON.stringify write it: strings without escapes or
# control characters, integers in JSON's form. Anything else goes through the decoding rule.
_TAIL = re.compile(
    rb'"channel":"([^"\\\x00-\x1f]*)","seq":(0|[1-9][0-9]{0,15}),'
    rb'"reason":"([^"\\\x00-\x1f]*)","generation":(-?(?:0|[1-9][0-9]{0,15}))\}'
)
# The whole entry in the usual shape, in one match: the message with a plain ``{"id":"…"`` first
# (no escape before its closing quote) and the plain tail. The tail contains ``,"channel":`` only
# at its start, so the message ends where the last ``,"channel":`` begins, as in the slow path.
_PLAIN_ENTRY = re.compile(
    rb'\{"msg":(\{"id":"([^"\\]*)".*\}),"channel":"([^"\\\x00-\x1f]*)","seq":(0|[1-9][0-9]{0,15}),'
    rb'"reason":"([^"\\\x00-\x1f]*)","generation":(-?(?:0|[1-9][0-9]{0,15}))\}',
    re.DOTALL,
)
# (owner, channel) → the ACL object the verdict was worked out on, and the verdict
AclStates = dict[tuple[str, str], tuple[Any, AclState]]
ACL_STATES_KEPT = 50_000
# (owner, integer generation) → the owner's DLV subject and the ``:<owner>:<generation>`` end of
# its transfers' Nats-Msg-Id; and a dinbox subject → its owner (None: unparseable)
DlvTargets = dict[tuple[str, int], tuple[str, str]]
Owners = dict[str, str | None]
MEMO_KEPT = 50_000
_NOT_SEEN = ""  # (an empty owner token is parsed again each time: same answer)
# The reader table's verdicts for an allowed ACL on a durable-channel entry, by interval check.
_ALLOWED_DURABLE = {
    checked: READER_TABLE[("allowed", "durable-channel", checked)] for checked in (True, False)
}


def decode_entry(m: Msg, owner: str) -> Entry | Refused:
    """:func:`decode_entry_slow`, in one regex match for an entry in the usual shape (what
    this daemon and the reference write); anything else takes the slow path, unchanged."""
    plain = _PLAIN_ENTRY.fullmatch(m.data)
    if plain is not None:
        raw, msg_id, channel, seq, reason, gen = plain.groups()
        try:
            return Entry(
                m,
                owner,
                raw,
                msg_id.decode(),
                channel.decode(),
                int(seq),
                reason.decode(),
                int(gen),
            )
        except UnicodeDecodeError:
            pass  # the slow path below decides (as it always did)
    return decode_entry_slow(m, owner)


def decode_entry_slow(m: Msg, owner: str) -> Entry | Refused:
    """Decode a dinbox entry; the DLV body is the original message bytes, sliced out.

    Entries are ``{"msg":<message>,"channel":…,"seq":…,"reason":…,"generation":…}`` as both
    this daemon and the reference's ``JSON.stringify`` write them; the channel is a wire token
    (no quotes or commas), so the last ``,"channel":`` starts the tail. Only the small tail is
    parsed; anything else falls back to a full decode (and a re-encoded message). Both go
    through the decoding rule (``protocol.untrusted``); a refusal names its reason.
    """
    data = m.data
    if data.startswith(_MSG_HEAD):
        cut = data.rfind(_TAIL_MARK)
        if cut > len(_MSG_HEAD):
            raw = data[len(_MSG_HEAD) : cut]
            msg_id = _fast_id(raw)
            if msg_id is not None and raw.endswith(b"}"):
                plain = _TAIL.fullmatch(data, cut + 1)
                if plain is not None:
                    try:
                        channel, reason = plain.group(1).decode(), plain.group(3).decode()
                    except UnicodeDecodeError:
                        pass  # the decoding rule below refuses it
                    else:
                        seq, gen = int(plain.group(2)), int(plain.group(4))
                        return Entry(m, owner, raw, msg_id, channel, seq, reason, gen)
                tail = decode_untrusted(b"{" + data[cut + 1 :])
                if isinstance(tail, Decoded):
                    return _entry(m, owner, tail.value, raw, msg_id)
    outcome = decode_untrusted(data)
    if isinstance(outcome, Refused):
        return outcome
    body = outcome.value
    if not isinstance(body.get("msg"), dict):
        return Refused("invalid-record", "a dinbox entry without a `msg` object")
    raw = json.dumps(body["msg"], ensure_ascii=False, separators=(",", ":")).encode()
    return _entry(m, owner, body, raw, body["msg"].get("id"))


def _fast_id(raw: bytes) -> str | None:
    """The ``id`` of a message whose JSON starts with a plain ``{"id":"…"`` (the usual layout)."""
    if not raw.startswith(_ID_HEAD):
        return None
    end = raw.find(b'"', len(_ID_HEAD))
    value = raw[len(_ID_HEAD) : end]
    if end < 0 or b"\\" in value:
        return None
    return value.decode()


def _entry(m: Msg, owner: str, body: dict[str, Any], raw: bytes, msg_id: Any) -> Entry | Refused:
    channel, seq = body.get("channel"), body.get("seq")
    if not isinstance(channel, str) or not isinstance(seq, int | float) or isinstance(seq, bool):
        return Refused("invalid-record", "a dinbox entry without a string channel and a seq")
    reason, generation = str(body.get("reason")), body.get("generation")
    return Entry(m, owner, raw, msg_id, channel, int(seq), reason, generation)


_deliveries = deliveries


def entry_action(state: AclState, e: Entry, member: MemberEntry | None) -> ReaderAction:
    """``gate_action_in_state`` for one entry, its delivery count read (off the ack subject)
    only when it can change the answer: a deferral past the redelivery cap gives up."""
    if e.reason == "durable-channel":
        if state == "allowed" and member is not None:  # the usual case: the interval decides
            return _ALLOWED_DURABLE[durable_eligible(member.record, e.seq)]
        kind: Any = "durable-channel"
    else:  # any reason but durable-channel is gated like a live mention (the ACL only)
        kind = "live-mention"
    record = member.record if member is not None else None
    action = gate_action_in_state(state, kind, record, e.seq, 1)
    if action is ReaderAction.DEFER:
        action = gate_action_in_state(state, kind, record, e.seq, _deliveries(e.msg))
    return action


def dlv_items(
    transfers: Iterable[Entry], dlv_subject: Callable[[str], str], targets: DlvTargets
) -> list[tuple[str, bytes, str]]:
    """``(DLV subject, body, Nats-Msg-Id)`` of each transfer: the id is
    ``plane3_msg_id(msg id, owner, String(generation))``; its owner-and-generation end is
    worked out once per owner and generation (``targets``), not per copy."""
    if len(targets) > MEMO_KEPT:
        targets.clear()
    items: list[tuple[str, bytes, str]] = []
    for e in transfers:
        gen = e.generation
        if type(gen) is int:
            target = targets.get((e.owner, gen))
            if target is None:
                target = (dlv_subject(e.owner), f":{e.owner}:{js_string(gen)}")
                targets[(e.owner, gen)] = target
            items.append((target[0], e.raw, f"{e.msg_id}{target[1]}"))
        else:  # whatever else a reference-written entry carries there, as String() prints it
            generation = js_string(ABSENT if gen is None else gen)
            items.append(
                (dlv_subject(e.owner), e.raw, plane3_msg_id(e.msg_id, e.owner, generation))
            )
    return items


class TrustedReader(ConsumerLoop):
    def __init__(self, ctx: DaemonContext, *, batch: int = 256, depth: int = 8) -> None:
        super().__init__(
            ctx,
            ctx.inbox_stream,
            inbox_reader_config(ctx.space),
            batch=batch,
            # Credit never above max_ack_pending: the server would only hold the surplus back.
            credit=min(2 * batch, DINBOX_MAX_ACK_PENDING),
            depth=depth,
            task_name="plane3-reader",
        )
        self._acl_states: AclStates = {}
        self._dlv_targets: DlvTargets = {}
        self._owners: Owners = {}
        # set once the batch taken last has gated and started its DLV publishes
        self._gated_before: asyncio.Event | None = None

    async def stop(self) -> None:
        await super().stop()
        self._gated_before = None  # a completion cancelled before it ran never set its event

    async def _retry_or_dead_letter(self, e: Entry, action: ReaderAction, what: str) -> None:
        ctx = self.ctx
        if action is ReaderAction.GIVE_UP:
            ctx.on_error(PlaneThreeGaveUp(f"plane-3 reader: gave up {what} {e.owner}"))
            await ctx.dead_letter(
                e.msg,
                ctx.inbox_stream,
                "delivery-failed",
                f"plane-3 reader gave up {what} {e.owner} after {_deliveries(e.msg)} deliveries",
                term=True,
            )
        else:
            await e.msg.nak(delay=DEFER_DELAY_S)

    async def dispatch(self, msgs: list[Msg]) -> Coroutine[Any, Any, None] | None:
        """Decode a batch and start its fresh registry reads; returns the completion that
        gates it, transfers it and acks.

        The reads (a freshness barrier: one STREAM.INFO round trip per bucket, fresh_cache.py)
        are issued here, after the batch was received, but awaited in the completion, so the
        loop takes and decodes the next batch while they are on the wire: awaited here, they
        were most of the reader's turn (issue 16). Completions gate and publish in batch order
        (each waits for the one before to have started its DLV publishes), so DLV order per
        owner and the ACL verdict cache see the batches as they were taken.
        """
        ctx = self.ctx
        entries: list[Entry] = []
        drops: list[Msg] = []
        owners = self._owners
        if len(owners) > MEMO_KEPT:
            owners.clear()
        for m in msgs:
            owner = owners.get(m.subject, _NOT_SEEN)
            if owner == _NOT_SEEN:
                owner = owners[m.subject] = parse_dinbox_owner(m.subject)
            if owner is None:  # as the reference: an unparseable owner is dropped
                ctx.counters.dropped += 1
                drops.append(m)
                continue
            entry = decode_entry(m, owner)
            if isinstance(entry, Refused):
                await ctx.dead_letter(m, ctx.inbox_stream, entry.reason, entry.detail)
                continue
            entries.append(entry)
            ctx.chat_seq_routed(entry.seq)  # a fan-out routed that CHAT message (chat_gaps.py)
        if not entries:
            await self._ack_all(drops)
            ctx.entries_decided(len(msgs))
            return None
        reads = asyncio.ensure_future(
            self._timed_reads(
                (e.owner for e in entries),
                ((e.channel, e.owner) for e in entries if e.durable_channel),
            )
        )
        before, mine = self._gated_before, asyncio.Event()
        self._gated_before = mine
        return self._complete(msgs, entries, drops, reads, before, mine)

    async def _timed_reads(
        self, owners: Iterable[str], member_keys: Iterable[tuple[str, str]]
    ) -> tuple[
        dict[str, AclEntry | None | Exception],
        dict[tuple[str, str], MemberEntry | None | Exception],
    ]:
        if wait_stats.STATS is None:
            return await self.ctx.batch_reads(owners, member_keys)
        t0 = time.perf_counter()
        try:
            return await self.ctx.batch_reads(owners, member_keys)
        finally:
            wait_stats.STATS.add("reader.reads", time.perf_counter() - t0)

    async def _complete(
        self,
        msgs: list[Msg],
        entries: list[Entry],
        drops: list[Msg],
        reads: asyncio.Future[
            tuple[
                dict[str, AclEntry | None | Exception],
                dict[tuple[str, str], MemberEntry | None | Exception],
            ]
        ],
        before: asyncio.Event | None,
        mine: asyncio.Event,
    ) -> None:
        ctx = self.ctx
        try:
            try:
                acls, members = await reads
                if before is not None:
                    await before.wait()  # gate and publish in batch order
                transfers, futures = await self._gate(msgs, entries, drops, acls, members)
            finally:
                mine.set()
            if futures is not None:
                await self._settle_and_ack(transfers, futures)
        except asyncio.CancelledError:
            reads.cancel()
            self.pump.give_back(msgs)  # nak'd once the pump is closed
            raise
        except Exception as exc:  # noqa: BLE001 - as a batch that threw in the loop
            ctx.on_error(exc)
            await self.fail_batch(msgs, exc)

    async def _gate(
        self,
        msgs: list[Msg],
        entries: list[Entry],
        drops: list[Msg],
        acls: dict[str, AclEntry | None | Exception],
        members: dict[tuple[str, str], MemberEntry | None | Exception],
    ) -> tuple[list[Entry], PendingBatch | None]:
        """Decide each entry: drop and defer at once, start the transfers.

        The ACL verdict is worked out once per owner, channel and ACL value read (the fresh
        read, fresh_cache.py, hands back the same object while the row is unchanged, and a new
        one once it changed), and what is dropped is acked in one go.
        """
        ctx = self.ctx
        transfers: list[Entry] = []
        states = self._acl_states
        if len(states) > ACL_STATES_KEPT:
            states.clear()
        for e in entries:
            acl = acls[e.owner]
            member: MemberEntry | None | Exception = members.get((e.channel, e.owner))
            if isinstance(acl, Exception) or isinstance(member, Exception):
                ctx.on_error(acl if isinstance(acl, Exception) else member)  # type: ignore[arg-type]
                ctx.counters.naked += 1
                await e.msg.nak()
                continue
            key = (e.owner, e.channel)
            known = states.get(key)
            if known is not None and known[0] is acl:
                state = known[1]
            else:  # a new ACL read (a changed row is a new object) is gated afresh
                state = acl_state(acl, e.channel)
                states[key] = (acl, state)
            action = entry_action(state, e, member)
            if action is ReaderAction.TRANSFER:
                transfers.append(e)
            elif action in (ReaderAction.DEFER, ReaderAction.GIVE_UP):
                ctx.counters.deferred += 1
                await self._retry_or_dead_letter(e, action, "on entry for unknown owner")
            else:  # DROP
                ctx.counters.dropped += 1
                drops.append(e.msg)
        await self._ack_all(drops)
        ctx.entries_decided(len(msgs) - len(transfers))  # transfers count once acked
        if not transfers:
            return transfers, None
        items = dlv_items(transfers, ctx.dlv_subject, self._dlv_targets)
        return transfers, await ctx.publish_start(items)

    async def _ack_all(self, msgs: list[Msg]) -> None:
        """Ack in one batch (mesh/batch_send.py); one by one if the batch cannot be sent."""
        if not msgs:
            return
        try:
            await ack_many(self.ctx.conn.nc, msgs)
        except Exception:  # noqa: BLE001 - as the single acks below would report it
            for m in msgs:
                if not m.is_acked:
                    await m.ack()

    async def _settle_and_ack(self, transfers: list[Entry], futures: PendingBatch) -> None:
        ctx = self.ctx
        t0 = time.perf_counter() if wait_stats.STATS is not None else 0.0
        results = await ctx.settle(futures)
        if wait_stats.STATS is not None:
            wait_stats.STATS.add("reader.pubacks", time.perf_counter() - t0)
        ctx.entries_decided(len(transfers))
        # Each entry is acked only after its own DLV copy's PubAck said stored (issue 11).
        stored = [e.msg for e, ok in zip(transfers, results, strict=True) if ok]
        ctx.counters.transferred += len(stored)
        await self._ack_all(stored)
        for e, ok in zip(transfers, results, strict=True):
            if not ok:
                ctx.counters.transfer_failures += 1
                action = transfer_failed_action(_deliveries(e.msg))
                await self._retry_or_dead_letter(e, action, "transferring entry for owner")


class PlaneThreeGaveUp(RuntimeError):
    """The reader dead-lettered an entry after the redelivery ceiling."""
