"""Run the delivery daemon on a plain nats-py ``Client`` someone else connected.

:class:`~cotal_tui.delivery.daemon.DeliveryDaemon` is written against
:class:`~cotal_tui.mesh.connection.Connection` (state, re-arm registry, refusal routing). This
adapter gives a bare client the same surface by chaining its reconnected and error callbacks,
so an existing asyncio program can embed the daemon on the connection it already has. The
client should have been connected with ``inbox_prefix=_INBOX_<id>`` under auth and
``max_reconnect_attempts=-1`` (PROTOCOL §10.1, §10.11).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from nats.aio.client import Client
from nats.js import JetStreamContext

from cotal_tui.mesh.connection import (
    WATCH_INACTIVE_S,
    PermissionDenied,
    TransportError,
    parse_refusal,
)

log = logging.getLogger(__name__)


class ClientConnection:
    def __init__(self, nc: Client, *, js_timeout: float = 5.0) -> None:
        self._nc = nc
        self._js_timeout = js_timeout
        self._js: JetStreamContext | None = None
        self._rearm: list[tuple[str, Callable[[], Awaitable[None]]]] = []
        self._error_listeners: list[Callable[[Exception], None]] = []
        self._rearm_task: asyncio.Task[None] | None = None
        self.creds = None
        self.watch_inactive_s = WATCH_INACTIVE_S
        prev_reconnected = nc._reconnected_cb
        prev_error = nc._error_cb

        async def reconnected() -> None:
            if prev_reconnected is not None:
                await prev_reconnected()
            self._js = None
            self._rearm_task = asyncio.get_running_loop().create_task(self._run_rearm())

        async def error(exc: Exception) -> None:
            with contextlib.suppress(Exception):
                await prev_error(exc)
            refusal = parse_refusal(str(exc))
            wrapped: Exception = (
                PermissionDenied(refusal) if refusal else TransportError(str(exc) or repr(exc))
            )
            for fn in list(self._error_listeners):
                with contextlib.suppress(Exception):
                    fn(wrapped)

        nc._reconnected_cb = reconnected
        nc._error_cb = error

    @property
    def nc(self) -> Client:
        return self._nc

    @property
    def js(self) -> JetStreamContext:
        if self._js is None:
            self._js = self._nc.jetstream(timeout=self._js_timeout)
        return self._js

    @property
    def is_connected(self) -> bool:
        return self._nc.is_connected

    def register_rearm(self, owner: str, fn: Callable[[], Awaitable[None]]) -> Callable[[], None]:
        entry = (owner, fn)
        self._rearm.append(entry)
        return lambda: self._rearm.remove(entry) if entry in self._rearm else None

    def add_error_listener(self, fn: Callable[[Exception], None]) -> Callable[[], None]:
        self._error_listeners.append(fn)
        return lambda: self._error_listeners.remove(fn) if fn in self._error_listeners else None

    async def _run_rearm(self) -> None:
        for owner, fn in list(self._rearm):
            try:
                await fn()
            except Exception as exc:  # noqa: BLE001 - the next owner is still re-armed
                log.warning("re-arming %s after reconnect failed: %r", owner, exc)
