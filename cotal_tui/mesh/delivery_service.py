"""The ``ctl.delivery`` control service (PROTOCOL §4.2, §5.2, §5.5, §5.6).

Order of checks on every request, as the reference does it: the boundReply guard first (a
reply subject outside ``<request subject>.reply.`` is dropped without a reply: the daemon may
publish into every agent's reply lane, so it must never be aimed at a peer's), then JSON, then
the sender check, then the op with its argument validation in the reference's order and wording.
The caller's ACL is read fresh from the registry for every join.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from collections.abc import Awaitable, Callable
from typing import Any

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.errors import NotFoundError

from cotal_tui.mesh.acl import read_acl
from cotal_tui.mesh.daemon_context import DaemonContext, entry_payload
from cotal_tui.mesh.fanout import stream_seq
from cotal_tui.mesh.members import (
    activate_member,
    commit_member,
    now_ms,
    read_member,
    tombstone_member,
)
from cotal_tui.mesh.pull import fetch_no_wait
from cotal_tui.protocol.channels import assert_valid_channel, channel_in_allow, is_concrete_channel
from cotal_tui.protocol.errors import InvalidChannel, StaleMembershipWrite
from cotal_tui.protocol.jsstr import js_trim
from cotal_tui.protocol.models import (
    REASON_ACTIVATION_SUPERSEDED,
    REASON_CATCHUP_EVICTED,
    MembershipRecord,
)
from cotal_tui.protocol.names import (
    DELIVERY_QUEUE_GROUP,
    HISTORY_BATCH,
    HISTORY_INACTIVE_THRESHOLD_MS,
    MAX_MSGS_PER_SUBJECT,
    catchup_durable,
    chat_hist_durable,
    fanout_durable,
)
from cotal_tui.protocol.subjects import is_bound_reply, parse_subject

SENDER_MISMATCH = "sender mismatch — request rejected"


class ControlRefused(Exception):
    """A request the service answers with ``{ok: false, error: <message>}``."""


class ReplyGuardDrop(RuntimeError):
    """A ``ctl.delivery`` request whose reply subject is not in its own lane (dropped silently)."""


def _channel_arg(op: str, args: dict[str, Any]) -> str:
    channel = args.get("channel")
    if not isinstance(channel, str) or not js_trim(channel):
        raise ControlRefused(f"{op}: channel must be a non-blank string")
    assert_valid_channel(channel)
    if not is_concrete_channel(channel):
        raise ControlRefused(
            f'{op}: "{channel}" must be a concrete channel (durable membership is '
            "per-concrete-channel, not wildcard)"
        )
    return channel


def _finite_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class DeliveryService:
    def __init__(self, ctx: DaemonContext) -> None:
        self.ctx = ctx
        self.subject = f"{ctx.prefix}.ctl.delivery.*"
        self._sub: Subscription | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._hist_lock = asyncio.Lock()
        self._ops: dict[str, Callable[[str, dict[str, Any]], Awaitable[Any]]] = {
            "durableJoin": self._op_join,
            "durableLeave": self._op_leave,
            "listMemberships": self._op_list,
        }

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        await self._unsubscribe()
        self._sub = await self.ctx.conn.nc.subscribe(
            self.subject, queue=DELIVERY_QUEUE_GROUP, cb=self._on_msg
        )

    async def rearm(self) -> None:
        """Drop the stale subscription and bind again (as the reference does on reconnect)."""
        await self.start()

    async def stop(self) -> None:
        await self._unsubscribe()
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(BaseException):
                await t

    async def _unsubscribe(self) -> None:
        sub, self._sub = self._sub, None
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    # -- requests ----------------------------------------------------------------------------

    async def _on_msg(self, msg: Msg) -> None:
        if not is_bound_reply(msg.subject, msg.reply):
            self.ctx.on_error(
                ReplyGuardDrop(
                    f"ctl.delivery: dropped a request on {msg.subject} whose reply subject "
                    f"{msg.reply!r} is not under {msg.subject}.reply. (no reply sent)"
                )
            )
            return
        task = asyncio.get_running_loop().create_task(self._serve(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, msg: Msg) -> None:
        reply = await self.handle(msg.subject, msg.data)
        with contextlib.suppress(Exception):
            await self.ctx.conn.nc.publish(
                msg.reply, json.dumps(reply, ensure_ascii=False, separators=(",", ":")).encode()
            )

    async def handle(self, subject: str, data: bytes) -> dict[str, Any]:
        """The reply for one request that passed the boundReply guard."""
        try:
            req = json.loads(data)
        except ValueError as exc:
            return {"ok": False, "error": str(exc)}
        parsed = parse_subject(subject)
        sender = req.get("from") if isinstance(req, dict) else None
        caller = sender.get("id") if isinstance(sender, dict) else None
        if parsed is None or parsed.kind != "ctl" or caller != parsed.sender:
            return {"ok": False, "error": SENDER_MISMATCH}
        assert isinstance(req, dict) and isinstance(caller, str)
        op = req.get("op")
        args = req.get("args") if isinstance(req.get("args"), dict) else {}
        handler = self._ops.get(op) if isinstance(op, str) else None
        if handler is None:
            shown = op if isinstance(op, str) else ("undefined" if op is None else json.dumps(op))
            return {
                "ok": False,
                "error": f'op "{shown}" not supported on the delivery control service',
            }
        try:
            return {"ok": True, "data": await handler(caller, args)}
        except (ControlRefused, InvalidChannel, StaleMembershipWrite) as exc:
            return {"ok": False, "error": str(exc)}
        except Exception as exc:  # noqa: BLE001 - any failure is the caller's answer too
            self.ctx.on_error(exc)
            return {"ok": False, "error": str(exc) or type(exc).__name__}

    async def _op_join(self, caller: str, args: dict[str, Any]) -> dict[str, Any]:
        channel = _channel_arg("durableJoin", args)
        acl = await read_acl(self.ctx.acls, caller)
        if acl is None:
            raise ControlRefused(
                f"durableJoin: no read ACL on record for {caller} "
                "(not provisioned for durable delivery)"
            )
        if not channel_in_allow(acl.allow_subscribe, channel):
            allowed = ", ".join(acl.allow_subscribe)
            raise ControlRefused(f'channel "{channel}" is not within your read ACL [{allowed}]')
        async with self._lock(channel, caller):
            result = await self.durable_join_for(caller, channel)
        self.ctx.counters.joins += 1
        return result

    async def _op_leave(self, caller: str, args: dict[str, Any]) -> dict[str, Any]:
        channel = _channel_arg("durableLeave", args)
        generation = args.get("generation")
        if not _finite_number(generation):
            raise ControlRefused(
                "durableLeave: a finite generation is required (fail-closed stale-leave guard)"
            )
        async with self._lock(channel, caller):
            if await read_member(self.ctx.members, channel, caller) is None:
                return {"channel": channel, "alreadyLeft": True}
            await self.durable_leave_for(caller, channel, int(generation))
        self.ctx.counters.leaves += 1
        return {"channel": channel}

    async def _op_list(self, caller: str, args: dict[str, Any]) -> dict[str, Any]:
        rows = [
            {"channel": r.channel, "generation": r.generation, "activated": bool(r.activated)}
            for r in self.ctx.index.memberships_of(caller)
            if r.leave_cursor is None
        ]
        return {"memberships": rows}

    def _lock(self, channel: str, owner: str) -> asyncio.Lock:
        return self._locks.setdefault((channel, owner), asyncio.Lock())

    # -- join and leave ----------------------------------------------------------------------

    async def chat_last_seq(self) -> int:
        info = await self.ctx.conn.js.stream_info(self.ctx.chat_stream)
        return int(info.state.last_seq)

    async def fanout_delivered(self) -> int:
        try:
            info = await self.ctx.conn.js.consumer_info(self.ctx.chat_stream, fanout_durable())
        except NotFoundError:
            return 0
        return int(getattr(info.delivered, "stream_seq", 0) or 0)

    async def durable_join_for(self, owner: str, channel: str) -> dict[str, Any]:
        ctx = self.ctx
        existing = await read_member(ctx.members, channel, owner)
        rec = existing.record if existing else None
        is_open = rec is not None and rec.state == "durable-active" and rec.leave_cursor is None
        if is_open and rec is not None and rec.activated:
            return {"durable": True, "generation": rec.generation}
        if is_open and rec is not None:
            join_cursor, generation = rec.join_cursor, rec.generation
        else:
            join_cursor = await self.chat_last_seq()
            generation = (rec.generation if rec else 0) + 1
            written = await commit_member(
                ctx.members,
                MembershipRecord(
                    channel=channel,
                    owner=owner,
                    state="durable-active",
                    join_cursor=join_cursor,
                    generation=generation,
                    activated=False,
                    writer_identity=ctx.daemon_id,
                    updated_at=now_ms(),
                ),
            )
            ctx.index.apply_entry(written)  # routes from here on (see member_index)
        fence = max(await self.chat_last_seq(), await self.fanout_delivered())
        evicted = await self.catchup_copy(owner, channel, join_cursor, fence, generation)
        if evicted:
            with contextlib.suppress(StaleMembershipWrite):
                ctx.index.apply_entry(
                    await tombstone_member(
                        ctx.members, channel, owner, fence, ctx.daemon_id, generation
                    )
                )
            return {"durable": False, "reason": REASON_CATCHUP_EVICTED, "generation": generation}
        activated = await activate_member(ctx.members, channel, owner, generation, join_cursor)
        if activated is None:
            return {
                "durable": False,
                "reason": REASON_ACTIVATION_SUPERSEDED,
                "generation": generation,
            }
        ctx.index.apply_entry(activated)
        return {"durable": True, "generation": generation}

    async def durable_leave_for(self, owner: str, channel: str, generation: int) -> None:
        ctx = self.ctx
        leave_cursor = await self.chat_last_seq()
        ctx.index.apply_entry(
            await tombstone_member(
                ctx.members, channel, owner, leave_cursor, ctx.daemon_id, generation
            )
        )

    # -- activation catch-up -----------------------------------------------------------------

    def _chat_filter(self, channel: str) -> str:
        return f"{self.ctx.prefix}.chat.*.{channel}"

    async def _create_ephemeral(self, name: str, channel: str, start_seq: int) -> None:
        ctx = self.ctx
        config = {
            "name": name,
            "filter_subject": self._chat_filter(channel),
            "deliver_policy": "by_start_sequence",
            "opt_start_seq": start_seq,
            "ack_policy": "none",
            "mem_storage": True,
            "inactive_threshold": HISTORY_INACTIVE_THRESHOLD_MS * 1_000_000,
        }
        req = {"stream_name": ctx.chat_stream, "config": config}
        resp = await ctx.conn.nc.request(
            f"$JS.API.CONSUMER.CREATE.{ctx.chat_stream}.{name}", json.dumps(req).encode(), timeout=5
        )
        body = json.loads(resp.data or b"{}")
        if "error" in body:
            raise CatchupFailed(
                f"cannot create {name} on {ctx.chat_stream}: "
                f"{body['error'].get('description', body['error'])}"
            )

    async def _delete_consumer(self, name: str) -> None:
        with contextlib.suppress(NotFoundError):
            await self.ctx.conn.js.delete_consumer(self.ctx.chat_stream, name)

    async def window_evicted(self, channel: str, join_cursor: int) -> bool:
        ctx = self.ctx
        info = await ctx.conn.js.stream_info(
            ctx.chat_stream, subjects_filter=self._chat_filter(channel)
        )
        counts = info.state.subjects or {}
        if max(counts.values(), default=0) < MAX_MSGS_PER_SUBJECT:
            return False
        name = chat_hist_durable(ctx.daemon_id)
        async with self._hist_lock:  # one chathist_<daemonId> at a time across joins
            await self._delete_consumer(name)
            try:
                await self._create_ephemeral(name, channel, 1)
                first = await fetch_no_wait(ctx.conn, ctx.chat_stream, name, 1)
            finally:
                await self._delete_consumer(name)
        if not first:
            return False
        return stream_seq(first[0]) > join_cursor + 1

    async def catchup_copy(
        self, owner: str, channel: str, join_cursor: int, fence: int, generation: int
    ) -> bool:
        """Copy (joinCursor, fence] of the channel into the owner's dinbox; True if evicted."""
        if fence <= join_cursor:
            return False
        ctx = self.ctx
        evicted = await self.window_evicted(channel, join_cursor)
        name = catchup_durable(owner, generation)
        await self._delete_consumer(name)
        await self._create_ephemeral(name, channel, join_cursor + 1)
        try:
            while True:
                msgs = await fetch_no_wait(ctx.conn, ctx.chat_stream, name, HISTORY_BATCH)
                items: list[tuple[str, bytes, str]] = []
                past_fence = False
                for m in msgs:
                    seq = stream_seq(m)
                    if seq > fence:
                        past_fence = True
                        break
                    parsed = parse_subject(m.subject)
                    try:
                        data = json.loads(m.data)
                    except ValueError:
                        continue
                    sender = data.get("from") if isinstance(data, dict) else None
                    if parsed is None or not isinstance(sender, dict):
                        continue
                    if sender.get("id") != parsed.sender or parsed.sender == owner:
                        continue
                    items.append(
                        (
                            ctx.dinbox_subject(owner),
                            entry_payload(m.data, channel, seq, "durable-channel", generation),
                            f"{data.get('id')}:{owner}:{generation}",
                        )
                    )
                ctx.entries_written(len(items))
                results = await ctx.publish_many(items)
                ctx.entries_decided(results.count(False))
                if not all(results):
                    raise CatchupFailed(
                        f"activation catch-up for {channel}/{owner}: "
                        f"{results.count(False)} dinbox writes got no PubAck; retry the join"
                    )
                ctx.counters.fanned_out += len(items)
                if past_fence or len(msgs) < HISTORY_BATCH:
                    break
        finally:
            await self._delete_consumer(name)
        return evicted


class CatchupFailed(RuntimeError):
    pass
