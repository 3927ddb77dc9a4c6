"""Headless surfaces over the same snapshots: the `--plain` line stream and the `check` verdict.

`PlainStream` turns successive snapshots into timestamped lines: presence changes (diffed between
snapshots, so a heartbeat is silent), messages (each feed seq printed once), and changes of the
link and of the delivery verdict — so a log never shows health that the console would not.

`check_snapshot` folds one snapshot into a single line and a Nagios-style exit code.
"""

from __future__ import annotations

from dataclasses import dataclass

from cotal_tui.console.format import STATUS_GLYPH, age_text, clock_text, one_line
from cotal_tui.console.snapshot import FeedEntry, RosterRow, Snapshot

HEALTHY, DEGRADED, CRITICAL, UNKNOWN = 0, 1, 2, 3
EXIT_WORD = {HEALTHY: "OK", DEGRADED: "DEGRADED", CRITICAL: "CRITICAL", UNKNOWN: "UNKNOWN"}
SEVERITY_EXIT = {"healthy": HEALTHY, "info": HEALTHY, "degraded": DEGRADED, "critical": CRITICAL,
                 "unknown": UNKNOWN}  # fmt: skip
WORST_FIRST = (CRITICAL, UNKNOWN, DEGRADED, HEALTHY)
"""Which code wins when components disagree: a known-critical fact outranks an unknown one."""


def _peer(row: RosterRow) -> str:
    role = f" ({row.role})" if row.role else ""
    return f"{row.name}{role} [{row.id}]"


def message_line(e: FeedEntry) -> str:
    back = " (backfill)" if e.historical else " (backlog)" if e.backlog else ""
    return f"{clock_text(e.ts)} {e.target_label} {e.sender_name}: {one_line(e.text, 2000)}{back}"


class PlainStream:
    """Feed it every snapshot; it returns the new lines since the previous one."""

    def __init__(self) -> None:
        self._peers: dict[str, RosterRow] | None = None
        self._last_seq = 0
        self._verdict: str | None = None
        self._link: str | None = None
        self._view: str | None = None
        self._pending: frozenset[tuple[str, str, str]] = frozenset()

    def lines(self, snap: Snapshot) -> list[str]:
        now = clock_text(snap.now)
        out: list[str] = []
        link = snap.connection.state
        if link != self._link:
            err = f" ({snap.connection.last_error})" if snap.connection.last_error else ""
            out.append(f"{now} link {link} {snap.connection.server}{err}".rstrip())
            self._link = link
        if link == "connecting":
            return out  # nothing has been read yet: verdicts would only restate "connecting"
        lease = snap.lease
        if lease.verdict != self._verdict:
            out.append(f"{now} delivery {lease.verdict}: {lease.consequence}")
            self._verdict = lease.verdict
        view = snap.roster.view
        if view != self._view:
            if view != "current":
                out.append(f"{now} {snap.roster.banner}")
            elif self._view is not None:
                out.append(f"{now} roster current")
            self._view = view
        if view == "current" or self._peers is not None:
            out.extend(self._presence(snap, now))
        rows = {(r.operation, r.channel, r.owner or ""): r for r in snap.pending.rows}
        pending = frozenset(rows)
        for key in sorted(pending - self._pending):
            row = rows[key]
            err = f" — last error: {row.last_error}" if row.last_error else ""
            out.append(f"{now} pending {_pending_label(*key)} attempt {row.attempt}{err}")
        for key in sorted(self._pending - pending):
            out.append(f"{now} resolved {_pending_label(*key)}")
        self._pending = pending
        for e in snap.feed.entries:
            if e.seq > self._last_seq:
                out.append(message_line(e))
        if snap.feed.entries:
            newest = snap.feed.last_seq or max(e.seq for e in snap.feed.entries)
            self._last_seq = max(self._last_seq, newest)
        return out

    def _presence(self, snap: Snapshot, now: str) -> list[str]:
        current = {r.id: r for r in snap.roster.rows}
        out: list[str] = []
        if self._peers is None:
            for r in snap.roster.rows:
                activity = f" · {one_line(r.activity)}" if r.activity else ""
                out.append(
                    f"{now} present {_peer(r)} {STATUS_GLYPH.get(r.status, '?')} {r.status}"
                    f"{activity}"
                )
            self._peers = current
            return out
        for pid, r in current.items():
            old = self._peers.get(pid)
            if old is None or (old.status == "offline" and r.status != "offline"):
                out.append(f"{now} join {_peer(r)} {r.status}")
            elif r.status != old.status:
                if r.status == "offline":
                    out.append(f"{now} offline {_peer(r)}")
                else:
                    out.append(f"{now} status {_peer(r)} {old.status} → {r.status}")
            elif r.activity != old.activity and r.status != "offline":
                out.append(f"{now} activity {_peer(r)} {one_line(r.activity or '(cleared)')}")
        self._peers = current
        return out


@dataclass(frozen=True, slots=True)
class CheckResult:
    code: int
    line: str


def check_snapshot(snap: Snapshot) -> CheckResult:
    """One line and an exit code: 0 healthy, 1 degraded, 2 critical, 3 unknown."""
    parts: list[tuple[int, str]] = []
    link = snap.connection
    if link.state != "connected":
        err = f" ({link.last_error})" if link.last_error else ""
        parts.append((CRITICAL, f"link {link.state}{err}"))
    lease = snap.lease
    parts.append((SEVERITY_EXIT[lease.severity], f"delivery {lease.verdict}: {lease.consequence}"))
    roster = snap.roster
    if roster.view == "unpopulated":
        parts.append((UNKNOWN, "roster unpopulated"))
    elif roster.view == "stale":
        parts.append((DEGRADED, "roster stale (presence watch silent)"))
    if snap.pending.rows:
        parts.append((DEGRADED, f"{len(snap.pending.rows)} pending: {snap.pending.headline}"))
    for src in snap.sources:
        if src.freshness == "failed":
            parts.append((UNKNOWN, f"{src.name} source failed: {src.reason}"))
    code = next(c for c in WORST_FIRST if any(p[0] == c for p in parts) or c == HEALTHY)
    worst = [text for c, text in parts if c == code] if code != HEALTHY else []
    summary = (
        f"space={snap.space} link={link.state} delivery={lease.verdict} roster={roster.view}"
        f"({len(roster.rows)}) pending={len(snap.pending.rows)}"
        f" lease-age={age_text(lease.age_ms)} probe={lease.responder}"
    )
    d = lease.delivery
    if d is not None:
        pending = d.get("fanoutPending")
        summary += f" unrouted={'?' if pending is None else pending}"
        if d.get("deadLettered"):
            summary += f" dead-letters={d['deadLettered']}"
    if lease.cluster:
        summary += f" cluster={lease.cluster[0]}"
    detail = f" — {'; '.join(worst)}" if worst else ""
    return CheckResult(code, f"{EXIT_WORD[code]}: {summary}{detail}")


def _pending_label(operation: str, channel: str, owner: str) -> str:
    """``join #general``, or ``join #general (ada)`` for another agent's retry loop."""
    return f"{operation} #{channel}" + (f" ({owner})" if owner else "")
