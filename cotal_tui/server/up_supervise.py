"""`up`'s supervision (issue 11, cause 4): its nats-server and its in-process delivery daemon.

- **nats-server**: if the process dies, it is started again on the same store and port, after
  a bounded backoff (0 s the first time, then 1, 2, 4, 5, 5 … s while restarts keep failing),
  with one line each time. A restart that stays up for a minute resets the backoff.
- **delivery daemon**: when it stops by itself (the broker unreachable for 15 s, the lease lost)
  it is started again once the broker answers, with the same bounded backoff while starts fail.
  A daemon that defers to another live holder is not retried (that holder is the backstop).

`cotal-tui daemon` has no supervisor of its own: it exits 1 and leaves restarting to systemd or
whatever runs it (README, "Running the daemon under systemd").
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from cotal_tui.mesh.connection import server_list
from cotal_tui.server.process import EmbeddedServer, EmbeddedServerError, port_open
from cotal_tui.server.up_delivery import Reporter, UpDelivery

BACKOFF_MAX_S = 5.0
STABLE_AFTER_S = 60.0
POLL_S = 0.5


class Backoff:
    """0, 1, 2, 4 … BACKOFF_MAX_S; :meth:`reset` after a spell of success."""

    def __init__(self, maximum: float = BACKOFF_MAX_S) -> None:
        self.maximum = maximum
        self.attempt = 0

    def next(self) -> float:
        delay = 0.0 if self.attempt == 0 else min(self.maximum, 2.0 ** (self.attempt - 1))
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    if seconds <= 0:
        return
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stop.wait()


async def supervise_server(
    server: EmbeddedServer,
    report: Reporter,
    stop: asyncio.Event,
    on_restarted: Callable[[], None] | None = None,
) -> None:
    """Keep ``server`` running until ``stop``: restart it (same store, same port) if it dies."""
    backoff = Backoff()
    up_since = time.monotonic()
    failing = False
    while not stop.is_set():
        await _pause(stop, POLL_S)
        if stop.is_set():
            return
        if server.running:
            if time.monotonic() - up_since >= STABLE_AFTER_S:
                backoff.reset()
            continue
        delay = backoff.next()
        if not failing:
            tail = server.log_tail(5).splitlines()
            report.fail(
                "nats-server exited unexpectedly"
                + (f" (log tail: {tail[-1]})" if tail else "")
                + f"; restarting it on the same store and port {server.port}"
                + (f" in {delay:g}s" if delay else "")
            )
        await _pause(stop, delay)
        if stop.is_set():
            return
        try:
            server.start()  # on the main thread: the child's parent-death signal needs it
        except EmbeddedServerError as exc:
            failing = True
            wait = min(backoff.maximum, 2.0 ** max(0, backoff.attempt - 1))
            report.fail(
                f"nats-server restart failed: {str(exc).splitlines()[0]}; retrying in {wait:g}s"
            )
            continue
        failing = False
        up_since = time.monotonic()
        report.ok(f"nats-server restarted (pid {server.pid}, store {server.store_dir})")
        if on_restarted is not None:
            on_restarted()


async def supervise_delivery(
    delivery: UpDelivery,
    report: Reporter,
    stop: asyncio.Event,
    broker_up: Callable[[], bool],
    first_done: asyncio.Event | None = None,
) -> None:
    """Start ``delivery`` and keep it started until ``stop`` (see the module docstring).
    ``first_done`` is set once the first start has ended (serving, deferred or failed)."""
    backoff = Backoff()
    first = True
    while not stop.is_set():
        if delivery.deferred:
            return  # another live holder serves the space
        if not first:
            if not broker_up():
                await _pause(stop, POLL_S)
                continue
            delay = backoff.next()
            report.info(
                "delivery daemon: the broker answers; starting the daemon again"
                + (f" in {delay:g}s" if delay else "")
            )
            await _pause(stop, delay)
            if stop.is_set():
                return
        started_at = time.monotonic()
        try:
            await delivery.start()
        finally:
            if first and first_done is not None:
                first_done.set()
        first = False
        if delivery.deferred:
            return
        if delivery.running:
            stopped = asyncio.ensure_future(delivery.stopped.wait())
            stopping = asyncio.ensure_future(stop.wait())
            try:
                await asyncio.wait((stopped, stopping), return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopped.cancel()
                stopping.cancel()
            if time.monotonic() - started_at >= STABLE_AFTER_S:
                backoff.reset()
        elif backoff.attempt == 0:
            backoff.next()  # a failed start waits at least 1 s before the next


def broker_answers(url: str) -> Callable[[], bool]:
    """Whether any server of ``url`` (one URL or a cluster's comma-separated list) accepts a
    TCP connection: the cue to start the daemon again."""
    addresses = []
    for item in server_list(url):
        parsed = urlsplit(item if "://" in item else f"nats://{item}")
        addresses.append((parsed.hostname or "127.0.0.1", parsed.port or 4222))
    return lambda: any(port_open(host, port) for host, port in addresses)
