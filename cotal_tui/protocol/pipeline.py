"""Is the delivery pipeline moving? The progress inputs of the delivery-health verdict (issue 10).

A lease and an answering responder say the daemon is *there*; they do not say messages move.
These figures do, each read from the broker, never from the daemon's own word:

- ``fanout``: the daemon's ``fanout`` consumer on CHAT: messages not yet routed (pending plus
  ack-pending) and the age of the oldest of them (the first message past the ack floor);
- ``reader``: the ``reader`` consumer on INBOX: entries not yet transferred to DLV, and the age
  of the oldest;
- ``deadLettered``: records in the daemon's dead-letter store since it began, with the
  retained records counted by reason and the latest ones listed;
- ``consumers``: consumers on the presence and channel-registry KV streams, which any agent may
  create and never delete (PROTOCOL §8.4), against what the roster explains.

A figure the credential cannot read is *unknown* (``None`` with the reason in ``unknown``),
and unknown is never green. The rules (:func:`judge_pipeline`):

- **stalled** (critical): the oldest unrouted message, or the oldest untransferred entry, is
  older than :data:`STALL_AFTER_MS`, and that consumer's ack floor has not moved for as long
  (a daemon catching up on a backlog after downtime moves it) — "serving, but not moving";
- **unknown**: a figure could not be read;
- **dead letters** (degraded): the newest dead letter is younger than
  :data:`DEAD_LETTER_RECENT_MS`; older ones are still counted, not alarmed on;
- **consumer excess** (degraded): a KV stream carries more consumers than
  :func:`consumer_allowance` of the roster's size;
- otherwise **moving**.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

# Oldest unrouted CHAT message / untransferred INBOX entry older than this, while the daemon
# serves: the pipeline is stalled. Routing takes milliseconds; a nak'd retry backs off for at
# most a few seconds; 10 s is far outside normal and well inside what an operator must know.
STALL_AFTER_MS: Final = 10_000
# A dead letter younger than this keeps the verdict degraded (an operator should look once).
DEAD_LETTER_RECENT_MS: Final = 3_600_000
# Consumers a KV stream may carry before it is suspicious: a floor, plus a few per roster entry
# (each endpoint watches presence and the registry, and reconnects leave short-lived ones).
CONSUMER_FLOOR: Final = 50
CONSUMERS_PER_PEER: Final = 4
# How many of the latest dead letters a snapshot carries.
LATEST_DEAD_LETTERS: Final = 5

PipelineState = Literal["moving", "stalled", "unknown", "dead-letters", "consumer-excess"]
Level = Literal["ok", "degraded", "critical", "unknown"]


@dataclass(frozen=True)
class Backlog:
    """One consumer's backlog: ``pending`` not yet done, the oldest ``oldest_ms`` old, and the
    consumer's ack floor last moved ``floor_idle_ms`` ago (None: unknown)."""

    pending: int
    oldest_ms: int | None = None  # None when nothing is pending
    floor_idle_ms: int | None = None

    @property
    def stalled(self) -> bool:
        """The oldest is past the threshold and the ack floor has not moved within it either:
        a daemon working through a backlog after downtime moves its floor; a stuck one not."""
        if self.oldest_ms is None or self.oldest_ms <= STALL_AFTER_MS:
            return False
        return self.floor_idle_ms is None or self.floor_idle_ms > STALL_AFTER_MS


@dataclass(frozen=True)
class DeadLetterSummary:
    total: int  # since the store began (the stream's last sequence)
    reasons: Mapping[str, int]  # retained records per reason
    latest: Sequence[Mapping[str, Any]] = ()  # newest first, at most LATEST_DEAD_LETTERS
    newest_age_ms: int | None = None
    # False: the space has no dead-letter store (provisioned by the reference's tooling, whose
    # daemon keeps none). That is a known fact, not an unread figure: nothing was dead-lettered
    # *there*, and the verdict rests on the fan-out and reader backlogs alone.
    store: bool = True


NO_DEAD_LETTER_STORE = DeadLetterSummary(0, {}, (), None, store=False)


@dataclass(frozen=True)
class PipelineFigures:
    fanout: Backlog | None = None
    reader: Backlog | None = None
    dead: DeadLetterSummary | None = None
    consumers: Mapping[str, int] | None = None  # KV stream → consumer count
    unknown: Mapping[str, str] = field(default_factory=dict)  # figure → why it is unknown


@dataclass(frozen=True)
class PipelineVerdict:
    state: PipelineState
    level: Level
    text: str  # one line: what is wrong and the evidence
    evidence: tuple[str, ...] = ()

    @property
    def green(self) -> bool:
        return self.level == "ok"


