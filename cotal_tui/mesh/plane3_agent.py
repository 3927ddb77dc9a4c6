"""The agent side of Plane-3 durable membership (PROTOCOL §5.7, §5.9), for auth mode.

Plugged into the endpoint through its seam: ``Endpoint(..., durable=Plane3Agent)``. It asks the
delivery daemon over ``ctl.delivery`` (explicit ``<request>.reply.<uuid>`` lane; a 503 is "no
responders") and keeps, like the reference:

- ``generations``: channel → join generation (kept across reconnects, cleared on stop);
- the boot-join reconcile loop: a boot channel whose self-join failed is retried (sleep first,
  1 s doubling to 30 s, forever, across reconnects) until it is durable;
- fail-closed leave: the generation is re-resolved through ``listMemberships`` when unknown; no
  responder means nothing to tombstone; any other failure raises and changes nothing;
- the leave-retry loop after a late broker refusal, until the tombstone lands.

Both loops sleep their backoff on a per-entry :class:`asyncio.Event`, so
:meth:`Plane3Agent.retry_now` can wake a pending entry to try at once (the console's "retry
now") without reaching into the loops or racing them for the generation bookkeeping.

Beyond the reference, :meth:`Plane3Agent.delivery_health` adds a timed ``listMemberships``
round trip, so a fresh lease whose daemon no longer answers reads ``degraded`` with the reason
named, and a credential that may not publish on ``ctl.delivery`` reads the responder as
``unknown (cannot probe with this credential)`` — never green.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from cotal_tui.mesh.control import ControlError, NoResponders, RequestTimeout
from cotal_tui.mesh.durable import DurableHost, JoinDurability, PendingOp
from cotal_tui.mesh.lease import (
    LeaseRead,
    LeaseVerdict,
    ResponderProbe,
    lease_verdict,
    present_lease_verdict,
)
from cotal_tui.mesh.tasks import cancel_and_wait
from cotal_tui.protocol.channels import is_concrete_channel, subject_matches
from cotal_tui.protocol.names import (
    DURABLE_JOIN_TIMEOUT_MS,
    DURABLE_LEAVE_TIMEOUT_MS,
    LIST_MEMBERSHIPS_TIMEOUT_MS,
)
from cotal_tui.protocol.subjects import delivery_request_subject

BACKOFF_BASE_S = 1.0
BACKOFF_MAX_S = 30.0
PROBE_TIMEOUT_S = 2.0


RetryOperation = Literal["join", "leave"]


class DeliveryRefused(ControlError):
    """The daemon answered ``ok: false``; the message is the daemon's."""


class DeliveryNotPermitted(DeliveryRefused):
    """The credential may not publish the ``ctl.delivery`` request at all (checked locally)."""


class NothingPending(LookupError):
    """:meth:`Plane3Agent.retry_now` named a channel/operation with no retry loop waiting."""


def backoff_s(attempt: int, base: float = BACKOFF_BASE_S, cap: float = BACKOFF_MAX_S) -> float:
    """``min(30 s, 1 s · 2^attempt)``: 1, 2, 4, 8, 16, 30, 30, …"""
    return min(cap, base * (2 ** min(attempt, 16)))


@dataclass(frozen=True)
class ChannelHealth:
    channel: str
    health: str | None  # "active" | "degraded" | None (live class, not joined, no daemon known)
    reason: str | None = None
    durable_unclosed: bool = False


