"""CHAT messages evicted before the fan-out routed them (issue 11, cause 2).

CHAT keeps 1,000 messages per sender-channel subject and discards the oldest (a reference wire
fact, kept). A sender faster than the fan-out — a hot sender while no daemon holds the lease, or
the retry burst after a broker restart — pushes messages out before they were routed: they never
reach an offline durable member, and nothing else would ever say so.

:class:`EvictionTracker` finds every such message from the ``fanout`` consumer's own state.
The fan-out acks in stream order (fanout.py), so everything at or below the consumer's ack floor
was either acked by a fan-out or never delivered at all: JetStream moves the floor over
messages deleted before delivery (and drops deleted ones from the pending set). Every stream
sequence the floor passed that this process did not take (or took and nak'd), above the floor
it found at bind, is a message evicted before routing. "Taken", not "acked": a broker restart
can restore the consumer with its floor past messages we hold and route from memory. The count
is exact; the channel is the one whose subjects sit at the 1,000 cap (the only subjects that
evict), or ``?`` when several channels do.

Two ways a message can be passed by the floor while in a fan-out's hands, unrouted (issue 11,
found with a broker SIGKILL + restart and a daemon SIGKILL, each under one hot sender):

- A broker restart restores the consumer without our in-flight deliveries; CHAT then evicts
  them (the sender's retry burst) and the floor moves over them while this process still waits
  for the INBOX PubAcks the dead broker never sent. When those time out and the message is
  released (nak'd), the floor is already past it: it can never come back, so it is counted then
  (``released`` below the floor) — unless another delivery of it was routed meanwhile.
- A SIGKILLed predecessor's delivered, unacked messages are evicted during the lease wait, and
  the floor moves over them before the successor binds, so they are below the floor it finds.
  At bind the successor reads the CHAT sequences of INBOX's newest entries (the predecessor's
  last routing): every sequence above the newest of them, up to the floor, that CHAT no longer
  holds was delivered to the dead daemon and never routed (the fan-out routes in stream order;
  INBOX got every earlier write on the same connection first). Counted at once, each named so
  that an entry the reader later sees for it un-counts it. Bounded by ``max_ack_pending``
  (a dead daemon never held more); a wider gap is said in a line, not guessed.

A dead predecessor's in-flight messages (delivered to it, not acked: the floor found at bind up
to the last delivered sequence) may have been routed before it died. Each such sequence that is
evicted is checked against the entries the reader sees: an entry carrying that CHAT sequence
means it was routed, and it is not counted (or no longer counted). Left inexact: a predecessor's
acks above its own floor (possible only after a nak, since acks go in order), and a message it
had routed to some members but not all when it died.

The count at bind needs single reads (``STREAM.MSG.GET``) of CHAT and INBOX, granted to the
delivery profile since issue 11 but not to a cred minted before, nor by the reference's tooling.
Each bind first asks the broker once per stream whether the cred may read it: a refused read
makes the count unknown (``below_floor_unknown``, the missing grants named, said in one line),
never 0; delivery itself needs none of it.
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

from cotal_tui.mesh.connection import Connection, PermissionRefusal
from cotal_tui.mesh.jsapi import API, JsApiError, api_request, consumer_info
from cotal_tui.mesh.tasks import cancel_and_wait
from cotal_tui.protocol.names import MAX_MSGS_PER_SUBJECT

UNKNOWN_CHANNEL = "?"
CHECK_EVERY_S = 1.0


class EvictedBeforeRouting(RuntimeError):
    """Told to the daemon's error listener (logged by `cotal-tui daemon`) on every detection."""

    def __init__(self, channel: str, count: int, first: int, last: int) -> None:
        where = "an unknown channel" if channel == UNKNOWN_CHANNEL else f"#{channel}"
        super().__init__(
            f"{count} message(s) on {where} were evicted from CHAT (its 1,000-per-sender cap) "
            f"before the fan-out routed them (CHAT seq {first}–{last}); they never reached "
            "offline durable members"
        )
        self.channel = channel
        self.count = count


