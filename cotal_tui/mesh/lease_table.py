"""The one delivery-lease verdict table (PROTOCOL §3.6, CONSOLE.md §1.9), as data; pure, no I/O.

Every surface projects this table: ``status --json``, ``check`` and ``up`` through
:func:`cotal_tui.mesh.lease.lease_verdict`, the console through
:func:`cotal_tui.console.verdict.judge_lease`. Each surface first reduces what it knows to one
small word per *column* (:data:`COLUMNS`), then the first matching row of :data:`RULES` decides.
Nothing else decides whether delivery is serving.

- "serving" is the only healthy verdict and needs positive evidence on every column: link up,
  lease read now, record present, age within the TTL on a sane clock, ready, and a responder that
  answered recently. Anything missing is named (unverified, refused, ...) and never green.
- A failed read is "refused", never "no-lease" (CONSOLE.md §1.9, upstream #374); a fresh lease
  with no answer is "no-responder" (the wedged daemon, upstream #445/#837).
- A record is "stale" only past the bucket's 30 s ``max_age`` (:data:`LEASE_TTL_MS`). §3.6
  defines no earlier deadline: a holder renews every 15 s, and until ``max_age`` drops the entry
  the lease is live — a second daemon's ``kv.create`` still fails and it refuses to bind. A
  verdict that called it stale sooner would name a daemon dead while the protocol still treats it
  as the holder.

- Progress (issue 10): a lease and an answering responder say the daemon is there, not that
  messages move. The ``pipeline`` column (``protocol.pipeline``) does: a stalled fan-out or
  reader is "not-moving" (critical: "serving, but not moving"), unreadable progress is
  "unverified", recent dead letters and a KV consumer excess are degraded.
- Cluster (issue 15): the ``cluster`` column (``mesh.cluster_view``): a leaderless space stream
  is "quorum-lost" (critical: nothing is stored, durable delivery has stopped), a daemon
  consumer with work and no ack for a while "stalled", a node gone (a replica offline or not
  current, or fewer nodes routed than the streams name) "node-lost", a clustered server whose
  view was not read "unverified". Quorum loss is named before a pipeline stall; a node loss
  degrades at once, before any leader moves or consumer stalls.

The exhaustive test (``tests/unit/test_lease_table.py``) walks :data:`COLUMNS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from cotal_tui.protocol.names import LEASE_TTL_MS

SpaceMode = Literal["auth", "open"]
Severity = Literal["healthy", "info", "degraded", "critical", "unknown"]
Verdict = Literal[
    "serving",
    "not-ready",
    "no-lease",
    "stale",
    "no-responder",
    "refused",
    "unreachable",
    "unverified",
    "clock-skew",
    "not-moving",
    "dead-letters",
    "consumer-excess",
    "quorum-lost",
    "stalled",
    "node-lost",
]

QUORUM_LOST_CONSEQUENCE = (
    "nothing is stored on those streams and durable delivery (the offline backstop) has "
    "stopped until NATS elects a leader (2 of 3 replicas up); bring the lost nodes back"
)
"""What a lost quorum means, in the same words on every surface (this table, ``check``'s
no-evidence path, ``status``); it is critical everywhere."""

STALE_AFTER_MS = LEASE_TTL_MS
"""A lease record not rewritten for longer than the bucket's ``max_age`` is a leftover (§3.6)."""
SKEW_TOLERANCE_MS = 2_000
"""A lease ``since`` this far in our future means the writer's clock is ahead: age unknown."""

# Column words: every input is reduced to one of these before the table decides.
LINK = ("up", "down")
READ = ("pending", "old", "present", "absent", "failed")
AGE = ("fresh", "expired", "skewed", "n/a")
READY = ("yes", "no", "n/a")
# "denied": this credential may not publish the probe at all (so it can prove nothing).
RESPONDER = ("answered", "silent", "failed", "unchecked", "old", "denied")
MODE = ("auth", "open")
# Pipeline progress (issue 10, ``protocol.pipeline.judge_pipeline``): the fan-out and reader
# backlogs and ages, dead letters, KV consumer counts, reduced to one word. "unchecked": the
# surface does not read progress (``up``'s summary, an agent's own lease view); the operator
# surfaces (status, check, the console) always supply one of the others.
PIPELINE = ("moving", "stalled", "unknown", "dead-letters", "consumer-excess", "unchecked")
# What a NATS cluster says (mesh/cluster_view.py): "n/a" not a cluster (or not readable with this
# credential), "ok" every space stream has a leader and the daemon's consumers move, "lost" a
# space stream or daemon consumer has no leader (no quorum), "stalled" a daemon consumer has work
# waiting and acked nothing for a while, "node-down" every stream has a leader but a node is gone
# (a replica offline or not current, or the connected server routed to fewer nodes than the
# streams name), "unread" a clustered server whose view was not read.
CLUSTER = ("n/a", "ok", "lost", "stalled", "node-down", "unread")