@dataclass(frozen=True)
class DeliveryHealth:
    lease: LeaseVerdict
    responder_ms: float | None
    channels: list[ChannelHealth]
    pending_boot_joins: list[PendingOp] = field(default_factory=list)
    pending_leaves: list[PendingOp] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        def op(p: PendingOp) -> dict[str, Any]:
            out: dict[str, Any] = {"channel": p.channel, "operation": p.operation}
            out["attempt"] = p.attempt
            if p.next_retry_at is not None:
                out["nextRetryAt"] = int(p.next_retry_at * 1000)
            if p.last_error is not None:
                out["lastError"] = p.last_error
            return out

        lease: dict[str, Any] = {
            "verdict": self.lease.verdict,
            "responder": self.lease.responder_text,
        }
        if self.lease.holder is not None:
            lease["holder"] = self.lease.holder
        if self.lease.age_s is not None:
            lease["ageS"] = round(self.lease.age_s, 1)
        if self.responder_ms is not None:
            lease["responderMs"] = round(self.responder_ms, 1)
        return {
            "lease": lease,
            "channels": [
                {
                    k: v
                    for k, v in (
                        ("channel", c.channel),
                        ("deliveryHealth", c.health),
                        ("reason", c.reason),
                        ("durableUnclosed", c.durable_unclosed),
                    )
                    if v is not None
                }
                for c in self.channels
            ],
            "pendingBootJoins": [op(p) for p in self.pending_boot_joins],
            "pendingLeaves": [op(p) for p in self.pending_leaves],
        }


