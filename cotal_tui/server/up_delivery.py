"""The delivery daemon `cotal-tui up` runs in-process in auth mode (the reference's `cotal up`
starts one too), so a space brought up by `up` has its durable backstop without a second command.

It runs as the space's `delivery` profile (`<state-dir>/auth/delivery.<space>.creds`, minted on
first use) and is reported only once it is actually serving: `lease.0` ready and a
`listMemberships` probe on `ctl.delivery` answered (sent with the manager cred, which may publish
there). If another daemon holds a live lease, `up` says so plainly and keeps serving the broker:
that daemon is the space's backstop. A lease left by `up`'s own identity (a killed `up`, or this
process's daemon that stopped) is taken over when the holder file proves it is ours and dead, or
waited out with a countdown otherwise (server/stale_lease.py). Like `cotal-tui daemon`, the
daemon stops when the broker has been unreachable for 15 s; `up`'s supervisor
(server/up_supervise.py) starts it again once the broker answers. The broker keeps running
either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Protocol

from nats.aio.client import Client

from cotal_tui.delivery.client_adapter import ClientConnection
from cotal_tui.delivery.daemon import DaemonError, DeliveryDaemon
from cotal_tui.delivery.stages import default_stages
from cotal_tui.mesh.connection import Connection
from cotal_tui.mesh.control import ControlError, NoResponders, RequestTimeout, request_bound
from cotal_tui.mesh.endpoint import creds_identity
from cotal_tui.mesh.kv import KvBucket, KvError
from cotal_tui.mesh.lease import (
    LeaseHeld,
    LeaseVerdict,
    ResponderProbe,
    lease_verdict,
    present_lease_verdict,
    read_lease,
)
from cotal_tui.mesh.tasks import cancel_and_wait
from cotal_tui.protocol.models import EndpointRef
from cotal_tui.protocol.names import delivery_bucket
from cotal_tui.protocol.subjects import CONTROL_DELIVERY
from cotal_tui.server.auth import SpaceAuth
from cotal_tui.server.holder_file import HolderFile
from cotal_tui.server.stale_lease import HolderBusy, claim_holder, start_daemon

PROBE_TIMEOUT_S = 2.0
READY_TIMEOUT_S = 20.0
BROKER_GONE_S = 15.0


class Reporter(Protocol):
    def ok(self, text: str) -> None: ...
    def info(self, text: str) -> None: ...
    def fail(self, text: str) -> None: ...


class UpDelivery:
    """Start, confirm, watch and stop the in-process daemon of one space."""

    def __init__(self, url: str, space: str, auth: SpaceAuth, manager: Client, report: Reporter):
        self.url = url
        self.space = space
        self.auth = auth
        self.manager = ClientConnection(manager)
        self.manager_ref = EndpointRef(
            id=creds_identity(str(auth.manager_creds_path())), name="cotal-tui-up"
        )
        self.report = report
        self.conn: Connection | None = None
        self.daemon: DeliveryDaemon | None = None
        self._watch: asyncio.Task[None] | None = None
        self.holder: HolderFile | None = None
        self.broker_gone_s = BROKER_GONE_S
        self.stopped = asyncio.Event()
        """Set when the daemon stopped by itself (broker gone, lost lease); cleared on start."""
        self.deferred = False
        """Another live holder serves the space (another identity or process): not retried."""

    async def start(self, ready_timeout: float = READY_TIMEOUT_S) -> bool:
        """True once the daemon serves; False (said why) when it did not start or confirm."""
        creds = str(self.auth.delivery_creds_path())
        ident = creds_identity(creds)
        self.conn = Connection(self.url, "delivery", ident, creds=creds)
        try:
            await self.conn.connect()
        except Exception as exc:  # noqa: BLE001 - reported; the broker keeps serving
            self.report.fail(f"delivery daemon not started: cannot connect as {ident} ({exc})")
            await self._close()
            return False
        if self.holder is None:
            self.holder = HolderFile.for_daemon(self.auth.state_dir, self.space, ident)
        try:
            claim_holder(self.holder)
        except HolderBusy as exc:
            self.report.info(f"delivery daemon not started: {exc} The broker keeps serving.")
            await self._close()
            self.deferred = True
            return False
        self.stopped.clear()
        self.deferred = False
        self.daemon = DeliveryDaemon(
            self.conn,
            self.space,
            ident,
            on_error=lambda e: self.report.info(f"delivery: {e}"),
            on_lease=self.holder.record,
            stages=default_stages(),
        )
        try:
            await start_daemon(
                self.daemon, self.holder, lambda t: self.report.info(f"delivery: {t}"), wait=True
            )
        except LeaseHeld as exc:
            self.report.info(
                f"delivery daemon not started: {exc} The broker keeps serving; that daemon "
                "is the space's durable backstop."
            )
            await self._close()
            self.deferred = True
            return False
        except DaemonError as exc:
            self.report.fail(
                f"delivery daemon not started ({type(exc).__name__}: {exc}); the broker keeps "
                "serving, durable-class channels are live only until a daemon runs"
            )
            await self._close()
            return False
        self._watch = asyncio.create_task(self._watch_stopped(), name="up-delivery-watch")
        verdict, ms = await self.wait_serving(ready_timeout)
        if not verdict.green:
            self.report.fail(
                f"delivery daemon {ident} bound but not serving after {ready_timeout:g}s: "
                f"lease {verdict.verdict}, responder {verdict.responder_text}"
            )
            return False
        self.report.ok(
            f"delivery daemon serving space {self.space!r} as {ident} (lease.0 ready, "
            f"ctl.delivery answered in {ms:.0f} ms)"
        )
        return True

    @property
    def running(self) -> bool:
        """The daemon is bound (serving, or bound and not yet confirmed)."""
        return self.daemon is not None and self.daemon.state.status in ("starting", "serving")

    async def wait_serving(self, timeout: float) -> tuple[LeaseVerdict, float]:
        """Poll the lease and probe the responder until both say serving (or the timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            verdict, ms = await self.verdict()
            if verdict.green or time.monotonic() >= deadline:
                return verdict, ms
            await asyncio.sleep(0.2)  # e.g. nats-server's brief 503 after a new subscription

    async def verdict(self) -> tuple[LeaseVerdict, float]:
        try:
            lease = await read_lease(KvBucket(self.manager, delivery_bucket(self.space)))  # type: ignore[arg-type]
        except KvError:
            return lease_verdict("refused"), 0.0
        if lease is None:
            return lease_verdict("absent"), 0.0
        responder, ms = await self.probe()
        return present_lease_verdict(lease.info, responder), ms

    async def probe(self) -> tuple[ResponderProbe, float]:
        t0 = time.perf_counter()
        try:
            await request_bound(
                self.manager,  # type: ignore[arg-type]
                self.space,
                CONTROL_DELIVERY,
                self.manager_ref,
                "listMemberships",
                {},
                timeout=PROBE_TIMEOUT_S,
            )
        except NoResponders:
            return "no-responders", 0.0
        except (RequestTimeout, ControlError):
            return "timeout", 0.0
        return "answered", (time.perf_counter() - t0) * 1000  # any reply, ok or not, is an answer

    async def _watch_stopped(self) -> None:
        assert self.daemon is not None
        done = asyncio.ensure_future(self.daemon.wait_done())
        gone = asyncio.ensure_future(self._broker_gone())
        try:
            await asyncio.wait((done, gone), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (done, gone):
                t.cancel()
        if gone.done() and not gone.cancelled() and not done.done():
            reason = gone.result()
            with contextlib.suppress(Exception):  # keep the lease record: a restart takes it
                await asyncio.wait_for(self.daemon.stop(release=False), 2.0)
        else:
            reason = self.daemon.state.stopped_reason or self.daemon.state.status
        if gone.done():
            self.report.fail(
                f"delivery daemon stopped: {reason}; durable-class channels are live only until "
                "it runs again — `up` starts it again once the broker answers"
            )
        elif self.daemon.state.status != "stopped":
            self.report.fail(
                f"delivery daemon stopped: {reason}; the broker keeps serving, durable-class "
                "channels are live only until a daemon runs again — `up` starts it again"
            )
        await self._close()
        self.stopped.set()

    async def _broker_gone(self) -> str:
        """Returns once the daemon's connection has been down for :attr:`broker_gone_s`."""
        since: float | None = None
        while True:
            await asyncio.sleep(0.5)
            conn = self.conn
            if conn is None or conn.is_connected:
                since = None
                continue
            since = since or time.monotonic()
            if time.monotonic() - since >= self.broker_gone_s:
                gone = self.broker_gone_s
                return f"the broker at {self.url} has been unreachable for {gone:.0f}s"

    async def stop(self) -> None:
        """Stop serving and release the lease, so a successor binds at once."""
        watch, self._watch = self._watch, None
        await cancel_and_wait([watch])
        if self.daemon is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.daemon.stop(), 6.0)
        await self._close()
        if self.holder is not None:
            self.holder.unlock()

    async def _close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 2.0)
