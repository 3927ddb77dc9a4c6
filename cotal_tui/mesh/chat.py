"""Channels: the live core subscription, join confirmation, backfill, and channel counts.

Join (§5.7 ``joinChannel``, §5.8): the watermark is CHAT ``last_seq`` read *before* the core
subscription on ``chat.*.<channel>`` opens, so the live path only ever sees later messages and
the backfill reads up to and including the watermark. A join is confirmed by a flush followed by
a short wait for a broker refusal naming that subject (refusals only arrive through
``error_cb``, §10.9); a refused join unsubscribes and raises, leaving nothing behind. A refusal
that arrives after the join was confirmed drops the channel and tells the owner.

History reads go through one named, memory-stored ``chathist_<id>`` consumer created on the
extended subject ``$JS.API.CONSUMER.CREATE.CHAT_<space>.chathist_<id>.<filter>`` (the agent
grant), deleted before and after each read, and serialized per instance.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import nats.errors
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from cotal_tui.mesh.connection import Connection, PermissionRefusal
from cotal_tui.mesh.jsapi import API, create_consumer, delete_consumer, last_seq, stream_info
from cotal_tui.mesh.messages import Inbound, check_live_chat
from cotal_tui.protocol.models import CotalMessage
from cotal_tui.protocol.names import (
    HISTORY_BATCH,
    HISTORY_INACTIVE_THRESHOLD_MS,
    chat_hist_durable,
    chat_stream,
)
from cotal_tui.protocol.subjects import chat_subject, chat_wildcard, parse_subject

_NS_PER_MS = 1_000_000


class JoinFailed(Exception):
    """A join did not take; nothing was left subscribed."""

    def __init__(self, channel: str, detail: str) -> None:
        super().__init__(f'cannot join "{channel}": {detail}')
        self.channel = channel


class JoinRefused(JoinFailed):
    def __init__(self, channel: str) -> None:
        super().__init__(channel, "not within this agent's read ACL (allowSubscribe)")


@dataclass(frozen=True)
class HistoryMessage:
    seq: int
    subject: str
    message: CotalMessage


@dataclass
class _Joined:
    channel: str
    subject: str
    sub: Subscription
    watermark: int
    unroute: Callable[[], None] | None = None


class ChatChannels:
    def __init__(
        self,
        conn: Connection,
        space: str,
        self_id: str,
        *,
        emit: Callable[[Inbound], None],
        on_late_refusal: Callable[[str], None],
        on_error: Callable[[Exception], None] | None = None,
        confirm_window_s: float = 0.05,
    ) -> None:
        self.conn = conn
        self.space = space
        self.self_id = self_id
        self.emit = emit
        self.on_late_refusal = on_late_refusal
        self.on_error = on_error
        self.confirm_window_s = confirm_window_s
        self.stream = chat_stream(space)
        self._joined: dict[str, _Joined] = {}
        self._history_lock = asyncio.Lock()

    def joined(self) -> list[str]:
        return sorted(self._joined)

    def is_joined(self, channel: str) -> bool:
        return channel in self._joined

    def watermark(self, channel: str) -> int | None:
        j = self._joined.get(channel)
        return j.watermark if j else None

    # -- join / leave ------------------------------------------------------------------------

    async def subscribe(self, channel: str, *, watermark: int | None = None) -> int:
        """Arm the watermark, open and confirm the live subscription; returns the watermark."""
        if channel in self._joined:
            return self._joined[channel].watermark
        mark = await last_seq(self.conn, self.stream) if watermark is None else watermark
        subject = chat_subject(self.space, "*", channel)
        refused = asyncio.Event()

        async def on_msg(msg: Msg) -> None:
            self._on_live(channel, msg)

        confirmed = False

        def on_refusal(refusal: PermissionRefusal) -> None:
            if not confirmed:
                refused.set()
                return
            asyncio.get_running_loop().create_task(self._drop_refused(channel))

        # Route refusals before subscribing: the -ERR can arrive while subscribe() still awaits.
        unroute = self.conn.on_refusal(subject, on_refusal)
        try:
            sub = await self.conn.nc.subscribe(subject, cb=on_msg)
        except BaseException:
            unroute()
            raise
        joined = _Joined(channel, subject, sub, mark, unroute=unroute)
        try:
            await self.conn.nc.flush(timeout=5)
        except Exception as exc:  # noqa: BLE001 - turned into a named join failure
            await self._teardown(joined)
            raise JoinFailed(
                channel, f"live subscription could not be confirmed ({exc!r})"
            ) from exc
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.confirm_window_s):  # not wait_for: tasks.py
                await refused.wait()
        if refused.is_set():
            await self._teardown(joined)
            raise JoinRefused(channel)
        confirmed = True
        self._joined[channel] = joined
        return mark

    async def leave(self, channel: str) -> bool:
        joined = self._joined.pop(channel, None)
        if joined is None:
            return False
        await self._teardown(joined)
        return True

    async def stop(self) -> None:
        for channel in list(self._joined):
            await self.leave(channel)

    async def _teardown(self, joined: _Joined) -> None:
        if joined.unroute is not None:
            joined.unroute()
        with contextlib.suppress(Exception):
            await joined.sub.unsubscribe()

    async def _drop_refused(self, channel: str) -> None:
        if channel not in self._joined:
            return
        await self.leave(channel)
        self.on_late_refusal(channel)

    def _on_live(self, channel: str, msg: Msg) -> None:
        decision = check_live_chat(msg.subject, msg.data, self.self_id)
        if decision.verdict != "emit" or decision.message is None:
            if decision.error is not None and self.on_error is not None:
                self.on_error(decision.error)
            return
        self.emit(
            Inbound(
                decision.message,
                "channel",
                msg.subject,
                channel=decision.channel or channel,
            )
        )

    # -- history -----------------------------------------------------------------------------

    async def backfill(
        self, channel: str, upto_seq: int, *, window_ms: int | float | None = None
    ) -> int:
        """Emit the channel's retained messages up to ``upto_seq`` as historical; returns count."""
        if upto_seq <= 0:
            return 0
        start_time = None
        if window_ms is not None and window_ms != float("inf"):
            start_time = time.time() - window_ms / 1000
        count = 0
        for item in await self.history(channel, upto_seq=upto_seq, start_time=start_time):
            parsed = parse_subject(item.subject)
            if parsed is None or parsed.sender != item.message.from_.id:
                continue
            count += 1
            self.emit(
                Inbound(
                    item.message,
                    "channel",
                    item.subject,
                    historical=True,
                    channel=parsed.rest,
                    seq=item.seq,
                )
            )
        return count

    async def history(
        self,
        channel: str,
        *,
        upto_seq: int | None = None,
        start_seq: int = 1,
        start_time: float | None = None,
        limit: int | None = None,
    ) -> list[HistoryMessage]:
        """Read one channel subject through ``chathist_<id>`` (serialized per instance)."""
        name = chat_hist_durable(self.self_id)
        filter_subject = chat_subject(self.space, "*", channel)
        config: dict[str, Any] = {
            "name": name,
            "filter_subject": filter_subject,
            "ack_policy": "none",
            "mem_storage": True,
            "inactive_threshold": HISTORY_INACTIVE_THRESHOLD_MS * _NS_PER_MS,
            "num_replicas": 1,
        }
        if start_time is not None:
            config["deliver_policy"] = "by_start_time"
            config["opt_start_time"] = (
                datetime.fromtimestamp(start_time, UTC).isoformat().replace("+00:00", "Z")
            )
        else:
            config["deliver_policy"] = "by_start_sequence"
            config["opt_start_seq"] = max(1, start_seq)
        out: list[HistoryMessage] = []
        async with self._history_lock:
            with contextlib.suppress(Exception):
                await delete_consumer(self.conn, self.stream, name)
            await create_consumer(self.conn, self.stream, config)
            try:
                await self._drain_history(name, upto_seq, limit, out)
            finally:
                with contextlib.suppress(Exception):
                    await delete_consumer(self.conn, self.stream, name)
        return out

    async def _drain_history(
        self, name: str, upto_seq: int | None, limit: int | None, out: list[HistoryMessage]
    ) -> None:
        nc = self.conn.nc
        inbox = nc.new_inbox()
        sub = await nc.subscribe(inbox)
        subject = f"{API}.CONSUMER.MSG.NEXT.{self.stream}.{name}"
        try:
            while True:
                batch = HISTORY_BATCH
                await nc.publish(
                    subject, json.dumps({"batch": batch, "no_wait": True}).encode(), reply=inbox
                )
                got = 0
                while True:
                    try:
                        msg = await sub.next_msg(timeout=5)
                    except (nats.errors.TimeoutError, TimeoutError):
                        return
                    if not msg.data and (msg.headers or {}).get("Status"):
                        break
                    got += 1
                    seq = msg.metadata.sequence.stream
                    if upto_seq is not None and seq > upto_seq:
                        return
                    try:
                        message = CotalMessage.from_json(msg.data)
                    except Exception:  # noqa: BLE001 - undecodable history is skipped
                        continue
                    out.append(HistoryMessage(seq, msg.subject, message))
                    if limit is not None and len(out) >= limit:
                        return
                    if got >= batch:
                        break
                if got < batch:
                    return
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    # -- counts ------------------------------------------------------------------------------

    async def message_counts(self) -> dict[str, int]:
        """Retained messages per channel, summed over senders (CHAT ``subjects_filter``)."""
        info = await stream_info(self.conn, self.stream, subjects_filter=chat_wildcard(self.space))
        counts: dict[str, int] = {}
        for subject, n in (info.get("state", {}).get("subjects") or {}).items():
            parsed = parse_subject(subject)
            if parsed is None or parsed.kind != "chat":
                continue
            counts[parsed.rest] = counts.get(parsed.rest, 0) + int(n)
        return counts