COLUMNS: dict[str, tuple[str, ...]] = {
    "link": LINK,
    "read": READ,
    "age": AGE,
    "ready": READY,
    "responder": RESPONDER,
    "mode": MODE,
    "pipeline": PIPELINE,
    "cluster": CLUSTER,
}

DEFAULT_WORDS: dict[str, str] = {"cluster": "n/a"}
"""A surface that does not read a column (e.g. status on one server) gives it this word."""


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
    pipeline: frozenset[str] | None = None
    cluster: frozenset[str] | None = None

    def matches(self, cols: dict[str, str]) -> bool:
        for column in COLUMNS:
            allowed = getattr(self, column)
            word = cols.get(column, DEFAULT_WORDS.get(column))
            if allowed is not None and word not in allowed:
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
    # A leaderless delivery bucket answers no read: still "refused" (the read failed, never
    # "no lease"), but the cause is the cluster, not the credential, and nothing is stored.
    Rule("read-failed-quorum", "refused", "critical",
         "the lease read failed because the cluster has lost quorum ({cluster_detail}): "
         + QUORUM_LOST_CONSEQUENCE + " (not a credential problem, and not \"no lease\")",
         read=_w("failed"), cluster=_w("lost")),
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
    # Cluster (issue 15) before pipeline progress (issue 10): a leaderless stream names the
    # cause of any stall. Both cluster rows claim "the daemon answers", so they need that answer.
    # Critical, like no-responder: a leaderless stream stores nothing and durable delivery has
    # stopped, however well the daemon answers (check exits 2 with evidence or without).
    Rule("quorum-lost", "quorum-lost", "critical",
         "the daemon answers but the cluster has lost quorum ({cluster_detail}): "
         + QUORUM_LOST_CONSEQUENCE,
         responder=_w("answered"), cluster=_w("lost")),
    Rule("not-moving", "not-moving", "critical",
         "serving, but not moving: {pipeline_detail}; the offline backstop is not delivering",
         pipeline=_w("stalled")),
    # The cluster's quick stall reading (a daemon consumer with work waiting that acked nothing
    # for 3 s) is kept beside the pipeline's evidence-based one (oldest unrouted past 10 s and the
    # ack floor idle as long): a measured stall is critical and wins; the quick one degrades.
    Rule("stalled", "stalled", "degraded",
         "the daemon answers but its pipeline is not moving ({cluster_detail}): offline members "
         "get nothing until it resumes (after a node loss: until it reconnects and its consumers "
         "resume on the new leader)",
         responder=_w("answered"), cluster=_w("stalled")),
    # A node gone: said at once (the route drops the moment it dies), before any leader moves
    # or a daemon consumer shows its stall — the gap after a node loss is never OK.
    Rule("node-lost", "node-lost", "degraded",
         "the daemon answers but a node of the cluster is gone ({cluster_detail}): the space runs "
         "on the remaining replicas without a spare, and until NATS moves the leaders it held "
         "and the daemon's consumers resume, the offline backstop may pause",
         responder=_w("answered"), cluster=_w("node-down")),
    Rule("probe-unproven", "unverified", "unknown",
         "the lease is ready but the responder check {responder_detail}: not shown as serving "
         "without an answer",
         responder=_w("failed", "unchecked", "old", "denied")),
    Rule("cluster-unread", "unverified", "unknown",
         "the server is clustered but the cluster's state was not read ({cluster_detail}): "
         "delivery health unknown until it is",
         cluster=_w("unread")),
    Rule("progress-unknown", "unverified", "unknown",
         "the daemon answers, but whether messages move is unknown ({pipeline_detail}): not "
         "shown as serving without that evidence",
         pipeline=_w("unknown")),
    Rule("dead-letters", "dead-letters", "degraded",
         "serving and moving, with recent dead letters: {pipeline_detail}",
         pipeline=_w("dead-letters")),
    Rule("consumer-excess", "consumer-excess", "degraded",
         "serving and moving; {pipeline_detail}",
         pipeline=_w("consumer-excess")),
    Rule("serving", "serving", "healthy",
         "a daemon holds a fresh, ready lease and answered the probe in {latency}: durable joins "
         "and the offline backstop work",
         link=_w("up"), read=_w("present"), age=_w("fresh"), ready=_w("yes"),
         responder=_w("answered"), pipeline=_w("moving", "unchecked"),
         cluster=_w("n/a", "ok")),
)
# fmt: on


def first_rule(cols: dict[str, str]) -> Rule:
    """The row that decides ``cols`` (one word per column of :data:`COLUMNS`; a column left
    out takes its :data:`DEFAULT_WORDS` word)."""
    cols = {**DEFAULT_WORDS, **cols}
    for rule in RULES:
        if rule.matches(cols):
            return rule
    raise AssertionError(f"the lease verdict table has no row for {cols}")


def age_word(age_ms: float | None, ttl_ms: int = STALE_AFTER_MS) -> str:
    """The age column: ``age_ms`` is now minus the record's ``since`` (None: no timestamp)."""
    if age_ms is None:
        return "n/a"
    if age_ms < -SKEW_TOLERANCE_MS:
        return "skewed"
    return "expired" if age_ms > ttl_ms else "fresh"
