"""The delivery daemon (PROTOCOL §3.6, §5.1-§5.6): the Plane-3 durable backstop of one space.

Embeddable: ``DeliveryDaemon(conn, space, daemon_id)`` runs inside any asyncio program with
``start()`` / ``stop()`` and an observable :attr:`DeliveryDaemon.state`; the ``cotal-tui daemon``
command wraps it in a process. Lifecycle, exactly the reference's:

1. acquire ``lease.0`` by KV create with ``ready: false`` before binding anything; a live lease
   refuses the bind (:class:`~cotal_tui.mesh.lease.LeaseHeld`), never a retry into a split;
2. bind the ``ctl.delivery`` responder, the fan-out loop and the reader loop;
3. mark the lease ready by CAS;
4. renew by CAS every 15 s; a failed CAS (or renewals failing for a whole TTL) means the lease
   is lost: stop serving at once (:attr:`DaemonState.status` ``lost``);
5. release on a clean stop, so a successor binds at once; a crash lets the 30 s TTL free it.

Every reconnect re-arms the responder, both loops (credit re-requested, consumers re-ensured)
and the members watch; the presence roster re-arms itself.

``stages="processes"`` runs the fan-out and the reader as two child processes (``stages.py``),
so the daemon uses two cores; this process keeps the lease and the responder. A stage that
exits is the daemon's crash: the other stage is stopped and the lease released (status
``failed``). ``"inline"`` (the default of this class) runs everything in this event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Literal

import nats.errors
from nats.aio.client import Client
from nats.js.errors import NotFoundError

from cotal_tui.delivery.acl import acl_entry
from cotal_tui.delivery.chat_gaps import eviction_stats
from cotal_tui.delivery.client_adapter import ClientConnection
from cotal_tui.delivery.daemon_context import (
    Counters,
    DaemonContext,
    rebind_channels_cache,
    start_channels_cache,
    stop_channels_cache,
)
from cotal_tui.delivery.delivery_service import DeliveryService
from cotal_tui.delivery.fanout import FanoutWriter
from cotal_tui.delivery.fresh_cache import FreshKvCache
from cotal_tui.delivery.members import member_entry
from cotal_tui.delivery.reader import TrustedReader
from cotal_tui.delivery.stages import ForwardedInbox, StageProcesses
from cotal_tui.mesh.connection import Connection, PermissionDenied, PermissionRefusal
from cotal_tui.mesh.jsapi import API, STREAM_NOT_FOUND, JsApiError, JsApiUnavailable, api_request
from cotal_tui.mesh.kv import KvUnavailable
from cotal_tui.mesh.lease import (
    LeaseEntry,
    LeaseHeld,
    LeaseLost,
    acquire_lease,
    mark_lease_ready,
    release_lease,
    renew_lease,
)
from cotal_tui.mesh.presence import RosterWatch
from cotal_tui.mesh.space import stream_config
from cotal_tui.mesh.tasks import cancel_and_wait
from cotal_tui.protocol.dead_letter import dead_letter_stream_spec
from cotal_tui.protocol.names import LEASE_RENEW_MS, LEASE_TTL_MS, kv_stream

Status = Literal["idle", "starting", "serving", "stopping", "stopped", "lost", "failed"]
ErrorListener = Callable[[Exception], None]
LeaseListener = Callable[[int | None], None]


class DaemonError(Exception):
    """Base of the reasons a daemon could not start or keep serving."""


class SpaceNotProvisioned(DaemonError):
    pass


class DaemonPermissionDenied(DaemonError):
    """The credential in use may not do what the daemon needs (it is not a delivery profile)."""


class BrokerUnreachable(DaemonError):
    pass


@dataclass(frozen=True)
class LeaseView:
    holder: str | None = None
    ready: bool = False
    revision: int | None = None
    last_renew: float | None = None  # epoch seconds of the last successful write


@dataclass(frozen=True)
class DaemonState:
    space: str
    daemon_id: str
    status: Status
    lease: LeaseView
    counters: Counters
    members_indexed: int
    last_error: str | None
    stopped_reason: str | None
    evicted_before_routing: dict[str, int] = field(default_factory=dict)
    """CHAT messages per channel evicted before this daemon's fan-out routed them."""
    below_floor_at_bind: dict[str, int] | None = None
    """deliveryStats' ``belowFloorAtBind`` ({from, to, counted}); None when not counted."""
    below_floor_unknown: str | None = "not reported yet"
    """deliveryStats' ``belowFloorAtBindUnknown``: why that count is unknown (None: counted)."""


