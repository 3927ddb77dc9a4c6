"""The trusted reader (PROTOCOL §5.4): the authorization gate between INBOX and DLV.

Every dinbox entry is checked against the owner's read ACL and (for ``durable-channel``) the
owner's membership interval, both read fresh from KV after the entry was received, so a
narrowed ACL or a leave applies to every entry read after it was written. The decision is the
table :data:`READER_TABLE`; the delivery count decides between retry and dead letter.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from typing import Any, Literal

from nats.aio.msg import Msg

from cotal_tui.mesh.acl import AclEntry
from cotal_tui.mesh.daemon_context import DaemonContext
from cotal_tui.mesh.fanout import create_durable
from cotal_tui.mesh.members import MemberEntry
from cotal_tui.mesh.pull import ConsumerGone, PullPump
from cotal_tui.protocol.channels import channel_in_allow
from cotal_tui.protocol.consumers import inbox_reader_config
from cotal_tui.protocol.membership import durable_eligible
from cotal_tui.protocol.names import DINBOX_MAX_ACK_PENDING, READER_MAX_REDELIVERIES, reader_durable
from cotal_tui.protocol.subjects import dlv_subject, parse_dinbox_owner

Acl = Literal["unknown", "outside", "covers"]
Action = Literal["defer", "drop", "transfer"]
DEFER_DELAY_S = 2.0

# (acl, is durable-channel, membership eligible) -> action; None = any. First match wins.
READER_TABLE: tuple[tuple[Acl, bool | None, bool | None, Action], ...] = (
    ("unknown", None, None, "defer"),  # no ACL row yet: maybe not provisioned yet
    ("outside", None, None, "drop"),  # revoked or narrowed
    ("covers", False, None, "transfer"),  # live-mention: the ACL is the only gate
    ("covers", True, True, "transfer"),  # inside the membership interval
    ("covers", True, False, "drop"),  # missing record, before join, or after leave
)


def reader_action(acl: Acl, durable_channel: bool, eligible: bool | None) -> Action:
    for row_acl, row_durable, row_eligible, action in READER_TABLE:
        if row_acl != acl:
            continue
        if row_durable is not None and row_durable != durable_channel:
            continue
        if row_eligible is not None and row_eligible != eligible:
            continue
        return action
    raise AssertionError(f"reader table has no row for {(acl, durable_channel, eligible)}")


@dataclass(frozen=True)
class Entry:
    msg: Msg
    owner: str
    body: dict[str, Any]
    channel: str
    seq: int
    reason: str
    generation: Any

    @property
    def durable_channel(self) -> bool:
        return self.reason == "durable-channel"


def decode_entry(m: Msg, owner: str) -> Entry | None:
    try:
        body = json.loads(m.data)
    except ValueError:
        return None
    if not isinstance(body, dict) or not isinstance(body.get("msg"), dict):
        return None
    channel, seq = body.get("channel"), body.get("seq")
    if not isinstance(channel, str) or not isinstance(seq, int | float) or isinstance(seq, bool):
        return None
    return Entry(m, owner, body, channel, int(seq), str(body.get("reason")), body.get("generation"))


def _deliveries(m: Msg) -> int:
    try:
        return int(m.metadata.num_delivered)
    except Exception:  # noqa: BLE001 - not a JetStream message: treat as first delivery
        return 1


class TrustedReader:
    def __init__(self, ctx: DaemonContext, *, batch: int = 256) -> None:
        self.ctx = ctx
        self.batch = batch
        self.durable = reader_durable()
        # Credit never above max_ack_pending: the server would only hold the surplus back.
        self.pump = PullPump(
            ctx.conn, ctx.inbox_stream, self.durable, batch=min(2 * batch, DINBOX_MAX_ACK_PENDING)
        )
        self._task: asyncio.Task[None] | None = None

    async def ensure_consumer(self) -> None:
        try:
            await create_durable(
                self.ctx, self.ctx.inbox_stream, inbox_reader_config(self.ctx.space)
            )
        except Exception as exc:  # noqa: BLE001
            self.ctx.on_error(exc)

    async def start(self) -> None:
        await self.ensure_consumer()
        await self.pump.start()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="plane3-reader")

    async def rearm(self) -> None:
        await self.ensure_consumer()
        self.pump.reset()

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        await self.pump.stop()

    async def _run(self) -> None:
        while True:
            try:
                msgs = await self.pump.take(self.batch, 1.0)
                if msgs:
                    await self.handle(msgs)
            except asyncio.CancelledError:
                raise
            except ConsumerGone as exc:
                self.ctx.on_error(exc)
                await self.rearm()
            except Exception as exc:  # noqa: BLE001
                self.ctx.on_error(exc)
                await asyncio.sleep(0.5)

    async def _retry_or_dead_letter(self, e: Entry, what: str) -> None:
        ctx = self.ctx
        if _deliveries(e.msg) >= READER_MAX_REDELIVERIES:
            ctx.counters.dead_lettered += 1
            ctx.on_error(PlaneThreeGaveUp(f"plane-3 reader: gave up {what} {e.owner}"))
            await e.msg.term()
        else:
            await e.msg.nak(delay=DEFER_DELAY_S)

    async def handle(self, msgs: list[Msg]) -> None:
        ctx = self.ctx
        entries: list[Entry] = []
        for m in msgs:
            owner = parse_dinbox_owner(m.subject)
            entry = decode_entry(m, owner) if owner is not None else None
            if entry is None:
                ctx.counters.dropped += 1
                await m.ack()
                continue
            entries.append(entry)
        if not entries:
            return
        acls = await ctx.acls_fresh(e.owner for e in entries)
        member_keys = [
            (e.channel, e.owner)
            for e in entries
            if e.durable_channel
            and isinstance(acls[e.owner], AclEntry)
            and channel_in_allow(acls[e.owner].allow_subscribe, e.channel)  # type: ignore[union-attr]
        ]
        members = await ctx.members_fresh(member_keys) if member_keys else {}

        transfers: list[Entry] = []
        for e in entries:
            acl = acls[e.owner]
            member: MemberEntry | None | Exception = members.get((e.channel, e.owner))
            if isinstance(acl, Exception) or isinstance(member, Exception):
                ctx.on_error(acl if isinstance(acl, Exception) else member)  # type: ignore[arg-type]
                ctx.counters.naked += 1
                await e.msg.nak()
                continue
            if acl is None:
                verdict: Acl = "unknown"
            elif channel_in_allow(acl.allow_subscribe, e.channel):
                verdict = "covers"
            else:
                verdict = "outside"
            eligible = (
                member is not None and durable_eligible(member.record, e.seq)
                if e.durable_channel and verdict == "covers"
                else None
            )
            action = reader_action(verdict, e.durable_channel, eligible)
            if action == "defer":
                ctx.counters.deferred += 1
                await self._retry_or_dead_letter(e, "on entry for unknown owner")
            elif action == "drop":
                ctx.counters.dropped += 1
                await e.msg.ack()
            else:
                transfers.append(e)
        if not transfers:
            return
        items = [
            (
                dlv_subject(ctx.space, e.owner),
                json.dumps(e.body["msg"], ensure_ascii=False, separators=(",", ":")).encode(),
                f"{e.body['msg'].get('id')}:{e.owner}:{_js_number(e.generation)}",
            )
            for e in transfers
        ]
        results = await ctx.publish_many(items)
        for e, ok in zip(transfers, results, strict=True):
            if ok:
                ctx.counters.transferred += 1
                await e.msg.ack()
            else:
                await self._retry_or_dead_letter(e, "transferring entry for owner")


def _js_number(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "undefined" if value is None else str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class PlaneThreeGaveUp(RuntimeError):
    """The reader dead-lettered an entry after the redelivery ceiling."""
