"""Presence I/O: the heartbeat publisher and the roster watch with its view state (§3.2, §6.1).

The roster watch's view state says whether the roster may be presented as the truth:

- ``unpopulated`` until the watch has delivered the bucket's current values;
- ``current`` while the watch is provably alive: every delivery *and every idle heartbeat* of
  its consumer (see :class:`~cotal_tui.mesh.kv.KvWatch`) counts, so an empty or quiet space
  stays current;
- ``stale`` while the connection is down, or when the watch has been silent past the liveness
  window although the connection is up. A silent watch is re-bound; the view turns current
  again once the re-bound watch has delivered the current values.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Literal

from cotal_tui.mesh.connection import Connection
from cotal_tui.mesh.kv import KvBucket, KvEntry, KvWatch
from cotal_tui.mesh.roster import Applied, PresenceEvent, Roster
from cotal_tui.mesh.tasks import cancel_and_wait
from cotal_tui.protocol.errors import RecordError
from cotal_tui.protocol.models import AgentCard, Attention, ChannelMode, Presence, Status
from cotal_tui.protocol.names import HEARTBEAT_MS, PRESENCE_TTL_MS, presence_bucket

RosterView = Literal["unpopulated", "current", "stale"]


def now_ms() -> int:
    return int(time.time() * 1000)


class PresencePublisher:
    """Puts the full presence record every ``heartbeat_ms``; a graceful stop puts ``offline``."""

    def __init__(
        self,
        conn: Connection,
        space: str,
        card: AgentCard,
        *,
        heartbeat_ms: int = HEARTBEAT_MS,
        status: Status = "idle",
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        self.conn = conn
        self.bucket = KvBucket(conn, presence_bucket(space))
        self.card = card
        self.heartbeat_ms = heartbeat_ms
        self.status: Status = status
        self.activity: str | None = None
        self.attention: Attention | None = None
        self.channel_modes: dict[str, ChannelMode] | None = None
        self.on_error = on_error
        self._task: asyncio.Task[None] | None = None
        self._unrearm: Callable[[], None] | None = None
        self.last_put_ms: int | None = None

    def record(self) -> Presence:
        return Presence(
            card=self.card,
            status=self.status,
            activity=self.activity,
            attention=self.attention,
            channel_modes=self.channel_modes or None,
            ts=now_ms(),
        )

    async def put(self) -> None:
        await self.bucket.put(self.card.id, self.record().to_json())
        self.last_put_ms = now_ms()

    async def start(self) -> None:
        await self.put()
        self._task = asyncio.get_running_loop().create_task(
            self._beat(), name=f"presence:{self.card.name}"
        )
        self._unrearm = self.conn.register_rearm("presence heartbeat", self._rearm)

    async def _rearm(self) -> None:
        await self.put()

    async def _beat(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(self.heartbeat_ms / 1000)
            if not self.conn.is_connected:
                continue
            try:
                await self.put()
                failing = False
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - reported once per failure streak
                if not failing and self.on_error is not None:
                    self.on_error(exc)
                failing = True

    async def update(
        self,
        *,
        status: Status | None = None,
        activity: str | None = None,
        attention: Attention | None = None,
        channel_modes: dict[str, ChannelMode] | None = None,
    ) -> None:
        if status is not None:
            self.status = status
        if activity is not None:
            self.activity = activity or None
        if attention is not None:
            self.attention = attention
        if channel_modes is not None:
            self.channel_modes = channel_modes
        if self._task is not None and self.conn.is_connected:
            await self.put()

    async def stop(self, *, graceful: bool = True) -> None:
        if self._unrearm is not None:
            self._unrearm()
            self._unrearm = None
        task, self._task = self._task, None
        await cancel_and_wait([task])
        if graceful and self.conn.is_connected:
            offline = self.record().as_offline().model_copy(update={"status": "offline"})
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.bucket.put(self.card.id, offline.to_json()), 2)


PresenceListener = Callable[[PresenceEvent], None]
RosterListener = Callable[[], None]
ViewListener = Callable[[RosterView], None]


class SpoofedPresence(Exception):
    """A presence record whose ``card.id`` is not the KV key it was written to (refused)."""


class RosterWatch:
    """The live roster of a space: KV watch + sweep + liveness, re-armed on reconnect."""

    def __init__(
        self,
        conn: Connection,
        space: str,
        *,
        ttl_ms: int = PRESENCE_TTL_MS,
        sweep_ms: int | None = None,
        liveness_ms: int | None = None,
        watch_heartbeat_ms: int = 1000,
        on_presence: PresenceListener | None = None,
        on_roster: RosterListener | None = None,
        on_view: ViewListener | None = None,
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        self.conn = conn
        self.space = space
        self.roster = Roster(ttl_ms)
        self.sweep_ms = sweep_ms if sweep_ms is not None else max(500, ttl_ms // 3)
        self.liveness_ms = liveness_ms if liveness_ms is not None else 3 * watch_heartbeat_ms + 1000
        self.bucket = KvBucket(conn, presence_bucket(space))
        self.on_presence = on_presence
        self.on_roster = on_roster
        self.on_view = on_view
        self.on_error = on_error
        self._watch = KvWatch(
            self.bucket,
            self._on_entry,
            on_initial=self._on_initial,
            heartbeat_s=watch_heartbeat_ms / 1000,
        )
        self._view: RosterView = "unpopulated"
        self._ever_current = False
        self._sweeper: asyncio.Task[None] | None = None
        self._rebinding: asyncio.Task[None] | None = None
        self._unrearm: Callable[[], None] | None = None
        self.rebinds = 0

    @property
    def view(self) -> RosterView:
        return self._view

    @property
    def last_activity(self) -> float | None:
        """When the presence watch last proved itself alive (an entry, the initial-state marker
        or an idle heartbeat), in ``time.monotonic()`` seconds; None before anything arrived.

        Read-only: the watch owns it. A reader turns it into an age with
        ``time.monotonic() - last_activity``.
        """
        last = self._watch.last_activity
        return last if last > 0 else None

    def entries(self) -> list[Presence]:
        return self.roster.entries()

    async def start(self) -> None:
        await self._watch.start()
        self._unrearm = self.conn.register_rearm("presence watch", self._rearm)
        self._sweeper = asyncio.get_running_loop().create_task(
            self._sweep_loop(), name=f"roster-sweep:{self.space}"
        )

    async def stop(self) -> None:
        if self._unrearm is not None:
            self._unrearm()
            self._unrearm = None
        await cancel_and_wait([self._sweeper, self._rebinding])
        self._sweeper = self._rebinding = None
        await self._watch.stop()

    async def wait_current(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self._view != "current":
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    # -- watch callbacks ---------------------------------------------------------------------

    def _on_entry(self, entry: KvEntry) -> None:
        if entry.deleted:
            self._publish(self.roster.remove(entry.key))
            return
        try:
            record = Presence.from_json(entry.value)
        except RecordError as exc:
            if self.on_error is not None:
                self.on_error(exc)
            return
        if record.card.id != entry.key:
            if self.on_error is not None:
                self.on_error(
                    SpoofedPresence(
                        f"presence key {entry.key!r} carries card.id {record.card.id!r}: refused "
                        f"(an agent may only speak for its own key; {self.roster.refused + 1} "
                        "refused so far)"
                    )
                )
        self._publish(self.roster.apply(record, now_ms(), key=entry.key))

    def _on_initial(self) -> None:
        self._set_view("current")
        if self.on_roster is not None:
            self.on_roster()

    def _publish(self, applied: Applied) -> None:
        if applied.event is not None and self.on_presence is not None:
            self.on_presence(applied.event)
        if applied.changed and self.on_roster is not None:
            self.on_roster()

    # -- liveness ----------------------------------------------------------------------------

    async def _rearm(self) -> None:
        self._set_view("stale")
        await self._rebind()

    async def _rebind(self) -> None:
        self.rebinds += 1
        await self._watch.rebind()

    def _schedule_rebind(self) -> None:
        if self._rebinding is not None and not self._rebinding.done():
            return

        async def run() -> None:
            try:
                await self._rebind()
            except Exception as exc:  # noqa: BLE001 - retried on the next sweep
                if self.on_error is not None:
                    self.on_error(exc)

        self._rebinding = asyncio.get_running_loop().create_task(run())

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_ms / 1000)
            for event in self.roster.sweep(now_ms()):
                self._publish(Applied(True, event))
            self._check_liveness()

    def check_liveness(self) -> None:
        self._check_liveness()

    def _check_liveness(self) -> None:
        if not self.conn.is_connected:
            if self._view == "current":
                self._set_view("stale")
            return
        silent_ms = (time.monotonic() - self._watch.last_activity) * 1000
        if not self._watch.alive or silent_ms > self.liveness_ms:
            if self._view == "current":
                self._set_view("stale")
            self._schedule_rebind()

    def _set_view(self, view: RosterView) -> None:
        if view == self._view:
            return
        self._view = view
        if self.on_view is not None:
            self.on_view(view)
