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
from collections.abc import Awaitable, Callable
from typing import Any

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.errors import NotFoundError

from cotal_tui.delivery.acl import read_acl
from cotal_tui.delivery.daemon_context import DaemonContext, entry_payload
from cotal_tui.delivery.fanout import stream_seq
from cotal_tui.delivery.members import (
    activate_member,
    commit_member,
    now_ms,
    read_member,
    tombstone_member,
)
from cotal_tui.mesh.pull import fetch_no_wait
from cotal_tui.mesh.tasks import cancel_and_wait
from cotal_tui.protocol.delivery import (
    OP_DURABLE_JOIN,
    OP_DURABLE_LEAVE,
    OP_LIST_MEMBERSHIPS,
    DeliveryRequestError,
    activation_fence,
    at_retention_cap,
    catchup_sender_wanted,
    channel_arg,
    chat_origin,
    check_sender_id,
    is_open,
    join_acl_check,
    join_plan,
    leave_generation_arg,
    list_memberships_result,
    new_membership,
    unsupported_op,
    window_evicted,
)
from cotal_tui.protocol.errors import InvalidChannel, StaleMembershipWrite
from cotal_tui.protocol.models import (
    REASON_ACTIVATION_SUPERSEDED,
    REASON_CATCHUP_EVICTED,
    CotalMessage,
)
from cotal_tui.protocol.names import (
    DELIVERY_QUEUE_GROUP,
    HISTORY_BATCH,
    HISTORY_INACTIVE_THRESHOLD_MS,
    catchup_durable,
    chat_hist_durable,
    fanout_durable,
    plane3_msg_id,
)
from cotal_tui.protocol.subjects import is_bound_reply
from cotal_tui.protocol.untrusted import Refused, decode_untrusted

# Every check and reply string below comes from ``cotal_tui.protocol.delivery`` (tested there
# against the reference's recorded replies); this module only does the I/O around them.


class ReplyGuardDrop(RuntimeError):
    """A ``ctl.delivery`` request whose reply subject is not in its own lane (dropped silently)."""


# Not a reference op: `status` asks for the daemon's own figures (evictedBeforeRouting).
OP_DELIVERY_STATS = "deliveryStats"