class Plane3Agent:
    def __init__(
        self,
        endpoint: DurableHost,
        *,
        backoff_base_s: float = BACKOFF_BASE_S,
        backoff_max_s: float = BACKOFF_MAX_S,
    ) -> None:
        self.endpoint = endpoint
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.generations: dict[str, int] = {}
        self._boot: dict[str, PendingOp] = {}
        self._leaves: dict[str, PendingOp] = {}
        self._leave_generation: dict[str, int] = {}
        self._tasks: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._wake: dict[tuple[RetryOperation, str], asyncio.Event] = {}
        self._stopped = False

    # -- ctl.delivery client -----------------------------------------------------------------

    async def _ask(self, op: str, args: dict[str, Any], timeout_ms: int) -> Any:
        if not self.can_probe():
            # The broker would drop the request silently: a durableJoin would wait out 30 s.
            raise DeliveryNotPermitted(
                f"{op}: this credential may not publish on ctl.delivery, so the delivery daemon "
                "cannot be asked (memberships stay live only); use an agent cred"
            )
        reply = await self.endpoint.request_delivery(op, args, timeout=timeout_ms / 1000)
        if not reply.ok:
            raise DeliveryRefused(reply.error or f"{op} refused without a reason")
        return reply.data

    async def durable_join(self, channel: str) -> JoinDurability:
        data = await self._ask("durableJoin", {"channel": channel}, DURABLE_JOIN_TIMEOUT_MS)
        data = data if isinstance(data, dict) else {}
        generation = data.get("generation")
        return JoinDurability(
            bool(data.get("durable")),
            data.get("reason"),
            generation if isinstance(generation, int) else None,
        )

    async def durable_leave(self, channel: str, generation: int) -> dict[str, Any]:
        args = {"channel": channel, "generation": generation}
        data = await self._ask("durableLeave", args, DURABLE_LEAVE_TIMEOUT_MS)
        return data if isinstance(data, dict) else {}

    async def list_memberships(self, timeout_ms: int = LIST_MEMBERSHIPS_TIMEOUT_MS) -> list[dict]:
        data = await self._ask("listMemberships", {}, timeout_ms)
        rows = data.get("memberships") if isinstance(data, dict) else None
        return [r for r in rows or [] if isinstance(r, dict)]

    # -- the seam ----------------------------------------------------------------------------

    @property
    def auth_mode(self) -> bool:
        return self.endpoint.creds is not None

    async def on_connected(self, first: bool, boot_channels: list[str]) -> None:
        if not (first and self.auth_mode and boot_channels):
            return
        if not self.can_probe():
            return  # nothing to reconcile: this credential can never ask the daemon
        for channel in boot_channels:
            if not is_concrete_channel(channel) or channel in self.generations:
                continue
            try:
                cls = await self.endpoint.registry.fresh_delivery_class(channel)
            except Exception:  # noqa: BLE001 - a read error skips the channel, as the reference
                continue
            if cls != "durable":
                continue
            try:
                got = await self.durable_join(channel)
            except Exception as exc:  # noqa: BLE001 - retried by the reconcile loop
                if not isinstance(exc, NoResponders):
                    self.endpoint.report_error(exc, f"durable self-join of {channel}")
                self._reconcile(channel, str(exc))
                continue
            if got.durable and got.generation is not None:
                self.generations[channel] = got.generation
            else:
                self._reconcile(channel, got.reason)

    async def on_join(self, channel: str) -> JoinDurability:
        got = await self.durable_join(channel)
        if got.durable and got.generation is not None:
            self.generations[channel] = got.generation
        return got

    async def before_leave(self, channel: str) -> None:
        """Fail closed: raise (and change nothing) unless the membership is closed or absent."""
        if not self.auth_mode or self.endpoint.registry.delivery_class(channel) != "durable":
            return
        generation = self.generations.get(channel)
        if generation is None:
            try:
                rows = await self.list_memberships()
            except NoResponders:
                return  # no daemon: nothing to tombstone
            for row in rows:
                if row.get("channel") == channel and isinstance(row.get("generation"), int):
                    generation = row["generation"]
        if generation is None:
            return
        await self.durable_leave(channel, generation)
        self.generations.pop(channel, None)

    def on_refused(self, channel: str) -> None:
        self.leave_later(channel)

    def leave_later(self, channel: str, then: Callable[[], Awaitable[Any]] | None = None) -> bool:
        """Retry the durable leave of ``channel`` in the background until the tombstone lands
        (the leave-retry loop of a late refusal, listed in :meth:`pending_leaves`), then run
        ``then``. False when there is no known membership to close (or we are stopped)."""
        generation = self.generations.get(channel)
        if generation is None or self._stopped:
            return False
        self._leave_generation[channel] = generation
        self._leaves[channel] = PendingOp(channel, "durableLeave", 0)
        self._wake.setdefault(("leave", channel), asyncio.Event())
        self._spawn(("leave", channel), self._close_refused(channel, generation, then))
        return True

    async def stop(self) -> None:
        self._stopped = True
        await cancel_and_wait(list(self._tasks.values()))
        self._tasks.clear()
        self.generations.clear()

    def pending_boot_joins(self) -> list[PendingOp]:
        return sorted(self._boot.values(), key=lambda p: p.channel)

    def pending_leaves(self) -> list[PendingOp]:
        return sorted(self._leaves.values(), key=lambda p: p.channel)

    def has_membership(self, channel: str) -> bool:
        return channel in self.generations

    def generation(self, channel: str) -> int | None:
        return self.generations.get(channel)

    def retry_now(self, channel: str, operation: RetryOperation) -> None:
        """Wake the backoff sleep of a pending boot join or leave retry so it tries at once.

        Returns at once; the attempt runs in the entry's own loop, which keeps all the
        bookkeeping (generation, pending entry, attempt count, last error). Waking an entry whose
        attempt is already in flight lets that attempt stand for the retry. Raises
        :class:`NothingPending` when no loop waits on that channel and operation.
        """
        if operation not in ("join", "leave"):
            raise NothingPending(
                f"cannot retry {operation!r} on #{channel}: the operation is 'join' or 'leave'"
            )
        wake = self._wake.get((operation, channel))
        if wake is None:
            what = "boot join" if operation == "join" else "leave retry"
            raise NothingPending(
                f"no pending {what} for #{channel}: nothing is retrying there (it completed, "
                "or never failed)"
            )
        wake.set()

    # -- loops -------------------------------------------------------------------------------

    def _spawn(self, key: tuple[str, str], coro: Any) -> None:
        old = self._tasks.get(key)
        if old is not None and not old.done():
            coro.close()
            return
        task = asyncio.get_running_loop().create_task(coro, name=f"plane3-{key[0]}:{key[1]}")
        self._tasks[key] = task
        task.add_done_callback(
            lambda t, k=key: self._tasks.pop(k, None) if self._tasks.get(k) is t else None
        )

    def _reconcile(self, channel: str, last_error: str | None) -> None:
        if channel in self._boot or self._stopped:
            return
        self._boot[channel] = PendingOp(channel, "durableJoin", 0, None, last_error)
        self._wake[("join", channel)] = asyncio.Event()
        self._spawn(("boot", channel), self._reconcile_loop(channel, last_error))

    async def _reconcile_loop(self, channel: str, last_error: str | None) -> None:
        attempt = 0
        try:
            while not self._stopped:
                delay = backoff_s(attempt, self.backoff_base_s, self.backoff_max_s)
                self._boot[channel] = PendingOp(
                    channel, "durableJoin", attempt, time.time() + delay, last_error
                )
                await self._backoff(("join", channel), delay)
                if self._stopped or channel in self.generations:
                    return
                if channel not in self.endpoint.joined_channels():
                    return
                try:
                    got = await self.durable_join(channel)
                except Exception as exc:  # noqa: BLE001 - keep looping
                    last_error = str(exc) or type(exc).__name__
                    if attempt == 0 and not isinstance(exc, NoResponders):
                        self.endpoint.report_error(exc, f"durable self-join of {channel}")
                else:
                    if got.durable and got.generation is not None:
                        self.generations[channel] = got.generation
                        return
                    last_error = got.reason or "durable backstop unavailable"
                attempt += 1
        finally:
            self._boot.pop(channel, None)
            self._wake.pop(("join", channel), None)

    async def _close_refused(
        self, channel: str, generation: int, then: Callable[[], Awaitable[Any]] | None = None
    ) -> None:
        attempt = 0
        last_error: str | None = None
        try:
            while not self._stopped:
                try:
                    await self.durable_leave(channel, generation)
                except Exception as exc:  # noqa: BLE001 - retried until the tombstone lands
                    last_error = str(exc) or type(exc).__name__
                    if attempt == 0:
                        self.endpoint.report_error(
                            exc, f"closing the refused durable membership of {channel}"
                        )
                else:
                    if self.generations.get(channel) == generation:
                        self.generations.pop(channel, None)
                    if then is not None:
                        try:
                            await then()
                        except Exception as exc:  # noqa: BLE001 - reported, the loop is done
                            self.endpoint.report_error(exc, f"after closing {channel}")
                    return
                delay = backoff_s(attempt, self.backoff_base_s, self.backoff_max_s)
                attempt += 1
                self._leaves[channel] = PendingOp(
                    channel, "durableLeave", attempt, time.time() + delay, last_error
                )
                await self._backoff(("leave", channel), delay)
        finally:
            self._leaves.pop(channel, None)
            self._leave_generation.pop(channel, None)
            self._wake.pop(("leave", channel), None)

    async def _backoff(self, key: tuple[RetryOperation, str], delay: float) -> None:
        """Sleep ``delay`` seconds, or less if :meth:`retry_now` wakes this entry."""
        wake = self._wake.setdefault(key, asyncio.Event())
        wake.clear()  # a wake during the last attempt was that attempt
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):  # not wait_for: it can swallow a cancel in 3.11
                await wake.wait()

    # -- delivery health (§5.9 plus a responder probe) ----------------------------------------

    def can_probe(self) -> bool:
        """Whether this credential may publish the ``ctl.delivery`` request at all."""
        return can_probe_delivery(self.endpoint)

    async def probe_responder(self) -> tuple[ResponderProbe, float | None]:
        return await probe_delivery_responder(self.endpoint)

    async def lease_verdict(self) -> tuple[LeaseVerdict, float | None, LeaseRead]:
        return await delivery_lease_verdict(self.endpoint)

    async def delivery_health(self) -> DeliveryHealth:
        verdict, ms, read = await self.lease_verdict()
        unclosed = {p.channel for p in self.pending_leaves()}
        rows = []
        registry = self.endpoint.registry
        for channel in sorted(set(self.endpoint.joined_channels()) | unclosed):
            joined = channel in self.endpoint.joined_channels()
            health: str | None = None
            reason: str | None = None
            if read.known and joined and registry.delivery_class(channel) == "durable":
                member = self.has_membership(channel)
                if verdict.green and member:
                    health = "active"
                else:
                    health = "degraded"
                    reason = _degraded_reason(verdict, member)
            rows.append(ChannelHealth(channel, health, reason, channel in unclosed))
        return DeliveryHealth(verdict, ms, rows, self.pending_boot_joins(), self.pending_leaves())


