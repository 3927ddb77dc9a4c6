"""The delivery lease (PROTOCOL §3.6) and the projection of the one verdict table for status.

Lifecycle of a holder: acquire by KV create with ``ready: false`` (never over a live lease),
mark ready by CAS once bound, renew by CAS every 15 s, release by delete on a clean stop; a crash
lets the bucket's 30 s ``max_age`` free it. ``since`` is re-stamped on every write, so a
lease's age is the time since its last write.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

from cotal_tui.mesh.kv import KeyExists, KvBucket, RevisionMismatch
from cotal_tui.mesh.lease_table import SpaceMode, Verdict, age_word, first_rule
from cotal_tui.protocol import errors as perrors
from cotal_tui.protocol.errors import RecordError
from cotal_tui.protocol.models import DeliveryLeaseInfo
from cotal_tui.protocol.names import LEASE_TTL_MS, lease_key

LEASE_KEY = lease_key(0)


@dataclass(frozen=True)
class LeaseEntry:
    info: DeliveryLeaseInfo
    revision: int

    def age_s(self, now_ms: int | None = None) -> float:
        now = now_ms if now_ms is not None else _now_ms()
        return max(0.0, (now - self.info.since) / 1000)


@dataclass(frozen=True)
class LeaseRead:
    """``lease.0`` as an agent reads it (§5.9): ``known`` is False when the read failed."""

    known: bool
    lease: DeliveryLeaseInfo | None = None
    revision: int | None = None
    error: str | None = None

    @property
    def live(self) -> bool:
        return self.lease is not None and self.lease.ready


class LeaseHeld(perrors.LeaseHeld):
    """Another daemon holds a live lease; this one must not bind (no retry, no split)."""

    def __init__(self, holder: str, age_s: float, ready: bool, shard: int = 0) -> None:
        super().__init__(shard)
        state = "serving" if ready else "binding (not ready yet)"
        self.args = (
            f"a live lease already exists for shard {shard} — held by {holder} ({state}, "
            f"last written {age_s:.1f}s ago; it expires {LEASE_TTL_MS // 1000}s after its "
            "last renewal if the holder dies) — another delivery daemon is running. Not binding.",
        )
        self.holder = holder
        self.age_s = age_s
        self.ready = ready


class LeaseLost(perrors.LeaseLost):
    """A renew CAS failed or renewals stalled past the TTL: stop serving at once."""


def _now_ms() -> int:
    return int(time.time() * 1000)


def _encode(holder: str, ready: bool) -> bytes:
    return DeliveryLeaseInfo(holder=holder, since=_now_ms(), ready=ready).to_json()


async def read_lease(kv: KvBucket) -> LeaseEntry | None:
    """``lease.0``, or None when absent, released (DEL marker), expired or undecodable."""
    entry = await kv.get(LEASE_KEY)
    if entry is None:
        return None
    try:
        return LeaseEntry(DeliveryLeaseInfo.from_json(entry.value), entry.revision)
    except RecordError:
        return None


async def acquire_lease(kv: KvBucket, holder: str) -> LeaseEntry:
    """Create ``lease.0`` with ``ready: false``; raise :class:`LeaseHeld` if a live one exists."""
    value = _encode(holder, False)
    try:
        revision = await kv.create(LEASE_KEY, value)
    except KeyExists:
        current = await read_lease(kv)
        if current is None:  # it expired or was released between the two calls
            revision = await kv.create(LEASE_KEY, value)
        else:
            raise LeaseHeld(current.info.holder, current.age_s(), current.info.ready) from None
    return LeaseEntry(DeliveryLeaseInfo.from_json(value), revision)


async def mark_lease_ready(kv: KvBucket, holder: str, revision: int) -> LeaseEntry:
    """CAS the lease to ``ready: true``; a conflict raises :class:`LeaseLost`."""
    return await renew_lease(kv, holder, revision)


async def renew_lease(kv: KvBucket, holder: str, revision: int) -> LeaseEntry:
    """CAS-renew (``ready: true``, fresh ``since``); a conflict means the lease is lost."""
    value = _encode(holder, True)
    try:
        new_revision = await kv.update(LEASE_KEY, value, revision)
    except RevisionMismatch as exc:
        raise LeaseLost(
            f"lease.0 is no longer at revision {revision}: it expired or another holder took it"
        ) from exc
    return LeaseEntry(DeliveryLeaseInfo.from_json(value), new_revision)


async def release_lease(kv: KvBucket, holder: str, revision: int) -> bool:
    """Delete ``lease.0`` if it is still ours (same holder and revision); best effort."""
    current = await read_lease(kv)
    if current is None or current.info.holder != holder or current.revision != revision:
        return False
    await kv.delete(LEASE_KEY)
    return True


# --- the verdict, projected from the one table (cotal_tui.mesh.lease_table) -------------------

LeaseReadKind = Literal["present", "absent", "refused", "unreachable"]
ResponderProbe = Literal["answered", "no-responders", "timeout", "unknown", "not-probed"]

# How this side's inputs read as the table's column words.
READ_COLUMN: dict[LeaseReadKind, str] = {
    "present": "present",
    "absent": "absent",
    "refused": "failed",
    "unreachable": "failed",
}
RESPONDER_COLUMN: dict[ResponderProbe, str] = {
    "answered": "answered",
    "no-responders": "silent",
    "timeout": "silent",
    "unknown": "denied",
    "not-probed": "unchecked",
}

RESPONDER_TEXT: dict[ResponderProbe, str] = {
    "answered": "answered",
    "no-responders": "no responder on ctl.delivery (503 no responders)",
    "timeout": "no answer on ctl.delivery within the probe timeout",
    "unknown": "unknown (cannot probe with this credential)",
    "not-probed": "not probed",
}


@dataclass(frozen=True)
class LeaseVerdict:
    verdict: Verdict
    responder: ResponderProbe
    holder: str | None = None
    age_s: float | None = None
    pipeline: str = "unchecked"

    @property
    def green(self) -> bool:
        """Only a ready, fresh lease whose responder answered a probe, with the pipeline
        moving (or not weighed by this surface), is green."""
        return self.verdict == "serving" and self.responder == "answered"

    @property
    def responder_text(self) -> str:
        return RESPONDER_TEXT[self.responder]


def lease_columns(
    read: LeaseReadKind,
    *,
    ready: bool = False,
    age_ms: float = 0.0,
    responder: ResponderProbe = "not-probed",
    mode: SpaceMode = "auth",
    pipeline: str = "unchecked",
    cluster: str = "n/a",
) -> dict[str, str]:
    """This side's inputs as the table's column words (the lease is read now, so never old);
    ``cluster`` is :meth:`cotal_tui.mesh.cluster_view.ClusterView.word`."""
    present = read == "present"
    return {
        "link": "down" if read == "unreachable" else "up",
        "read": READ_COLUMN[read],
        "age": age_word(age_ms) if present else "n/a",
        "ready": ("yes" if ready else "no") if present else "n/a",
        "responder": RESPONDER_COLUMN[responder],
        "mode": mode,
        "pipeline": pipeline,
        "cluster": cluster,
    }


def lease_verdict(
    read: LeaseReadKind,
    *,
    ready: bool = False,
    age_ms: float = 0.0,
    responder: ResponderProbe = "not-probed",
    holder: str | None = None,
    mode: SpaceMode = "auth",
    pipeline: str = "unchecked",
    cluster: str = "n/a",
) -> LeaseVerdict:
    """Look the case up in :data:`~cotal_tui.mesh.lease_table.RULES` (pure; no I/O).

    ``age_ms`` is now minus the record's ``since``; negative beyond the skew tolerance means the
    writer's clock is ahead (verdict ``clock-skew``).
    """
    cols = lease_columns(
        read,
        ready=ready,
        age_ms=age_ms,
        responder=responder,
        mode=mode,
        pipeline=pipeline,
        cluster=cluster,
    )
    present = read == "present"
    return LeaseVerdict(
        first_rule(cols).verdict,
        responder,
        holder if present else None,
        max(0.0, age_ms) / 1000 if present else None,
        pipeline,
    )


def present_lease_verdict(
    info: DeliveryLeaseInfo,
    responder: ResponderProbe,
    now_ms: float | None = None,
    *,
    pipeline: str = "unchecked",
) -> LeaseVerdict:
    """The verdict on an existing lease record, given what the responder probe found."""
    now = _now_ms() if now_ms is None else now_ms
    return lease_verdict(
        "present",
        ready=info.ready,
        age_ms=now - info.since,
        responder=responder,
        holder=info.holder,
        pipeline=pipeline,
    )