class DeadLetterStoreMissing(RuntimeError):
    """The space has no dead-letter store and this daemon may not create it."""


class DeliveryDaemon:
    def __init__(
        self,
        conn: Connection | Client,
        space: str,
        daemon_id: str,
        *,
        renew_interval_s: float = LEASE_RENEW_MS / 1000,
        lease_ttl_s: float = LEASE_TTL_MS / 1000,
        batch: int = 256,
        bind_timeout_s: float = 10.0,
        on_error: ErrorListener | None = None,
        on_lease: LeaseListener | None = None,
        stages: str = "inline",
        stage_stderr: int | None = None,
    ) -> None:
        if stages not in ("inline", "processes"):
            raise ValueError(f"stages must be 'inline' or 'processes', not {stages!r}")
        if stages == "processes" and not isinstance(conn, Connection):
            raise ValueError("stages='processes' needs a Connection (its server and creds)")
        if isinstance(conn, Client):
            conn = ClientConnection(conn)  # type: ignore[assignment]
        self.conn: Connection = conn  # type: ignore[assignment]
        self.space = space
        self.daemon_id = daemon_id
        self.renew_interval_s = renew_interval_s
        self.lease_ttl_s = lease_ttl_s
        self.bind_timeout_s = bind_timeout_s
        self._on_error_cb = on_error
        # Told the lease revision after every write of ours (None once released or lost), so a
        # holder file can later prove the record was last written by this process.
        self._on_lease_cb = on_lease
        # Set by a caller that proved lease.0 at this revision is its own dead process's.
        self.take_over_revision: int | None = None
        self.ctx = DaemonContext(self.conn, space, daemon_id, on_error=self._record_error)
        self.roster = RosterWatch(self.conn, space, on_error=self._record_error)
        self.ctx.mention_names = self._mention_names
        self.ctx.delivery_stats = self._delivery_stats
        self.service = DeliveryService(self.ctx)
        self.fanout = FanoutWriter(self.ctx, batch=batch)
        self.ctx.chat_seq_routed = self.fanout.evictions.routed
        self.reader = TrustedReader(self.ctx, batch=batch)
        self.stages: StageProcesses | None = None
        if stages == "processes":
            assert isinstance(conn, Connection)
            self.stages = StageProcesses(
                servers=conn.server_url,
                creds=conn.creds,
                space=space,
                daemon_id=daemon_id,
                batch=batch,
                bind_timeout_s=bind_timeout_s,
                on_error=self._record_error,
                on_crash=self._stage_crashed,
                stderr=stage_stderr,
            )
            self.ctx.inbox = ForwardedInbox(self.stages)  # type: ignore[assignment]
            self.ctx.route_member = self.stages.member_written
        self._crash_task: asyncio.Task[None] | None = None
        self._crash_pending: str | None = None
        self._status: Status = "idle"
        self._lease: LeaseEntry | None = None
        self._last_renew: float | None = None
        self._last_error: str | None = None
        self._stopped_reason: str | None = None
        self._refusals: list[PermissionRefusal] = []
        self._renew_task: asyncio.Task[None] | None = None
        self._unsubscribers: list[Callable[[], None]] = []
        self._done = asyncio.Event()
        self._bound = False

    # -- observation -------------------------------------------------------------------------

    @property
    def state(self) -> DaemonState:
        lease = self._lease
        view = LeaseView(
            holder=lease.info.holder if lease else None,
            ready=bool(lease and lease.info.ready),
            revision=lease.revision if lease else None,
            last_renew=self._last_renew,
        )
        stats = self._delivery_stats()
        below = stats.get("belowFloorAtBind")
        return DaemonState(
            self.space,
            self.daemon_id,
            self._status,
            view,
            self.counters if self.stages is not None else replace(self.ctx.counters),
            len(self.ctx.index),
            self._last_error,
            self._stopped_reason,
            dict(stats.get("evictedBeforeRouting") or {}),  # type: ignore[call-overload]
            dict(below) if isinstance(below, dict) else None,
            _text_or_none(stats.get("belowFloorAtBindUnknown")),
        )

    @property
    def counters(self) -> Counters:
        """The daemon's counts (with stage processes: theirs and this process's, summed)."""
        if self.stages is not None:
            return self.stages.counters(self.ctx.counters)
        return self.ctx.counters

    @property
    def stage_pids(self) -> dict[str, int | None]:
        """The stage processes' pids by role (empty when the stages run inline)."""
        return self.stages.pids if self.stages is not None else {}

    async def wait_done(self) -> str:
        """Until the daemon stops (clean stop, lost lease or failure); returns the reason."""
        await self._done.wait()
        return self._stopped_reason or self._status

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        if self._status not in ("idle", "stopped", "failed"):
            raise DaemonError(f"delivery daemon {self.daemon_id} is already {self._status}")
        self._status = "starting"
        self._crash_pending = None
        self._done.clear()
        self._stopped_reason = None
        self._unsubscribers.append(self.conn.add_error_listener(self._on_conn_error))
        try:
            await self._preflight()
            self._lease = await self._acquire()
            self._last_renew = time.time()
            self._lease_written()
        except BaseException as exc:
            self._finish("failed", str(exc))
            raise
        try:
            await self._bind()
        except BaseException as exc:
            await self._unbind()
            with contextlib.suppress(Exception):
                await release_lease(self.ctx.lease, self.daemon_id, self._lease.revision)
                self._lease_written_none()
            self._lease = None
            self._finish("failed", f"bind failed: {exc}")
            raise
        try:
            self._lease = await mark_lease_ready(
                self.ctx.lease, self.daemon_id, self._lease.revision
            )
            self._last_renew = time.time()
            self._lease_written()
        except Exception as exc:  # noqa: BLE001 - the reference ignores it; renew decides
            self._record_error(exc)
        self._unsubscribers.append(self.conn.register_rearm("delivery daemon", self._rearm))
        self._renew_task = asyncio.get_running_loop().create_task(
            self._renew_loop(), name=f"delivery-lease:{self.space}"
        )
        self._status = "serving"
        pending, self._crash_pending = self._crash_pending, None
        if pending is not None:
            self._stage_crashed(pending)

    async def stop(self, *, release: bool = True) -> None:
        """Stop serving; release the lease (if still ours) so a successor binds at once."""
        if self._status in ("idle", "stopped", "lost", "failed"):
            return
        self._status = "stopping"
        await self._cancel_renew()
        await self._unbind()
        if release and self._lease is not None:
            try:
                await asyncio.wait_for(
                    release_lease(self.ctx.lease, self.daemon_id, self._lease.revision), 2.0
                )
                self._lease_written_none()
            except Exception as exc:  # noqa: BLE001 - best effort; the TTL frees it anyway
                self._record_error(exc)
        self._finish("stopped", "stopped")

    def _lease_written(self) -> None:
        if self._on_lease_cb is not None:
            with contextlib.suppress(Exception):
                self._on_lease_cb(self._lease.revision if self._lease else None)

    def _finish(self, status: Status, reason: str) -> None:
        self._status = status
        self._stopped_reason = reason
        for unsub in self._unsubscribers:
            unsub()
        self._unsubscribers.clear()
        self._done.set()

    def _lease_written_none(self) -> None:
        if self._on_lease_cb is not None:
            with contextlib.suppress(Exception):
                self._on_lease_cb(None)

    async def _cancel_renew(self) -> None:
        task, self._renew_task = self._renew_task, None
        if task is not asyncio.current_task():
            await cancel_and_wait([task])

    # -- steps -------------------------------------------------------------------------------

    async def _preflight(self) -> None:
        """Tell a missing space, a refused credential and a dead broker apart before anything."""
        js = self.conn.js
        for stream in (
            kv_stream(self.ctx.lease.bucket),
            self.ctx.chat_stream,
            self.ctx.inbox_stream,
            self.ctx.dlv_stream,
            kv_stream(self.ctx.members.bucket),
            kv_stream(self.ctx.acls.bucket),
        ):
            try:
                await js.stream_info(stream)
            except NotFoundError as exc:
                raise SpaceNotProvisioned(
                    f"space {self.space!r} is not provisioned: stream {stream} does not exist. "
                    "Provision it first (`cotal-tui up`)"
                ) from exc
            except (nats.errors.TimeoutError, nats.errors.NoRespondersError) as exc:
                raise self._classify(f"reading stream info of {stream}") from exc
        await self._ensure_dead_letter_store()

    async def _ensure_dead_letter_store(self) -> None:
        """The dead-letter store exists (``up`` provisions it; an open space gets it lazily).

        Its absence never stops the daemon: dead letters are then counted and reported, and
        the messages are still acked out of the pipeline.
        """
        spec = dead_letter_stream_spec(self.space)
        try:
            await api_request(
                self.conn,
                f"{API}.STREAM.INFO.{spec.name}",
                None,
                what="dead-letter store",
                timeout=2.0,
            )
            return
        except JsApiError as exc:
            if exc.code != STREAM_NOT_FOUND:
                self._record_error(exc)
                return
        except JsApiUnavailable as exc:
            self._record_error(exc)
            return
        if getattr(self.conn, "creds", None):
            self._record_error(
                DeadLetterStoreMissing(
                    f"dead-letter store {spec.name} does not exist; dead letters are counted "
                    "but not recorded until the space is provisioned again (`cotal-tui up`)"
                )
            )
            return
        try:
            await self.conn.js.add_stream(stream_config(spec))
        except Exception as exc:  # noqa: BLE001 - reported; the daemon serves regardless
            self._record_error(exc)

    def _classify(self, what: str) -> DaemonError:
        if not self.conn.is_connected:
            return BrokerUnreachable(f"{what}: the broker is unreachable")
        if self._refusals:
            r = self._refusals[-1]
            return DaemonPermissionDenied(
                f"{what}: the broker refused {r.operation} to {r.subject!r}. The credential in "
                "use is not a delivery profile; mint one with `cotal-tui mint --profile delivery`"
            )
        return DaemonError(f"{what}: no answer from JetStream (timeout)")

    async def _acquire(self) -> LeaseEntry:
        try:
            take_over, self.take_over_revision = self.take_over_revision, None
            return await acquire_lease(self.ctx.lease, self.daemon_id, take_over_revision=take_over)
        except LeaseHeld:
            raise
        except KvUnavailable as exc:
            raise self._classify("acquiring the delivery lease") from exc

    async def _bind(self) -> None:
        # One watch on the members bucket feeds both the routing index and the reader's
        # fresh-read cache; a second one caches the ACL rows for the reader.
        members = FreshKvCache(self.ctx.members, member_entry, listener=self.ctx.index.on_kv)
        acls = FreshKvCache(self.ctx.acls, acl_entry)
        self.ctx.members_cache, self.ctx.acl_cache = members, acls
        for name, cache in (("members index", members), ("ACL cache", acls)):
            try:
                await cache.start(self.bind_timeout_s)
            except TimeoutError:
                raise DaemonError(
                    f"the {name} did not load within {self.bind_timeout_s:.0f}s"
                ) from None
        if self.stages is None:  # (a fan-out stage process watches the registry itself)
            await start_channels_cache(self.ctx, self.bind_timeout_s)
        await self.ctx.acker.start()
        if self.stages is not None:
            # the stages first: a join the responder takes can then always reach the fan-out
            await self.stages.start(self.bind_timeout_s + 20.0)
            await self.service.start()
            self._bound = True
            return
        await self.roster.start()
        await self.service.start()
        await self.fanout.start()
        await self.reader.start()
        self._bound = True

    async def _unbind(self) -> None:
        self._bound = False
        with contextlib.suppress(Exception):
            await self.service.stop()  # no more joins or leaves first
        if self.stages is not None:
            await self.stages.stop()
        else:
            await asyncio.gather(self.fanout.stop(), self.reader.stop(), return_exceptions=True)
        with contextlib.suppress(Exception):
            await self.roster.stop()
        for cache in (self.ctx.members_cache, self.ctx.acl_cache):
            if cache is not None:
                await cache.stop()
        self.ctx.members_cache = self.ctx.acl_cache = None
        await stop_channels_cache(self.ctx)
        await self.ctx.acker.stop()

    async def _rearm(self) -> None:
        if not self._bound:
            return
        self.ctx.acker.fail_pending("the connection was lost before the PubAck came (reconnected)")
        await self.service.rearm()
        if self.stages is None:  # a stage process re-arms on its own connection
            await self.fanout.rearm()
            await self.reader.rearm()
        for cache in (self.ctx.members_cache, self.ctx.acl_cache):
            if cache is not None:
                await cache.rebind()
        await rebind_channels_cache(self.ctx)

    async def _renew_loop(self) -> None:
        delay = self.renew_interval_s
        while True:
            await asyncio.sleep(delay)
            assert self._lease is not None
            try:
                self._lease = await renew_lease(
                    self.ctx.lease, self.daemon_id, self._lease.revision
                )
                self._last_renew = time.time()
                self._lease_written()
                delay = self.renew_interval_s
            except LeaseLost as exc:
                await self._lose(str(exc))
                return
            except Exception as exc:  # noqa: BLE001 - transient: retry until the TTL is gone
                self._record_error(exc)
                since = time.time() - (self._last_renew or 0)
                if since >= self.lease_ttl_s:
                    await self._lose(
                        f"lost the lease (no renewal for {since:.0f}s, past the "
                        f"{self.lease_ttl_s:.0f}s TTL) — exiting so the holder is single"
                    )
                    return
                delay = 1.0

    async def _lose(self, reason: str) -> None:
        """Stop serving at once: another holder may be live; never serve beside it."""
        self._record_error(
            LeaseLost(reason) if not reason.startswith("lost") else DaemonError(reason)
        )
        await self._unbind()
        self._lease = None
        self._lease_written_none()
        self._finish("lost", reason)

    def _stage_crashed(self, reason: str) -> None:
        if self._status == "starting":  # between the bind and "serving": acted on by start()
            self._crash_pending = reason
            return
        if self._status == "serving" and self._crash_task is None:
            self._crash_task = asyncio.get_running_loop().create_task(
                self._crash(reason), name=f"delivery-stage-crash:{self.space}"
            )

    async def _crash(self, reason: str) -> None:
        """A stage died: the daemon stops whole (the other stage too) and releases the lease,
        so a successor binds at once and nothing runs half a pipeline."""
        self._status = "stopping"
        self._record_error(DaemonError(reason))
        await self._cancel_renew()
        await self._unbind()
        if self._lease is not None:
            try:
                async with asyncio.timeout(2.0):
                    await release_lease(self.ctx.lease, self.daemon_id, self._lease.revision)
                self._lease_written_none()
            except Exception as exc:  # noqa: BLE001 - the TTL frees it anyway
                self._record_error(exc)
        self._lease = None
        self._crash_task = None
        self._finish("failed", reason)

    # -- callbacks ---------------------------------------------------------------------------

    def _delivery_stats(self) -> dict[str, object]:
        if self.stages is not None:
            return self.stages.delivery_stats
        return eviction_stats(self.fanout.evictions)

    def _mention_names(self) -> dict[str, list[str]]:
        names: dict[str, list[str]] = {}
        for p in self.roster.entries():
            names.setdefault(p.card.name.lower(), []).append(p.card.id)
        return names

    def _on_conn_error(self, exc: Exception) -> None:
        if isinstance(exc, PermissionDenied):
            self._refusals = [*self._refusals[-9:], exc.refusal]
        self._record_error(exc)

    def _record_error(self, exc: Exception) -> None:
        self._last_error = str(exc) or type(exc).__name__
        if self._on_error_cb is not None:
            with contextlib.suppress(Exception):
                self._on_error_cb(exc)


def _text_or_none(value: object) -> str | None:
    return None if value is None else str(value)