def can_probe_delivery(endpoint: DurableHost) -> bool:
    """Whether the endpoint's credential may publish its ``ctl.delivery`` request at all."""
    claims = _creds_permissions(endpoint.creds)
    if claims is None:
        return True  # open mode, or allow-all
    subject = delivery_request_subject(endpoint.space, endpoint.id)
    allow, deny = claims
    if any(subject_matches(p, subject) for p in deny):
        return False
    return not allow or any(subject_matches(p, subject) for p in allow)


async def probe_delivery_responder(endpoint: DurableHost) -> tuple[ResponderProbe, float | None]:
    """A timed ``listMemberships`` round trip: is a daemon answering ``ctl.delivery`` now?"""
    if not can_probe_delivery(endpoint):
        return "unknown", None
    t0 = time.perf_counter()
    try:
        await endpoint.request_delivery("listMemberships", {}, timeout=PROBE_TIMEOUT_S)
    except NoResponders:
        return "no-responders", None
    except RequestTimeout:
        return "timeout", None
    return "answered", (time.perf_counter() - t0) * 1000


async def delivery_lease_verdict(
    endpoint: DurableHost,
) -> tuple[LeaseVerdict, float | None, LeaseRead]:
    """Read ``lease.0``, probe the responder when a lease exists, and look up the verdict.

    Works for any started endpoint (``status`` and the console use it too); returns the
    verdict, the probe's round-trip time in ms (when it answered) and the raw lease read.
    """
    read = await endpoint.read_lease()
    if not read.known:
        kind = "unreachable" if not endpoint.connected else "refused"
        return lease_verdict(kind), None, read  # type: ignore[arg-type]
    if read.lease is None:
        return lease_verdict("absent"), None, read
    responder, ms = await probe_delivery_responder(endpoint)
    return present_lease_verdict(read.lease, responder), ms, read


