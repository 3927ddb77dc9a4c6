"""The channel registry (§3.3): a live cache from a KV watch, fresh reads, merged writes.

The cache answers the questions the reference answers from its cache (the runtime join's
delivery class, ``list_channels``); :meth:`ChannelRegistry.fresh_join_policy` and
:meth:`ChannelRegistry.fresh_delivery_class` read the KV fresh where the reference does. For a
wildcard channel only ``=defaults`` is read (``*`` and ``>`` are not legal KV keys).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from cotal_tui.mesh.connection import Connection
from cotal_tui.mesh.kv import KvBucket, KvEntry, KvWatch
from cotal_tui.mesh.tasks import cancel_and_wait
from cotal_tui.protocol.channel_config import (
    delivery_class_reading,
    effective_replay,
    effective_replay_window_ms,
    invalid_delivery_class,
    merge_channel_config,
    merge_channel_defaults,
)
from cotal_tui.protocol.channels import is_concrete_channel
from cotal_tui.protocol.models import ChannelConfig, ChannelDefaults
from cotal_tui.protocol.names import CHANNEL_DEFAULTS_KEY, channel_bucket

Wire = dict[str, Any]


class ChannelRegistry:
    def __init__(
        self,
        conn: Connection,
        space: str,
        *,
        on_change: Callable[[str], None] | None = None,
        on_error: Callable[[Exception], None] | None = None,
        watch_heartbeat_ms: int = 1000,
    ) -> None:
        self.conn = conn
        self.watch_heartbeat_ms = watch_heartbeat_ms
        self.bucket = KvBucket(conn, channel_bucket(space))
        self.on_change = on_change
        self.on_error = on_error
        self._configs: dict[str, Wire] = {}
        self._defaults: Wire = {}
        self._watch: KvWatch | None = None
        self._unrearm: Callable[[], None] | None = None
        self._supervisor: asyncio.Task[None] | None = None

    # -- cache -------------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self._watch is not None and self._watch.initial_done

    @property
    def defaults(self) -> Wire:
        return dict(self._defaults)

    def channels(self) -> list[str]:
        return sorted(self._configs)

    def config(self, channel: str) -> Wire | None:
        cfg = self._configs.get(channel)
        return dict(cfg) if cfg is not None else None

    def replay(self, channel: str) -> bool:
        return effective_replay(self._configs.get(channel), self._defaults)

    def replay_window_ms(self, channel: str) -> int | float | None:
        return effective_replay_window_ms(self._configs.get(channel), self._defaults)

    def delivery_class(self, channel: str) -> str:
        """The class the protocol acts on: ``durable``, or ``live`` (an invalid stored value
        reads as the reference reads it, not durable; see :meth:`delivery_class_problem`)."""
        return delivery_class_reading(self._configs.get(channel), self._defaults)[0]

    def delivery_class_problem(self, channel: str) -> str | None:
        """What is wrong with the stored ``deliveryClass`` (None when it is valid or unset)."""
        return delivery_class_reading(self._configs.get(channel), self._defaults)[1]

    def invalid_delivery_class(self, channel: str) -> str | None:
        """The invalid stored ``deliveryClass`` as text (None when it is valid or unset)."""
        return invalid_delivery_class(self._configs.get(channel), self._defaults)

    def description(self, channel: str) -> str | None:
        cfg = self._configs.get(channel) or {}
        desc = cfg.get("description")
        return desc if isinstance(desc, str) else None

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._watch = KvWatch(
            self.bucket, self._on_entry, heartbeat_s=self.watch_heartbeat_ms / 1000
        )
        await self._watch.start()
        self._unrearm = self.conn.register_rearm("channel registry watch", self._watch.rebind)
        self._supervisor = asyncio.get_running_loop().create_task(
            self._supervise(), name="channel-registry-liveness"
        )

    async def _supervise(self) -> None:
        """Re-bind a watch that went silent while connected (a failed re-arm included)."""
        liveness_s = 3 * self.watch_heartbeat_ms / 1000 + 1
        while True:
            await asyncio.sleep(self.watch_heartbeat_ms / 1000)
            watch = self._watch
            if watch is None or not self.conn.is_connected:
                continue
            if watch.alive and time.monotonic() - watch.last_activity <= liveness_s:
                continue
            try:
                await watch.rebind()
            except Exception as exc:  # noqa: BLE001 - retried on the next tick
                if self.on_error is not None:
                    self.on_error(exc)

    async def stop(self) -> None:
        if self._unrearm is not None:
            self._unrearm()
            self._unrearm = None
        supervisor, self._supervisor = self._supervisor, None
        await cancel_and_wait([supervisor])
        if self._watch is not None:
            with contextlib.suppress(Exception):
                await self._watch.stop()
            self._watch = None

    def _on_entry(self, entry: KvEntry) -> None:
        key = entry.key
        if entry.deleted:
            if key == CHANNEL_DEFAULTS_KEY:
                self._defaults = {}
            else:
                self._configs.pop(key, None)
        else:
            try:
                value = entry.json()
                if not isinstance(value, dict):
                    raise ValueError("not a JSON object")
            except ValueError as exc:
                if self.on_error is not None:
                    self.on_error(ValueError(f"channel registry entry {key!r} unreadable: {exc}"))
                return
            if key == CHANNEL_DEFAULTS_KEY:
                self._defaults = value
            else:
                self._configs[key] = value
        if self.on_change is not None:
            self.on_change(key)

    # -- fresh reads -------------------------------------------------------------------------

    async def read(self, channel: str) -> Wire | None:
        value = await self.bucket.get_json(channel)
        return value if isinstance(value, dict) else None

    async def read_defaults(self) -> Wire:
        value = await self.bucket.get_json(CHANNEL_DEFAULTS_KEY)
        return value if isinstance(value, dict) else {}

    async def fresh_join_policy(self, channel: str) -> tuple[bool, int | float | None]:
        """(replay, replayWindow ms) read fresh; wildcards read only the defaults."""
        defaults = await self.read_defaults()
        cfg = await self.read(channel) if is_concrete_channel(channel) else None
        return effective_replay(cfg, defaults), effective_replay_window_ms(cfg, defaults)

    async def fresh_delivery_class(self, channel: str) -> str:
        defaults = await self.read_defaults()
        cfg = await self.read(channel) if is_concrete_channel(channel) else None
        return delivery_class_reading(cfg, defaults)[0]

    # -- writes ------------------------------------------------------------------------------

    async def set_channel(self, channel: str, patch: ChannelConfig | Wire) -> ChannelConfig:
        """Merge ``patch`` over the stored value; too-long text raises, never truncates."""
        existing = await self.read(channel)
        merged = merge_channel_config(existing, patch)
        await self.bucket.put(channel, merged.to_json())
        return merged

    async def set_defaults(self, patch: ChannelDefaults | Wire) -> ChannelDefaults:
        merged = merge_channel_defaults(await self.read_defaults(), patch)
        await self.bucket.put(CHANNEL_DEFAULTS_KEY, merged.to_json())
        return merged