def consumer_allowance(peers: int) -> int:
    return CONSUMER_FLOOR + CONSUMERS_PER_PEER * max(0, peers)


def _age(ms: int) -> str:
    s = ms / 1000
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


def _backlog_text(what: str, b: Backlog) -> str:
    if b.pending == 0:
        return f"{what}: none pending"
    floor = "" if b.floor_idle_ms is None else f", ack floor moved {_age(b.floor_idle_ms)} ago"
    if b.oldest_ms is None:  # pending, the oldest's age unread (the operator's reader figure)
        return f"{what}: {b.pending} pending{floor}"
    return f"{what}: {b.pending} pending, oldest {_age(b.oldest_ms)}{floor}"


def judge_pipeline(figs: PipelineFigures, *, peers: int = 0) -> PipelineVerdict:
    """The progress verdict (pure): the first matching rule of the module text wins."""
    evidence: list[str] = []
    if figs.fanout is not None:
        evidence.append(_backlog_text("unrouted CHAT messages", figs.fanout))
    if figs.reader is not None:
        evidence.append(_backlog_text("untransferred INBOX entries", figs.reader))
    stalled = [
        (what, b)
        for what, b in (
            ("unrouted CHAT message", figs.fanout),
            ("untransferred INBOX entry", figs.reader),
        )
        if b is not None and b.stalled
    ]
    if stalled:
        what, b = max(stalled, key=lambda s: s[1].oldest_ms or 0)
        return PipelineVerdict(
            "stalled",
            "critical",
            f"oldest {what} is {_age(b.oldest_ms or 0)} old "
            f"({b.pending} pending; stall threshold {STALL_AFTER_MS // 1000} s)",
            tuple(evidence),
        )
    if figs.unknown:
        why = "; ".join(f"{k}: {v}" for k, v in sorted(figs.unknown.items()))
        return PipelineVerdict(
            "unknown", "unknown", f"pipeline progress unknown ({why})", tuple(evidence)
        )
    dead = figs.dead
    if dead is not None and dead.total:
        evidence.append(dead_letter_text(dead))
    if (
        dead is not None
        and dead.total
        and dead.newest_age_ms is not None
        and dead.newest_age_ms < DEAD_LETTER_RECENT_MS
    ):
        return PipelineVerdict("dead-letters", "degraded", dead_letter_text(dead), tuple(evidence))
    excess = consumer_excess(figs.consumers or {}, peers)
    if excess:
        return PipelineVerdict("consumer-excess", "degraded", excess, tuple(evidence))
    return PipelineVerdict("moving", "ok", "moving", tuple(evidence))


def dead_letter_text(dead: DeadLetterSummary) -> str:
    reasons = ", ".join(f"{r} {n}" for r, n in sorted(dead.reasons.items(), key=lambda x: -x[1]))
    newest = f", newest {_age(dead.newest_age_ms)} ago" if dead.newest_age_ms is not None else ""
    return f"{dead.total} dead-lettered ({reasons or 'none retained'}){newest}"


def consumer_excess(consumers: Mapping[str, int], peers: int) -> str | None:
    """A warning naming each KV stream with more consumers than the roster explains."""
    allowance = consumer_allowance(peers)
    over = [(s, n) for s, n in sorted(consumers.items()) if n > allowance]
    if not over:
        return None
    named = ", ".join(f"{s} has {n}" for s, n in over)
    return (
        f"consumer excess: {named} consumers, more than {allowance} for {peers} peers "
        "(an agent may be creating undeletable watch consumers)"
    )


def delivery_json(figs: PipelineFigures, verdict: PipelineVerdict) -> dict[str, Any]:
    """The ``delivery`` object of ``status --json`` (schema ``cotal-tui/status/1``)."""
    fan, rd, dead = figs.fanout, figs.reader, figs.dead
    return {
        "state": verdict.state,
        "moving": verdict.state not in ("stalled", "unknown"),
        "fanoutPending": fan.pending if fan else None,
        "fanoutOldestMs": fan.oldest_ms if fan else None,
        "readerPending": rd.pending if rd else None,
        "readerOldestMs": rd.oldest_ms if rd else None,
        "deadLettered": dead.total if dead else None,
        "deadLetterReasons": dict(dead.reasons) if dead else None,
        "deadLetterLatest": [dict(d) for d in dead.latest] if dead else None,
        "deadLetterStore": dead.store if dead else None,
        "consumers": dict(figs.consumers) if figs.consumers is not None else None,
        "stallAfterMs": STALL_AFTER_MS,
        "unknown": dict(figs.unknown),
        "text": verdict.text,
    }
