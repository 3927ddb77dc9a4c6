"""INBOX backpressure from the stream's real state (issue 11, cause 1).

INBOX keeps at most 1,000 entries per owner and discards the oldest. An entry the reader has not
decided yet must never be the one discarded: its copy would be gone for good, and the 2 h dedup
window would turn any re-fan-out of it into a no-op. The unread entries are not only this
process's: a daemon that died leaves its reader's in-flight entries ack-pending until their
ack_wait (60 s) brings them back. Counting only our own writes (as before) let a successor
fan out on top of them and push them out.

So the fan-out waits on the reader consumer's own figures, read from the server, plus what was
written since. Normally that is the unread count, ``num_pending + num_ack_pending``, minus what
this reader decided since: an entry this reader holds is transferred from memory even if INBOX
drops it, and everything else unread is newer than what it acked. Kept at or below 1,000 - one
batch, no owner's unread entry can be pushed out.

A dead daemon's ack-pending entries are the exception: they are old, they come back only after
their ack_wait, and this reader acks newer entries around them, so the unread count stays low
while they are pushed out. If the first read (at bind, before this reader took anything) finds
entries ack-pending, the estimate is every entry above the reader's ack floor
(``delivered.stream_seq - ack_floor.stream_seq + num_pending``), re-read from the server and
never decremented locally, until the floor has passed them all; an owner's entries above the
floor are a part of that, so an old one cannot be the one discarded.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from cotal_tui.mesh.connection import Connection
from cotal_tui.mesh.jsapi import consumer_info
from cotal_tui.protocol.names import MAX_MSGS_PER_SUBJECT

MARGIN = 44
REFRESH_S = 0.5  # re-read the consumer at least this often while writing
POLL_S = 0.05  # and this often while waiting for room (or when the reader acked)
MIN_READ_GAP_S = 0.01


class InboxPressure:
    def __init__(self, conn: Connection, stream: str, durable: str) -> None:
        self.conn = conn
        self.stream = stream
        self.durable = durable
        self.unread_at_read = 0
        self.written_since = 0
        self.decided_since = 0
        self.in_flight = 0  # written, PubAck not back yet
        self.written_total = 0
        self.read_at = float("-inf")
        self.reads = 0
        self.waits = 0
        self.foreign_ceiling: int | None = None  # a dead reader's ack-pending entries: up to here
        self.strict = False
        self._moved = asyncio.Event()

    @property
    def estimate(self) -> int:
        """INBOX entries that could still be needed from INBOX (an upper bound)."""
        if self.strict:
            return max(0, self.unread_at_read + self.written_since)
        return max(0, self.unread_at_read + self.written_since - self.decided_since)

    def written(self, n: int) -> None:
        self.written_since += n
        self.in_flight += n
        self.written_total += n

    def settled(self, n: int) -> None:
        self.in_flight = max(0, self.in_flight - n)

    def decided(self, n: int) -> None:
        self.decided_since += n
        self._moved.set()

    async def refresh(self) -> bool:
        """Read the reader consumer's pending figures; False when they cannot be read."""
        # What the server's figure may not include: writes whose PubAck was still out when the
        # request left, and every write since. Decisions during the round trip are not
        # subtracted (they may or may not be in the figure): the estimate stays an upper bound.
        in_flight_at_send, written_at_send = self.in_flight, self.written_total
        try:
            info = await consumer_info(self.conn, self.stream, self.durable, timeout=2.0)
        except Exception:  # noqa: BLE001 - keep the local estimate until the next read
            return False
        if info is None:
            return False
        floor = int((info.get("ack_floor") or {}).get("stream_seq") or 0)
        delivered = int((info.get("delivered") or {}).get("stream_seq") or 0)
        pending = int(info.get("num_pending") or 0)
        ack_pending = int(info.get("num_ack_pending") or 0)
        if self.reads == 0 and ack_pending > 0:
            self.foreign_ceiling = delivered  # left by a reader that is gone
        self.strict = self.foreign_ceiling is not None and floor < self.foreign_ceiling
        if self.strict:
            self.unread_at_read = max(0, delivered - floor) + pending
        else:
            self.foreign_ceiling = None
            self.unread_at_read = pending + ack_pending
        self.written_since = in_flight_at_send + (self.written_total - written_at_send)
        self.decided_since = 0
        self.read_at = time.monotonic()
        self.reads += 1
        return True

    async def room(self, batch: int) -> None:
        """Wait until a batch of up to ``batch`` messages cannot push an unread entry out."""
        limit = MAX_MSGS_PER_SUBJECT - batch - MARGIN
        if time.monotonic() - self.read_at >= REFRESH_S:
            await self.refresh()
        if self.estimate <= limit:
            return
        self.waits += 1
        while True:
            self._moved.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(POLL_S):  # not wait_for: tasks.py
                    await self._moved.wait()
            if not self.strict and self.estimate <= limit:
                return
            if time.monotonic() - self.read_at >= MIN_READ_GAP_S:
                await self.refresh()
                if self.estimate <= limit:
                    return
