"""INBOX backpressure from the stream's real state (issue 11, cause 1).

INBOX keeps at most 1,000 entries per owner and discards the oldest. An entry the reader has not
decided yet must never be the one discarded: its copy would be gone for good, and the 2 h dedup
window would turn any re-fan-out of it into a no-op. The unread entries are not only this
process's: a daemon that died leaves its reader's in-flight entries ack-pending until their
ack_wait (60 s) brings them back. Counting only our own writes (as before) let a successor
fan out on top of them and push them out.

So the fan-out waits on the reader consumer's own figures: every INBOX entry above the reader's
ack floor (``delivered.stream_seq - ack_floor.stream_seq + num_pending``, whoever wrote or took
it), read from the server, plus what was written since that read. An unread entry sits above the
floor, and INBOX discards an owner's entry only once 1,000 newer ones of that owner exist; if
fewer than 1,000 - one batch entries (all owners together) lie above the floor, no owner can
reach that after the batch, so nothing unread is discarded. Unread is not enough: a dead
daemon's ack-pending entry is old, and the successor's reader acks the newer ones around it, so
an "unread" count stays low while the old entry is pushed out.

Acks by this reader do not lower the figure until the floor moves, so the estimate is re-read
from the server (not decremented locally) while the fan-out waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from cotal_tui.mesh.connection import Connection
from cotal_tui.mesh.jsapi import API, api_request
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
        self._moved = asyncio.Event()

    @property
    def estimate(self) -> int:
        """INBOX entries above the reader's ack floor (an upper bound)."""
        return max(0, self.unread_at_read + self.written_since)

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
            info: dict[str, Any] = await api_request(
                self.conn,
                f"{API}.CONSUMER.INFO.{self.stream}.{self.durable}",
                None,
                what=f"reading consumer {self.stream}/{self.durable}",
                timeout=2.0,
            )
        except Exception:  # noqa: BLE001 - keep the local estimate until the next read
            return False
        floor = int((info.get("ack_floor") or {}).get("stream_seq") or 0)
        delivered = int((info.get("delivered") or {}).get("stream_seq") or 0)
        self.unread_at_read = max(0, delivered - floor) + int(info.get("num_pending") or 0)
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
            if time.monotonic() - self.read_at >= MIN_READ_GAP_S:
                await self.refresh()
                if self.estimate <= limit:
                    return