def _degraded_reason(verdict: LeaseVerdict, member: bool) -> str:
    if verdict.verdict == "unverified" and verdict.responder == "unknown":
        why = "delivery daemon unconfirmed: responder unknown (cannot probe with this credential)"
    elif verdict.verdict == "serving":
        why = ""
    elif verdict.verdict == "no-responder":
        why = f"lease held but no responder answers ctl.delivery ({verdict.responder_text})"
    else:
        why = f"delivery lease {verdict.verdict}"
    if not member:
        why = f"{why}; no durable membership" if why else "no durable membership"
    return why


def _creds_permissions(path: str | None) -> tuple[list[str], list[str]] | None:
    """(pub allow, pub deny) from a creds file's JWT; None when unrestricted or unreadable."""
    if not path:
        return None
    try:
        import base64
        import json
        from pathlib import Path

        lines = Path(path).read_text().splitlines()
        token = next(
            lines[i + 1].strip() for i, line in enumerate(lines) if "BEGIN NATS USER JWT" in line
        )
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except Exception:  # noqa: BLE001 - unknown: assume we may try
        return None
    pub = (claims.get("nats") or {}).get("pub") or {}
    allow, deny = list(pub.get("allow") or []), list(pub.get("deny") or [])
    if not allow and not deny:
        return None
    return allow, deny
