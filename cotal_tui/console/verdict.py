"""The delivery-lease verdict: one table, read top to bottom, first match wins.

Rules of this file:
- Every input is first reduced to a small word (a *column*), then the table decides. Nothing
  else in the console decides whether delivery is serving.
- "serving" is the only healthy verdict and it needs positive evidence on every column: link up,
  lease read now, record present, age within TTL on a sane clock, ready, and a responder that
  answered recently. Anything missing is named (unverified, refused, ...) and never green.
- A failed read is "refused", never "no-lease" (CONSOLE.md §1.9, upstream #374); a fresh lease
  with no answer is "no-responder" (the wedged daemon, upstream #445/#837).

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
    SpaceMode,
)

SKEW_TOLERANCE_MS = 2_000
"""A lease `since` this far in our future means the writer's clock is ahead: age unknown."""
READ_STALE_MS = 10_000
"""A lease read older than this is not evidence about now."""
PROBE_STALE_MS = 20_000
"""A responder answer older than this is not evidence about now."""

# Column words.
LINK = ("up", "down")
READ = ("pending", "old", "present", "absent", "failed")
AGE = ("fresh", "expired", "skewed", "n/a")
READY = ("yes", "no", "n/a")
RESPONDER = ("answered", "silent", "failed", "unchecked", "old")
MODE = ("auth", "open")


@dataclass(frozen=True, slots=True)
class Rule:
    """One row: each column is the set of words it matches, or None for any."""

    name: str
    verdict: Verdict
    severity: Severity
    consequence: str
    link: frozenset[str] | None = None
    read: frozenset[str] | None = None
    age: frozenset[str] | None = None
    ready: frozenset[str] | None = None
    responder: frozenset[str] | None = None
    mode: frozenset[str] | None = None

    def matches(self, cols: dict[str, str]) -> bool:
        for column in ("link", "read", "age", "ready", "responder", "mode"):
            allowed = getattr(self, column)
            if allowed is not None and cols[column] not in allowed:
                return False
        return True


def _w(*words: str) -> frozenset[str]:
    return frozenset(words)


NO_JOIN = "no durable join can complete until a daemon binds"

# fmt: off
RULES: tuple[Rule, ...] = (
    Rule("link-down", "unreachable", "critical",
         "cannot reach the broker ({link_error}): no lease fact can be checked until the link "
         "is back; what is shown is last-known",
         link=_w("down")),
    Rule("read-failed", "refused", "unknown",
         "the lease read failed ({read_error}): delivery health is unknown — this is not "
         "\"no lease\"",
         read=_w("failed")),
    Rule("read-pending", "unverified", "unknown",
         "the lease has not been read yet: delivery health unknown",
         read=_w("pending")),
    Rule("read-old", "unverified", "unknown",
         "the lease was last read {read_age} ago: delivery health unknown until it is read again",
         read=_w("old")),
    Rule("absent-open", "no-lease", "info",
         "open mode has no delivery daemon by design: live delivery only, no offline backstop",
         read=_w("absent"), mode=_w("open")),
    Rule("absent", "no-lease", "critical",
         "no delivery daemon holds the lease: " + NO_JOIN
         + ", and offline members get no backstop",
         read=_w("absent")),
    Rule("clock-skew", "clock-skew", "unknown",
         "the lease writer's clock is {skew} ahead of ours: the lease age is unknown, so the "
         "daemon's liveness cannot be judged",
         age=_w("skewed")),
    Rule("no-age", "unverified", "unknown",
         "the lease record carries no timestamp: its age is unknown, so the daemon's liveness "
         "cannot be judged",
         age=_w("n/a")),
    Rule("expired", "stale", "critical",
         "the lease record is {age} old, past its {ttl} TTL: a dead daemon's leftover (it "
         "expires on its own); " + NO_JOIN,
         age=_w("expired")),
    Rule("not-ready", "not-ready", "degraded",
         "a daemon holds the lease but has not bound its responder yet: durable joins wait until "
         "it is ready",
         ready=_w("no", "n/a")),
    Rule("no-answer", "no-responder", "critical",
         "the lease is fresh but nothing answered the delivery probe ({responder_detail}): the "
         "daemon is wedged or gone; " + NO_JOIN,
         responder=_w("silent")),
    Rule("probe-unproven", "unverified", "unknown",
         "the lease is ready but the responder check {responder_detail}: not shown as serving "
         "without an answer",
         responder=_w("failed", "unchecked", "old")),
    Rule("serving", "serving", "healthy",
         "a daemon holds a fresh, ready lease and answered the probe in {latency}: durable joins "
         "and the offline backstop work",
         link=_w("up"), read=_w("present"), age=_w("fresh"), ready=_w("yes"),
         responder=_w("answered")),
)
# fmt: on


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
    age_word = "n/a"
    if read.outcome == "present" and read.since is not None:
        delta = now - read.since
        if delta < -SKEW_TOLERANCE_MS:
            age_word, skew_ms = "skewed", -delta
        else:
            age_ms = max(0, delta)
            age_word = "expired" if age_ms > lease.ttl_ms else "fresh"
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
        "age": age_word,
        "ready": ready_word,
        "responder": responder_word,
        "mode": mode,
    }
    return cols, age_ms, skew_ms


def judge_lease(
    lease: LeaseInput, link: ConnectionInput, mode: SpaceMode, now: Ms
) -> LeaseJudgement:
    cols, age_ms, skew_ms = lease_columns(lease, link, mode, now)
    rule = next(r for r in RULES if r.matches(cols))
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