class DeliveryService:
    def __init__(self, ctx: DaemonContext) -> None:
        self.ctx = ctx
        self.subject = f"{ctx.prefix}.ctl.delivery.*"
        self._sub: Subscription | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._hist_lock = asyncio.Lock()
        self._ops: dict[str, Callable[[str, dict[str, Any]], Awaitable[Any]]] = {
            OP_DURABLE_JOIN: self._op_join,
            OP_DURABLE_LEAVE: self._op_leave,
            OP_LIST_MEMBERSHIPS: self._op_list,
            OP_DELIVERY_STATS: self._op_stats,
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
        await cancel_and_wait(list(self._tasks))

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
        try:
            reply = await self.handle(msg.subject, msg.data)
        except Exception as exc:  # noqa: BLE001 - every request gets an answer, never a dead task
            self.ctx.on_error(exc)
            reply = {"ok": False, "error": str(exc) or type(exc).__name__}
        with contextlib.suppress(Exception):
            await self.ctx.conn.nc.publish(
                msg.reply, json.dumps(reply, ensure_ascii=False, separators=(",", ":")).encode()
            )

    async def handle(self, subject: str, data: bytes) -> dict[str, Any]:
        """The reply for one request that passed the boundReply guard."""
        outcome = decode_untrusted(data, want_object=False)
        if isinstance(outcome, Refused):
            return {"ok": False, "error": f"request refused ({outcome})"}
        req = outcome.value
        sender = req.get("from") if isinstance(req, dict) else None
        caller = sender.get("id") if isinstance(sender, dict) else None
        mismatch = check_sender_id(subject, caller)
        if mismatch is not None:
            return {"ok": False, "error": mismatch}
        assert isinstance(req, dict) and isinstance(caller, str)
        op = req.get("op")
        args = req.get("args") if isinstance(req.get("args"), dict) else {}
        handler = self._ops.get(op) if isinstance(op, str) else None
        if handler is None:
            shown = op if isinstance(op, str) else ("undefined" if op is None else json.dumps(op))
            return {"ok": False, "error": unsupported_op(shown)}
        try:
            return {"ok": True, "data": await handler(caller, args)}
        except (DeliveryRequestError, InvalidChannel, StaleMembershipWrite) as exc:
            return {"ok": False, "error": str(exc)}
        except Exception as exc:  # noqa: BLE001 - any failure is the caller's answer too
            self.ctx.on_error(exc)
            return {"ok": False, "error": str(exc) or type(exc).__name__}

    async def _op_join(self, caller: str, args: dict[str, Any]) -> dict[str, Any]:
        channel = channel_arg(OP_DURABLE_JOIN, args)
        join_acl_check(caller, channel, await read_acl(self.ctx.acls, caller))
        async with self._lock(channel, caller):
            result = await self.durable_join_for(caller, channel)
        self.ctx.counters.joins += 1
        return result

    async def _op_leave(self, caller: str, args: dict[str, Any]) -> dict[str, Any]:
        channel = channel_arg(OP_DURABLE_LEAVE, args)
        generation = leave_generation_arg(args)
        async with self._lock(channel, caller):
            if await read_member(self.ctx.members, channel, caller) is None:
                return {"channel": channel, "alreadyLeft": True}
            await self.durable_leave_for(caller, channel, generation)
        self.ctx.counters.leaves += 1
        return {"channel": channel}

    async def _op_stats(self, caller: str, args: dict[str, Any]) -> dict[str, Any]:
        """This implementation's extension (the reference answers it "unsupported op"): what
        `status --json` shows in ``delivery`` that only the daemon knows."""
        return self.ctx.delivery_stats()

    async def _op_list(self, caller: str, args: dict[str, Any]) -> dict[str, Any]:
        return list_memberships_result(self.ctx.index.memberships_of(caller)).to_wire()

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
        # an open record keeps its cursor: CHAT's last seq is only read for a fresh generation
        plan = join_plan(rec, 0 if is_open(rec) else await self.chat_last_seq())
        if plan.done:
            return {"durable": True, "generation": plan.generation}
        join_cursor, generation = plan.join_cursor, plan.generation
        if plan.commit:
            written = await commit_member(
                ctx.members, new_membership(channel, owner, plan, ctx.daemon_id, now_ms())
            )
            await ctx.member_written(written)  # routes from here on (see member_index)
        fence = activation_fence(await self.chat_last_seq(), await self.fanout_delivered())
        evicted = await self.catchup_copy(owner, channel, join_cursor, fence, generation)
        if evicted:
            with contextlib.suppress(StaleMembershipWrite):
                await ctx.member_written(
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
        await ctx.member_written(activated)
        return {"durable": True, "generation": generation}

    async def durable_leave_for(self, owner: str, channel: str, generation: int) -> None:
        ctx = self.ctx
        leave_cursor = await self.chat_last_seq()
        await ctx.member_written(
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
        counts = list((info.state.subjects or {}).values())
        if not at_retention_cap(counts):
            return False  # nothing can have been evicted: skip reading the oldest message
        name = chat_hist_durable(ctx.daemon_id)
        async with self._hist_lock:  # one chathist_<daemonId> at a time across joins
            await self._delete_consumer(name)
            try:
                await self._create_ephemeral(name, channel, 1)
                first = await fetch_no_wait(ctx.conn, ctx.chat_stream, name, 1)
            finally:
                await self._delete_consumer(name)
        return window_evicted(counts, stream_seq(first[0]) if first else None, join_cursor)

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
                    decoded = CotalMessage.decode(m.data)
                    if isinstance(decoded, Refused):
                        continue  # the fan-out dead-letters it; catch-up only skips it
                    message = decoded.value
                    if not catchup_sender_wanted(m.subject, message.from_.id, owner):
                        continue
                    if chat_origin(m.subject, message.from_.id, message.channel) != "routable":
                        continue
                    items.append(
                        (
                            ctx.dinbox_subject(owner),
                            entry_payload(m.data, channel, seq, "durable-channel", generation),
                            plane3_msg_id(message.id, owner, generation),
                        )
                    )
                ctx.entries_written(len(items))
                results = await ctx.publish_many(items)
                ctx.entries_settled(len(results))
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