class EvictionTracker:
    def __init__(
        self,
        conn: Connection,
        stream: str,
        durable: str,
        chat_prefix: str,
        on_evicted: Callable[[Exception], None],
        inbox_stream: str | None = None,
    ) -> None:
        self.conn = conn
        self.inbox_stream = inbox_stream
        self.stream = stream
        self.durable = durable
        self.chat_prefix = chat_prefix  # "cotal.<space>.chat."
        self.on_evicted = on_evicted
        self.by_channel: dict[str, int] = {}
        self.since_ms: int | None = None
        self._accounted: int | None = None  # the ack floor everything below is accounted for
        self._handled: list[int] = []  # sorted stream seqs this process acked above it
        self._task: asyncio.Task[None] | None = None
        # the predecessor's in-flight window (floor, delivered] found at bind
        self._window: tuple[int, int] | None = None
        self._suspect: dict[int, str] = {}  # window seqs counted as evicted, by channel
        self._routed_in_window: set[int] = set()  # window seqs the reader saw entries for
        self._routed_ok: set[int] = set()  # seqs some delivery of ours routed (acked after it)
        self._held: dict[int, int] = {}  # seq -> deliveries of it in our hands, not settled
        self._late: list[int] = []  # released after the floor passed them: counted next check
        self.below_floor: tuple[int, int, int] | None = None  # (from, to, counted) at bind
        # why the count at bind is not (yet) made; both None: the floor passed nothing unseen
        self.below_floor_unknown: str | None = "not counted yet (the fan-out has not bound)"
        self._below_task: asyncio.Task[None] | None = None

    @property
    def total(self) -> int:
        return sum(self.by_channel.values())

    def taken(self, seq: int) -> None:
        """A delivery of this stream sequence arrived: in our hands until routed or released
        (a restored consumer can hand the same sequence to us twice: each is held)."""
        self._held[seq] = self._held.get(seq, 0) + 1
        self.acked(seq)

    def acked(self, seq: int) -> None:
        """The fan-out took (or acked) this stream sequence: it routes it, or decided not to."""
        if self._accounted is not None and seq <= self._accounted:
            return
        i = bisect.bisect_left(self._handled, seq)
        if i == len(self._handled) or self._handled[i] != seq:  # a redelivery acked again
            self._handled.insert(i, seq)

    async def start(self) -> None:
        """Take the floor as found (what is below is the past's); then check every second."""
        if self.since_ms is None:
            self.since_ms = int(time.time() * 1000)
        if self._accounted is None:
            found = await self._info()
            if found is not None:
                floor, delivered = found
                self._accounted = floor
                if delivered > floor:
                    self._window = (floor, delivered)
                self._trim()
                self._below_task = asyncio.get_running_loop().create_task(
                    self._below_floor_quietly(floor), name="plane3-below-floor"
                )
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="plane3-eviction-tracker"
            )

    async def stop(self) -> None:
        task, self._task = self._task, None
        below, self._below_task = self._below_task, None
        await cancel_and_wait([task, below])
        with contextlib.suppress(Exception):
            await self.check()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(CHECK_EVERY_S)
            with contextlib.suppress(Exception):
                await self.check()

    def released(self, seq: int) -> None:
        """A message taken earlier was nak'd: not ours any more until it comes back.

        Not if another delivery of it was routed meanwhile (a restored consumer can deliver it
        twice). If the floor already passed it, it never comes back: counted as evicted at the
        next check (and un-counted should another delivery of it still be routed)."""
        self._let_go(seq)
        if seq in self._routed_ok or seq in self._held:
            return  # routed by another delivery, or another one is still in our hands
        if self._accounted is not None and seq <= self._accounted:
            self._late.append(seq)
            return
        i = bisect.bisect_left(self._handled, seq)
        if i < len(self._handled) and self._handled[i] == seq:
            del self._handled[i]

    def routed_ok(self, seq: int) -> None:
        """A delivery of ``seq`` was routed (its entries stored) or settled, and acked."""
        self._let_go(seq)
        self.acked(seq)
        self._routed_ok.add(seq)
        self._uncount(seq)

    def _let_go(self, seq: int) -> None:
        left = self._held.get(seq, 0) - 1
        if left > 0:
            self._held[seq] = left
        else:
            self._held.pop(seq, None)

    def _uncount(self, seq: int) -> None:
        channel = self._suspect.pop(seq, None)
        if channel is not None:
            left = self.by_channel.get(channel, 0) - 1
            if left > 0:
                self.by_channel[channel] = left
            else:
                self.by_channel.pop(channel, None)

    def window_report(self) -> dict[str, object] | None:
        """The dead predecessor's in-flight window and what became of it (None: there was none)."""
        if self._window is None:
            return None
        return {
            "ackFloor": self._window[0],
            "delivered": self._window[1],
            "routedByIt": sorted(self._routed_in_window)[:50],
            "countedEvicted": sorted(self._suspect)[:50],
        }

    def routed(self, seq: int) -> None:
        """The reader saw an entry for CHAT sequence ``seq`` (so some fan-out routed it)."""
        w = self._window
        if w is not None and w[0] < seq <= w[1]:
            self._routed_in_window.add(seq)
        if self._suspect:
            self._uncount(seq)

    async def check(self) -> int:
        """Account for the floor's progress since the last check; returns the new evictions."""
        late = await self._count_late()
        found = await self._info()
        if found is None:
            return late
        floor = found[0]
        if self._accounted is None:
            self._accounted = floor
            self._trim()
            return 0
        if floor <= self._accounted:
            return late
        start = self._accounted
        cut = bisect.bisect_right(self._handled, floor)
        handled_seqs = self._handled[:cut]  # every kept seq is above `start` (see _trim)
        missing = (floor - start) - cut
        self._handled = self._handled[cut:]
        self._accounted = floor
        self._trim()
        suspects: list[int] = []
        w = self._window
        if missing > 0 and w is not None and start < w[1]:
            # the predecessor's window: name each missing seq; drop those the reader saw routed
            acked = set(handled_seqs)
            for seq in range(max(start, w[0]) + 1, min(floor, w[1]) + 1):
                if seq in acked:
                    continue
                if seq in self._routed_in_window:
                    missing -= 1
                else:
                    suspects.append(seq)
        if missing <= 0:
            return late
        channel = await self._evicting_channel()
        for seq in suspects:
            self._suspect[seq] = channel
        self.by_channel[channel] = self.by_channel.get(channel, 0) + missing
        self.on_evicted(EvictedBeforeRouting(channel, missing, start + 1, floor))
        return missing + late

    async def _count_late(self) -> int:
        """Messages released after the floor had passed them (see :meth:`released`)."""
        late = sorted(set(s for s in self._late if s not in self._routed_ok))
        self._late.clear()
        if not late:
            return 0
        channel = await self._evicting_channel()
        return self._count_named(late, channel)

    def _count_named(self, seqs: list[int], channel: str) -> int:
        """Count these sequences as evicted, each named (an entry seen for one un-counts it)."""
        fresh = [s for s in seqs if s not in self._suspect]
        if not fresh:
            return 0
        for seq in fresh:
            self._suspect[seq] = channel
        self.by_channel[channel] = self.by_channel.get(channel, 0) + len(fresh)
        self.on_evicted(EvictedBeforeRouting(channel, len(fresh), fresh[0], fresh[-1]))
        return len(fresh)

    async def _below_floor_quietly(self, floor: int) -> None:
        self.below_floor, self.below_floor_unknown = None, "being counted (the bind is fresh)"
        try:
            missing = await self._reads_refused()
            if missing:
                self._unknown(
                    f"this credential lacks {' and '.join(missing)} (granted to the delivery "
                    "profile since issue 11; re-mint the delivery cred to get it)"
                )
                return
            await self._count_below_floor(floor)
        except Exception as exc:  # noqa: BLE001 - said once; nothing is guessed
            self._unknown(f"the check failed: {exc}")
        else:
            if self.below_floor_unknown == "being counted (the bind is fresh)":
                self.below_floor_unknown = None

    def _unknown(self, why: str) -> None:
        """The count at bind cannot be made: recorded (deliveryStats) and said in one line."""
        self.below_floor_unknown = why
        self.on_evicted(
            BelowFloorUnknown(
                "cannot count copies a dead daemon held that CHAT evicted below the fan-out's "
                f"floor before this bind — {why}; any such are not counted in "
                "evictedBeforeRouting (delivery itself is unaffected)"
            )
        )

    async def _reads_refused(self) -> list[str]:
        """The single-read grants (CHAT, INBOX) the broker refuses this cred, asked once each
        (a read of a subject no message has: any JetStream answer means the read is allowed)."""
        streams = [self.stream] + ([self.inbox_stream] if self.inbox_stream else [])
        refused = await asyncio.gather(*(self._read_refused(s) for s in streams))
        return [f"{API}.STREAM.MSG.GET.{s}" for s, no in zip(streams, refused, strict=True) if no]

    async def _read_refused(self, stream: str) -> bool:
        subject = f"{API}.STREAM.MSG.GET.{stream}"
        refusal: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

        def on_refusal(_r: PermissionRefusal) -> None:
            if not refusal.done():
                refusal.set_result(True)

        off = self.conn.on_refusal(subject, on_refusal)  # claimed: no "broker refused" line
        probe = json.dumps({"last_by_subj": f"{self.chat_prefix}_probe_._probe_"}).encode()
        req = asyncio.ensure_future(self.conn.nc.request(subject, probe, timeout=2.0))
        try:
            await asyncio.wait({req, refusal}, return_when=asyncio.FIRST_COMPLETED)
            if refusal.done():
                return True
            req.result()  # a timeout raises: unknown, said as the check failing
            return False
        finally:
            off()
            if not req.done():
                req.cancel()
            refusal.cancel()
            req.add_done_callback(_retrieve)

    async def _count_below_floor(self, floor: int) -> None:
        """A dead predecessor's delivered messages the floor skipped before we bound (module
        docstring): above the newest CHAT sequence INBOX's latest entries carry, gone from CHAT."""
        if self.inbox_stream is None:
            return
        newest = await self._newest_routed()
        if newest is None or newest >= floor:
            return
        limit = await self._max_ack_pending()
        if floor - newest > limit:
            self._unknown(
                f"{floor - newest} CHAT message(s) (seq {newest + 1}–{floor}) were passed by the "
                "fan-out's ack floor before this daemon bound, more than a dead daemon can have "
                "held, so whether they were routed is unknown"
            )
            return
        gone = await self._gone_from_chat(newest + 1, floor)
        counted = 0
        if gone:
            counted = self._count_named(gone, await self._evicting_channel())
        self.below_floor = (newest + 1, floor, counted)

    async def _newest_routed(self, look: int = 32) -> int | None:
        """The highest CHAT sequence among INBOX's newest ``look`` entries (None: no entries)."""
        info: dict[str, Any] = await api_request(
            self.conn,
            f"{API}.STREAM.INFO.{self.inbox_stream}",
            None,
            what=f"reading stream {self.inbox_stream}",
            timeout=2.0,
        )
        state = info.get("state") or {}
        last, first = int(state.get("last_seq") or 0), int(state.get("first_seq") or 0)
        if last <= 0 or int(state.get("messages") or 0) == 0:
            return None
        seqs = range(max(first, last - look + 1), last + 1)
        found = await asyncio.gather(
            *(self._get(self.inbox_stream, s) for s in seqs), return_exceptions=True
        )
        best: int | None = None
        errors = [e for e in found if isinstance(e, BaseException)]
        if errors and len(errors) == len(found):
            raise errors[0]  # e.g. a cred without the grant: unknown, never "nothing there"
        for msg in found:
            if isinstance(msg, dict):
                chat_seq = _entry_chat_seq(msg)
                if chat_seq is not None and (best is None or chat_seq > best):
                    best = chat_seq
        return best

    async def _max_ack_pending(self) -> int:
        try:
            info = await consumer_info(self.conn, self.stream, self.durable, timeout=2.0) or {}
            return int((info.get("config") or {}).get("max_ack_pending") or 1000)
        except Exception:  # noqa: BLE001 - the server default
            return 1000

    async def _gone_from_chat(self, first: int, last: int) -> list[int]:
        """The sequences in [first, last] that CHAT no longer holds."""
        gone: list[int] = []
        seqs = list(range(first, last + 1))
        for i in range(0, len(seqs), 100):
            chunk = seqs[i : i + 100]
            found = await asyncio.gather(
                *(self._get(self.stream, s) for s in chunk), return_exceptions=True
            )
            for seq, msg in zip(chunk, found, strict=True):
                if isinstance(msg, JsApiError) and msg.code == MSG_NOT_FOUND:
                    gone.append(seq)
                elif isinstance(msg, BaseException):
                    raise msg  # unknown: count nothing rather than guess
        return gone

    async def _get(self, stream: str, seq: int) -> dict[str, Any]:
        reply: dict[str, Any] = await api_request(
            self.conn,
            f"{API}.STREAM.MSG.GET.{stream}",
            {"seq": seq},
            what=f"reading {stream}#{seq}",
            timeout=2.0,
        )
        return reply.get("message") or {}

    def _trim(self) -> None:
        assert self._accounted is not None
        if len(self._held) > 100_000:  # deliveries never settled (e.g. an ack that failed)
            low = self._accounted - 100_000
            self._held = {s: n for s, n in self._held.items() if s > low}
        if len(self._routed_ok) > 200_000:
            low = self._accounted - 100_000
            self._routed_ok = {s for s in self._routed_ok if s > low}
        cut = bisect.bisect_right(self._handled, self._accounted)
        self._handled = self._handled[cut:]

    async def _info(self) -> tuple[int, int] | None:
        """The consumer's (ack floor, last delivered) stream sequences."""
        try:
            info = await consumer_info(self.conn, self.stream, self.durable, timeout=2.0)
        except Exception:  # noqa: BLE001 - checked again in a second
            return None
        if info is None:
            return None
        floor = (info.get("ack_floor") or {}).get("stream_seq")
        delivered = (info.get("delivered") or {}).get("stream_seq")
        if not isinstance(floor, int):
            return None
        return floor, delivered if isinstance(delivered, int) else floor

    async def _evicting_channel(self) -> str:
        """The channel whose subjects are at CHAT's per-subject cap (the ones that evict)."""
        try:
            info: dict[str, Any] = await api_request(
                self.conn,
                f"{API}.STREAM.INFO.{self.stream}",
                {"subjects_filter": f"{self.chat_prefix}>"},
                what=f"reading stream {self.stream}",
                timeout=2.0,
            )
        except Exception:  # noqa: BLE001 - the count stands; the channel is unknown
            return UNKNOWN_CHANNEL
        subjects = (info.get("state") or {}).get("subjects") or {}
        channels = {
            channel
            for subject, count in subjects.items()
            if isinstance(count, int)
            and count >= MAX_MSGS_PER_SUBJECT
            and (channel := self.channel_of(subject)) is not None
        }
        return channels.pop() if len(channels) == 1 else UNKNOWN_CHANNEL

    def channel_of(self, subject: str) -> str | None:
        if not subject.startswith(self.chat_prefix):
            return None
        parts = subject[len(self.chat_prefix) :].split(".", 1)
        return parts[1] if len(parts) == 2 and parts[1] else None


