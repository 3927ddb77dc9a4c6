"""The 0.9.0 reference's membership feed as a display-only source of the console.

When the space has a ``cotal_membership_<space>`` bucket (protocol/membership_feed.py) and the
console's cred may read it, the channel detail gains one line: which agents the broker feed says
are on the channel (``live``: a chat subscription pattern of theirs matches it, per CONNZ;
``durable``: an open durable membership), and when the feed last completed a poll. Nothing here
feeds a verdict or a health word (the reference itself calls the feed display-only; CONSOLE.md:
never a false green) — the lease verdict and §5.9 health are computed without it.

When the bucket does not exist (0.6.0, or ours), cannot be read, or holds nothing (a 0.9.0
`setupSpaceStreams` creates it; only a 0.9.0 daemon holding the feed's creds writes it), nothing
is shown and nothing changes. The sweep runs in its own task, so a broker that does not answer
a read of it can never delay the lease poll.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping

from cotal_tui.console.format import clock_text
from cotal_tui.mesh.connection import Connection
from cotal_tui.mesh.membership_feed import FeedRead, read_membership_feed

EVERY_S = 5.0
"""How often the feed is swept (the reference daemon re-polls CONNZ every 15 s and on connects)."""
BACKOFF_S = 60.0
"""After a failed sweep (e.g. the cred may not read the bucket), wait this long before the next."""


class BrokerFeed:
    """The last sweep of the feed, and the one-line text of a channel from it."""

    def __init__(self, every_s: float = EVERY_S, backoff_s: float = BACKOFF_S) -> None:
        self.every_s = every_s
        self.backoff_s = backoff_s
        self.read: FeedRead | None = None
        """None: no bucket, not read yet, or the last sweep failed (then `error` says why)."""
        self.error: str | None = None
        self.sweeps = 0
        """Completed sweeps (a read, a missing bucket and a failure each count)."""
        self._task: asyncio.Task[None] | None = None

    async def sweep(self, conn: Connection, space: str) -> None:
        try:
            self.read = await read_membership_feed(conn, space)
            self.error = None
        except Exception as exc:  # noqa: BLE001 - display-only: a failure just hides the line
            self.read, self.error = None, str(exc) or type(exc).__name__
        self.sweeps += 1

    def start(self, target: Callable[[], tuple[Connection, str, bool]]) -> None:
        """Sweep every `every_s` while `target()` says (connection, space, connected)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._loop(target), name="console-membership-feed"
            )

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task

    async def _loop(self, target: Callable[[], tuple[Connection, str, bool]]) -> None:
        while True:
            conn, space, connected = target()
            if connected:
                await self.sweep(conn, space)
            await asyncio.sleep(self.backoff_s if self.error else self.every_s)

    def line(self, channel: str, names: Mapping[str, str]) -> str | None:
        """E.g. ``alice (live, durable), bob (live) · broker feed as of 12:00:03, display
        only``; None when there is no feed to show."""
        read = self.read
        if read is None or (not read.records and read.heartbeat is None):
            return None  # no bucket, or one nothing writes (e.g. made by a 0.9.0 setup on ours)
        on: list[str] = []
        for rec in read.records:
            live, durable = rec.on(channel)
            if not (live or durable):
                continue
            how = ", ".join(w for w, yes in (("live", live), ("durable", durable)) if yes)
            on.append(f"{names.get(rec.id) or rec.id[:8] + '…'} ({how})")
        beat = read.heartbeat
        when = (f"as of {clock_text(beat.observed_at)}" if beat and beat.observed_at is not None
                else "no heartbeat yet")  # fmt: skip
        who = ", ".join(sorted(on)) if on else "nobody on it"
        return f"{who} · broker feed {when}, display only"
