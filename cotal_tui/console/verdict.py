"""The console's projection of the one delivery-lease verdict table.

The table itself (columns, rows, first match wins) is :mod:`cotal_tui.mesh.lease_table`, shared
with ``status`` and ``check``. Here the console's inputs (link state, a timed lease read, a timed
responder probe, the space mode) are reduced to its column words, and the deciding row's
consequence is worded with the console's facts. Nothing else in the console decides whether
delivery is serving.

Also here: the per-channel delivery-health words agents see (PROTOCOL §5.9).
"""

from __future__ import annotations

from dataclasses import dataclass

from cotal_tui.console.format import age_text
from cotal_tui.console.snapshot import ChannelHealth, Severity, Verdict
from cotal_tui.console.source import (
    ChannelInput,
    ConnectionInput,
    LeaseInput,
    Ms,
    ProgressCheck,
    SpaceMode,
)
from cotal_tui.mesh.lease_table import (
    AGE,
    CLUSTER,
    LINK,
    MODE,
    NO_JOIN,
    READ,
    READY,
    RESPONDER,
    RULES,
    SKEW_TOLERANCE_MS,
    Rule,
    age_word,
    first_rule,
)

__all__ = [
    "AGE",
    "CLUSTER",
    "LINK",
    "MODE",
    "NO_JOIN",
    "READ",
    "READY",
    "RESPONDER",
    "RULES",
    "SKEW_TOLERANCE_MS",
    "Rule",
]

READ_STALE_MS = 10_000
"""A lease read older than this is not evidence about now."""
PROBE_STALE_MS = 20_000
"""A responder answer older than this is not evidence about now."""


@dataclass(frozen=True, slots=True)
class LeaseJudgement:
    verdict: Verdict
    severity: Severity
    consequence: str
    rule: str
    age_ms: int | None
    skew_ms: int | None
    ttl_left_ms: int | None
    columns: dict[str, str]


def lease_columns(
    lease: LeaseInput, link: ConnectionInput, mode: SpaceMode, now: Ms
) -> tuple[dict[str, str], int | None, int | None]:
    """Reduce the inputs to column words; also return the lease age and clock skew."""
    read = lease.read
    age_ms: int | None = None
    skew_ms: int | None = None
    if read.outcome == "present":
        read_word = (
            "old" if read.read_at is not None and now - read.read_at > READ_STALE_MS else "present"
        )
    else:
        read_word = read.outcome
    age = "n/a"
    if read.outcome == "present" and read.since is not None:
        delta = now - read.since
        age = age_word(delta, lease.ttl_ms)
        if age == "skewed":
            skew_ms = -delta
        else:
            age_ms = max(0, delta)
    ready_word = "n/a" if read.ready is None else ("yes" if read.ready else "no")
    probe = lease.responder
    if probe.outcome == "answered":
        stale = probe.checked_at is None or now - probe.checked_at > PROBE_STALE_MS
        responder_word = "old" if stale else "answered"
    elif probe.outcome in ("no-responders", "timeout"):
        responder_word = "silent"
    else:
        responder_word = probe.outcome
    cols = {
        "link": "up" if link.state == "connected" else "down",
        "read": read_word,
        "age": age,
        "ready": ready_word,
        "responder": responder_word,
        "mode": mode,
        "pipeline": pipeline_word(lease.progress, now),
        "cluster": lease.cluster.word() if lease.cluster is not None else "n/a",
    }
    return cols, age_ms, skew_ms


def pipeline_word(progress: ProgressCheck | None, now: Ms) -> str:
    """None: this source does not read progress. Not read yet, failed, or older than
    :data:`PROBE_STALE_MS`: unknown (never taken as moving)."""
    if progress is None:
        return "unchecked"
    if progress.outcome != "read" or progress.checked_at is None:
        return "unknown"
    if now - progress.checked_at > PROBE_STALE_MS:
        return "unknown"
    return progress.state


def pipeline_detail(progress: ProgressCheck | None, now: Ms) -> str:
    if progress is None:
        return "progress not read by this view"
    if progress.outcome == "pending":
        return "progress not read yet"
    if progress.outcome == "failed":
        return f"progress read failed: {progress.error or 'unknown error'}"
    if progress.checked_at is not None and now - progress.checked_at > PROBE_STALE_MS:
        return f"progress last read {age_text(now - progress.checked_at)} ago"
    return progress.text


def judge_lease(
    lease: LeaseInput, link: ConnectionInput, mode: SpaceMode, now: Ms
) -> LeaseJudgement:
    cols, age_ms, skew_ms = lease_columns(lease, link, mode, now)
    rule = first_rule(cols)
    probe = lease.responder
    if probe.outcome == "no-responders":
        responder_detail = "no responders on ctl.delivery"
    elif probe.outcome == "timeout":
        responder_detail = "timed out"
    elif probe.outcome == "failed":
        responder_detail = f"failed: {probe.error or 'unknown error'}"
    elif probe.outcome == "unchecked":
        responder_detail = "has not run yet"
    elif probe.checked_at is not None:
        responder_detail = f"last answered {age_text(now - probe.checked_at)} ago"
    else:
        responder_detail = "has no recorded answer"
    read_age = age_text(now - lease.read.read_at) if lease.read.read_at is not None else "never"
    consequence = rule.consequence.format(
        link_error=link.last_error or link.state,
        read_error=lease.read.error or "unknown error",
        read_age=read_age,
        skew=age_text(skew_ms),
        age=age_text(age_ms),
        ttl=age_text(lease.ttl_ms),
        responder_detail=responder_detail,
        latency=f"{probe.latency_ms:.0f} ms" if probe.latency_ms is not None else "?",
        pipeline_detail=pipeline_detail(lease.progress, now),
        cluster_detail=lease.cluster.detail() if lease.cluster is not None else "not read",
    )
    ttl_left = None if age_ms is None else lease.ttl_ms - age_ms
    return LeaseJudgement(
        verdict=rule.verdict,
        severity=rule.severity,
        consequence=consequence,
        rule=rule.name,
        age_ms=age_ms,
        skew_ms=skew_ms,
        ttl_left_ms=ttl_left,
        columns=cols,
    )


# Per-channel health as the reference's agents word it (PROTOCOL §5.9).
HEALTH_TEXT: dict[ChannelHealth, str] = {
    "active": "durable backstop active",
    "degraded": (
        "durable backstop unavailable — live messages still arrive; offline replay is at risk "
        "after backlog cap"
    ),
}
CLEANUP_TEXT = "durable cleanup pending (§7 backstop may still deliver — retrying)"


def channel_health(
    channel: ChannelInput, lease: LeaseInput
) -> tuple[ChannelHealth | None, str | None]:
    """§5.9: active / degraded for joined durable channels while a daemon is known; else none.

    Returns the health and the degraded reason (None when active or not applicable).
    """
    daemon_known = lease.read.outcome in ("present", "absent")
    if not (daemon_known and channel.joined and channel.delivery_class == "durable"):
        return None, None
    lease_live = lease.read.outcome == "present" and lease.read.ready is True
    if lease_live and channel.durable_membership:
        return "active", None
    if not lease_live:
        reason = "lease not ready" if lease.read.outcome == "present" else "no lease"
    else:
        reason = channel.live_reason or "no durable membership on record"
    return "degraded", reason