MSG_NOT_FOUND = 10037


def eviction_stats(ev: EvictionTracker) -> dict[str, object]:
    """The fan-out's part of ``deliveryStats`` (inline daemon and fan-out stage alike)."""
    return {
        "evictedBeforeRouting": dict(ev.by_channel),
        "since": ev.since_ms,
        "predecessorWindow": ev.window_report(),
        # a dead predecessor's delivered messages the floor skipped before we bound: None with
        # the reason beside it when the count could not be made (never a 0 for "unknown")
        "belowFloorAtBind": (
            None
            if ev.below_floor is None
            else dict(zip(("from", "to", "counted"), ev.below_floor, strict=True))
        ),
        "belowFloorAtBindUnknown": ev.below_floor_unknown,
    }


class BelowFloorUnknown(RuntimeError):
    """Messages the floor passed before bind that cannot be proven routed or not (told once)."""


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


def _entry_chat_seq(message: dict[str, Any]) -> int | None:
    """The CHAT ``seq`` a dinbox entry (a STREAM.MSG.GET ``message``) carries."""
    try:
        body = json.loads(base64.b64decode(message.get("data") or ""))
    except (ValueError, TypeError):
        return None
    seq = body.get("seq") if isinstance(body, dict) else None
    return seq if isinstance(seq, int) and not isinstance(seq, bool) else None
