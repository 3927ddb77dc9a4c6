"""Snapshot → table rows and markup. Pure functions: no widget state, easy to test and bench."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from textual.markup import escape

from cotal_tui.console.format import (
    STATUS_GLYPH,
    STATUS_ORDER,
    age_text,
    clock_text,
    countdown_text,
    one_line,
    sparkline,
    stamp_text,
)
from cotal_tui.console.snapshot import (
    ChannelRow,
    DaemonView,
    FeedEntry,
    LeaseView,
    PendingRow,
    RosterRow,
    Snapshot,
    SourceView,
)
from cotal_tui.console.source import Ms
from cotal_tui.mesh.eviction_stats import below_floor_words, eviction_words
from cotal_tui.tui.widgets.table import Column, LazyRows, Row

SEVERITY_GLYPH = {
    "healthy": "●",
    "info": "○",
    "degraded": "◐",
    "critical": "⨯",
    "unknown": "?",
}
FRESHNESS_GLYPH = {"fresh": "", "stale": "STALE ", "unknown": "UNKNOWN ", "failed": "FAILED "}


@dataclass(frozen=True, slots=True)
class RowFilter:
    """`/` filter: a case-insensitive regex over a row's text; `!` in front inverts it."""

    pattern: re.Pattern[str]
    invert: bool
    text: str

    @classmethod
    def parse(cls, text: str) -> RowFilter | None:
        """None for an empty filter; raises re.error for a bad pattern."""
        raw = text.strip()
        if not raw:
            return None
        invert = raw.startswith("!")
        body = raw[1:] if invert else raw
        return cls(re.compile(body, re.IGNORECASE), invert, raw)

    def keep(self, haystack: str) -> bool:
        return bool(self.pattern.search(haystack)) != self.invert


class RowCache:
    """Reuse the table Row built for a snapshot row object while that object is unchanged.

    The model hands out the same row objects tick after tick for unchanged peers, channels and
    messages, so a 1,000-peer roster costs a dictionary lookup per row, not a rebuild.
    """

    def __init__(self) -> None:
        self._old: dict[int, tuple[object, Row]] = {}
        self._new: dict[int, tuple[object, Row]] = {}

    def row(self, obj: Any, build: Callable[[Any], Row]) -> Row:
        key = id(obj)
        hit = self._old.get(key)
        if hit is not None and hit[0] is obj:
            built = hit[1]
        else:
            built = build(obj)
        self._new[key] = (obj, built)
        return built

    def done(self) -> None:
        self._old, self._new = self._new, {}


def source_line(src: SourceView, *, prefix: str = "") -> str:
    """The pane subtitle: origin, age, freshness and its reason."""
    if src.age_ms is None:
        age = "never"
        if src.freshness == "fresh":
            return f"{src.origin} · {'no update yet' if not src.reason else src.reason}" + (
                f" · {prefix}" if prefix else ""
            )
    elif src.age_ms < 1_000:
        age = "<1s ago"
    else:
        age = age_text(src.age_ms) + " ago"
    state = src.freshness
    reason = f": {src.reason}" if src.reason else ""
    tail = f" · {prefix}" if prefix else ""
    return f"{src.origin} · {age} · {state}{reason}{tail}"


# -- roster ---------------------------------------------------------------------------------

ROSTER_COLUMNS = (
    Column("status", 10),
    Column("name", 14),
    Column("role", 11),
    Column("kind", 8),
    Column("activity", None),
    Column("beat", 7, "right"),
)
ROSTER_SORTS: tuple[Callable[[RosterRow], Any], ...] = (
    lambda r: (STATUS_ORDER.get(r.status, 9), r.name.lower()),
    lambda r: r.name.lower(),
    lambda r: (r.role or "~").lower(),
    lambda r: r.kind,
    lambda r: (r.activity or "~").lower(),
    lambda r: -r.heartbeat_ts,
)
"""Sort keys that do not move with the clock (a row's place changes only when the row does):
the beat column sorts newest heartbeat first, which is youngest age first."""


def roster_text(r: RosterRow) -> str:
    return f"{r.status} {r.name} {r.role or ''} {r.kind} {r.activity or ''} {r.id}"


def roster_rows(
    rows: Sequence[RosterRow], row_filter: RowFilter | None, sort: int, reverse: bool, now: Ms
) -> list[Row]:
    """Every shown row built at `now` (the snapshot's): the reference the panes' mirror equals."""
    return [roster_row(r, now) for r in roster_order(rows, row_filter, sort, reverse)]


def roster_order(
    rows: Sequence[RosterRow], row_filter: RowFilter | None, sort: int, reverse: bool
) -> list[RosterRow]:
    """The roster rows shown, in the order shown."""
    chosen = [r for r in rows if row_filter is None or row_filter.keep(roster_text(r))]
    if sort != 0 or reverse:
        chosen.sort(key=ROSTER_SORTS[sort], reverse=reverse)
    return chosen


def roster_stays(
    old: RosterRow, new: RosterRow, row_filter: RowFilter | None, sort: int, reverse: bool
) -> bool:
    """Whether `new` replacing `old` keeps its place in `roster_rows` (sort key, filter verdict)."""
    if row_filter is not None and row_filter.keep(roster_text(old)) != row_filter.keep(
        roster_text(new)
    ):
        return False
    return not (sort or reverse) or ROSTER_SORTS[sort](old) == ROSTER_SORTS[sort](new)


def roster_row(r: RosterRow, now: Ms) -> Row:
    """The table row of `r` at `now` (the snapshot's time: the beat column is its age then)."""
    name = r.name + " (you)" if r.is_self else r.name
    beat = beat_text(r.heartbeat_age_at(now))
    status = f"{STATUS_GLYPH.get(r.status, '?')} {r.status}" + ("?" if r.last_known else "")
    return Row(
        r.id,
        (
            (status, "cell--muted" if r.last_known else f"status--{r.status}"),
            (name, None),
            (r.role or "—", None),
            (r.kind, "cell--muted"),
            (one_line(r.activity or "", 120), None),
            (beat, "cell--muted"),
        ),
        "rowtable--dim" if r.status == "offline" or r.last_known else None,
    )


BEAT_COLUMN = next(i for i, c in enumerate(ROSTER_COLUMNS) if c.label == "beat")


def roster_aged(rows: LazyRows, shown: Iterable[int], now: Ms) -> tuple[list[int], list[Row]]:
    """Of the `shown` indices (ascending), those whose built row's beat text is not its age at
    `now` any more: each is forgotten (rebuilt when drawn). Returns them and the rows dropped.
    Rows not built yet are left alone: they are built at the `now` of the tick that draws them."""
    items = rows.items
    aged: list[int] = []
    stale: list[Row] = []
    for i in shown:
        built = rows.built(i)
        if built is not None and built.cells[BEAT_COLUMN][0] != beat_text(
            items[i].heartbeat_age_at(now)
        ):
            rows.forget(i)
            aged.append(i)
            stale.append(built)
    return aged, stale


def beat_text(ms: int | None) -> str:
    """Heartbeat ages come in whole seconds; None means the writer's clock is ahead."""
    if ms is None:
        return "skew?"
    return "<1s" if ms < 1_000 else age_text(ms)


def roster_counts(snap: Snapshot) -> str:
    c = snap.roster.counts
    return " ".join(
        f"{STATUS_GLYPH[s]} {c.get(s, 0)} {s}" for s in ("working", "waiting", "idle", "offline")
    )


# -- channels -------------------------------------------------------------------------------

CHANNEL_COLUMNS = (
    Column("channel", 14),
    Column("class", 7),
    Column("joined", 6),
    Column("delivery health", None),
    Column("unread", 6, "right"),
    Column("msgs/s 30s", 12),
    Column("msgs", 5, "right"),
    Column("replay", 6),
)
"""Health sits before the numbers: on a narrow terminal the numbers scroll off, not the health."""
CHANNEL_SORTS: tuple[Callable[[ChannelRow], Any], ...] = (
    lambda c: c.name,
    lambda c: c.delivery_class,
    lambda c: c.joined,
    lambda c: (c.health or "~", c.durable_unclosed),
    lambda c: c.unread,
    lambda c: sum(c.rate),
    lambda c: c.retained,
    lambda c: c.replay,
)


def channel_rows(
    rows: Sequence[ChannelRow], sort: int, reverse: bool, cache: RowCache | None = None
) -> list[Row]:
    chosen = channel_order(rows, sort, reverse)
    if cache is None:
        return [channel_row(c) for c in chosen]
    out = [cache.row(c, channel_row) for c in chosen]
    cache.done()
    return out


def channel_order(rows: Sequence[ChannelRow], sort: int, reverse: bool) -> list[ChannelRow]:
    """The channel rows in the order shown."""
    chosen = list(rows)
    if sort != 0 or reverse:
        chosen.sort(key=CHANNEL_SORTS[sort], reverse=reverse)
    return chosen


def channel_stays(old: ChannelRow, new: ChannelRow, sort: int, reverse: bool) -> bool:
    """Whether `new` replacing `old` keeps its place in `channel_rows` (same sort key)."""
    return not (sort or reverse) or CHANNEL_SORTS[sort](old) == CHANNEL_SORTS[sort](new)


def channel_row(c: ChannelRow) -> Row:
    if c.health == "active":
        health_cls = "sev--unknown" if c.health_caveat else "sev--healthy"
        glyph = "◌" if c.health_caveat else "●"
    elif c.health == "degraded" or c.durable_unclosed:
        health_cls, glyph = "sev--degraded", "◐"
    else:
        health_cls, glyph = "cell--muted", ""
    text = c.health_text or ("live class: no backstop" if c.joined else "not joined")
    if c.health_caveat:
        text += f" ({c.health_caveat})"
    return Row(
        c.name,
        (
            ("#" + c.name, None),
            (
                (f"⚠ {c.class_invalid}", "sev--degraded")
                if c.class_invalid
                else (c.delivery_class, "cell--muted" if c.delivery_class == "live" else None)
            ),
            ("● yes" if c.joined else "○ no", "cell--accent" if c.joined else "cell--muted"),
            (f"{glyph} {text}".strip(), health_cls),
            (f"+{c.unread}" if c.unread else "", "cell--mention"),
            (sparkline(c.rate, 12), "cell--accent"),
            (str(c.retained), None),
            ("on" if c.replay else "off", "cell--muted"),
        ),
    )


# -- pending --------------------------------------------------------------------------------

PENDING_COLUMNS = (
    Column("op", 5),
    Column("owner", 8),
    Column("channel", 14),
    Column("try", 4, "right"),
    Column("next", 10),
    Column("waiting", 7, "right"),
    Column("last error", None),
)


OWN_ENDPOINT = "self"
"""The owner cell of this console's own endpoint's retry loops."""


def pending_key(p: PendingRow) -> str:
    """The row key: unique per operation, owner and channel (two agents may wait on one channel)."""
    return f"{p.operation}:{p.owner or ''}:{p.channel}"


def pending_rows(rows: Sequence[PendingRow]) -> list[Row]:
    return [
        Row(
            pending_key(p),
            (
                (p.operation, "sev--degraded"),
                (p.owner, None) if p.owner else (OWN_ENDPOINT, "cell--muted"),
                ("#" + p.channel, None),
                (f"#{p.attempt}", None),
                (countdown_text(p.next_retry_in_ms), "cell--accent"),
                (age_text(p.waiting_ms) if p.waiting_ms is not None else "?", "cell--muted"),
                (one_line(p.last_error or "—", 160), "sev--critical" if p.last_error else None),
            ),
        )
        for p in rows
    ]


# -- feed -----------------------------------------------------------------------------------

FEED_COLUMNS = (
    Column("time", 8),
    Column("from", 10),
    Column("to", 13),
    Column("message", None),
)


def feed_text(e: FeedEntry) -> str:
    return f"{e.sender_name} {e.target_label} {e.text} {e.sender_id}"


def feed_rows(
    entries: Sequence[FeedEntry], row_filter: RowFilter | None, cache: RowCache | None = None
) -> list[Row]:
    chosen = [e for e in entries if row_filter is None or row_filter.keep(feed_text(e))]
    if cache is None:
        return [feed_row(e) for e in chosen]
    out = [cache.row(e, feed_row) for e in chosen]
    cache.done()
    return out


def feed_row(e: FeedEntry) -> Row:
    return Row(
        str(e.seq),
        (
            (clock_text(e.ts), "cell--muted"),
            (e.sender_name, None),
            (e.target_label, "cell--accent"),
            (
                ("backlog · " if e.backlog else "") + one_line(e.text),
                "cell--mention" if e.to_me else None,
            ),
        ),
        "rowtable--dim" if e.historical else None,
    )


# -- lease ----------------------------------------------------------------------------------


def severity_markup(severity: str, text: str) -> str:
    return f"[{severity_var(severity)}]{SEVERITY_GLYPH.get(severity, '?')} {escape(text)}[/]"


def severity_var(severity: str) -> str:
    return {
        "healthy": "$success",
        "info": "$primary",
        "degraded": "$warning",
        "critical": "$error",
        "unknown": "$warning",
    }.get(severity, "$warning")


def yes_no(value: bool | None) -> str:
    return "unknown" if value is None else ("yes" if value else "no")


def lease_markup(lease: LeaseView, daemon: DaemonView | None) -> str:
    lines = [
        f"[b]verdict[/b] {severity_markup(lease.severity, lease.verdict.upper())}"
        f"  [dim](rule: {lease.rule})[/]",
        escape(lease.consequence),
    ]
    if lease.age_ms is not None:
        left = lease.ttl_left_ms or 0
        ttl = f"expires in {age_text(left)}" if left > 0 else f"expired {age_text(-left)} ago"
        age = f"age {age_text(lease.age_ms)} · TTL {age_text(lease.ttl_ms)} · {ttl}"
    elif lease.skew_ms is not None:
        age = f"age unknown (writer clock ahead by {age_text(lease.skew_ms)})"
    else:
        age = "age —"
    lines.append(
        f"holder [b]{escape(lease.holder or '—')}[/b] · ready {yes_no(lease.ready)}"
        f" · rev {lease.revision if lease.revision is not None else '—'}"
    )
    if lease.holder_note:
        lines.append(f"[dim]{escape(lease.holder_note)}[/]")
    lines.append(age)
    if lease.responder == "answered":
        latency = f"{lease.responder_latency_ms:.1f} ms" if lease.responder_latency_ms else "?"
        probe = f"answered in {latency}"
    elif lease.responder == "unchecked":
        probe = "not checked yet"
    elif lease.responder == "failed":
        probe = f"check failed: {lease.responder_error or 'unknown error'}"
    else:
        probe = lease.responder
    probe_age = (
        f"{age_text(lease.responder_age_ms)} ago" if lease.responder_age_ms is not None else "never"
    )
    lines.append(f"responder {escape(probe)} · {probe_age}")
    if lease.cluster:
        lines.append(f"cluster {escape(lease.cluster[0])}")
    lines += progress_lines(lease)
    if daemon is not None:
        lines.append(daemon_markup(daemon))
    return "\n".join(lines)


def progress_lines(lease: LeaseView) -> list[str]:
    """The pipeline's evidence (backlogs, ages) and the dead-letter count with latest reasons."""
    out = [f"progress {escape(line)}" for line in lease.progress]
    d = lease.delivery
    if d is not None and d.get("deadLettered"):
        latest = [str(r.get("reason", "?")) for r in d.get("deadLetterLatest") or ()][:3]
        out.append(
            f"[$warning]dead letters {d['deadLettered']}[/] · latest: "
            f"{escape(', '.join(latest) or '—')} [dim](d: list)[/]"
        )
    # a daemon in another process: its evictedBeforeRouting (the in-process one: daemon_markup)
    for line in eviction_words(d):
        style = "$warning" if ": unknown — " in line else "$error"
        out.append(f"[{style}]{escape(line)}[/]")
    return out


def dead_letter_detail(lease: LeaseView) -> str:
    """The dead-letter store as an operator reads it: counts by reason, the latest records."""
    d = lease.delivery
    if d is None:
        return "[dim]the pipeline's progress has not been read (no dead-letter figures)[/]"
    if d.get("deadLettered") is None:
        why = (d.get("unknown") or {}).get("deadLetters", "not readable with this credential")
        return f"[dim]dead letters unknown: {escape(str(why))}[/]"
    reasons = d.get("deadLetterReasons") or {}
    lines = [
        kv("total", f"{d['deadLettered']} since the store began"),
        kv("by reason", ", ".join(f"{r} {n}" for r, n in sorted(reasons.items())) or "—"),
        "",
        "[b]latest[/b]",
    ]
    latest = d.get("deadLetterLatest") or []
    for r in latest:
        when = stamp_text(r["ts"]) if isinstance(r.get("ts"), int) else "?"
        lines.append(
            f"{when} [b]{escape(str(r.get('reason')))}[/b] {escape(str(r.get('stream')))}"
            f"#{r.get('seq')} {escape(str(r.get('subject')))} ({r.get('size')} bytes)"
        )
        lines.append(f"    {escape(one_line(str(r.get('detail', '')), 160))}")
    if not latest:
        lines.append("[dim]none retained[/]")
    lines += ["", "[dim]r: raw records (JSON)[/]"]
    return "\n".join(lines)


def dead_letter_raw(lease: LeaseView) -> str:
    d = lease.delivery or {}
    return escape(json.dumps(list(d.get("deadLetterLatest") or []), indent=2, sort_keys=True))


def daemon_markup(d: DaemonView) -> str:
    if d.refused:
        refused = d.refused
        for lead in ("not bound yet: ", "not bound: "):
            if refused.startswith(lead):
                refused = refused[len(lead) :]
        head = f"[$warning]in-process daemon not bound:[/] {escape(refused)}"
    elif not d.running:
        head = "[$warning]in-process daemon stopped[/]"
    else:
        renew = (
            f"renewed {age_text(d.last_renew_age_ms)} ago"
            if d.last_renew_age_ms is not None
            else "never renewed"
        )
        head = f"in-process daemon {'ready' if d.ready else 'NOT ready'} · {renew}"
    counters = (
        f"fanned-out {d.fanned_out} · transferred {d.transferred} · deferred {d.deferred}"
        f" · dropped {d.dropped} · dead-lettered {d.dead_lettered}"
    )
    out = f"{head}\n{counters}"
    if d.dropped:
        out += "\n[dim]dropped: withheld by rule (no read ACL, left, unreadable), not lost[/]"
    for channel, n in d.evicted_before_routing:
        where = "an unknown channel" if channel == "?" else f"#{channel}"
        out += (
            f"\n[$error]lost before routing:[/] {n} message(s) on {escape(where)} were evicted "
            "from CHAT before the daemon routed them — they never reached offline members"
        )
    out += below_floor_markup(d)
    if d.last_error:
        when = f"{age_text(d.last_error_age_ms)} ago" if d.last_error_age_ms is not None else ""
        out += f"\n[$error]last error[/] {when}: {escape(one_line(d.last_error, 160))}"
    return out


def below_floor_markup(d: DaemonView) -> str:
    """What the in-process daemon found below its fan-out's floor at bind, in the lease pane's
    words for a daemon in another process: unknown with why (never 0), or what it counted."""
    unknown = below_floor_words({"belowFloorAtBindUnknown": d.below_floor_unknown})
    if unknown:
        return "".join(f"\n[$warning]{escape(line)}[/]" for line in unknown)
    if d.below_floor_at_bind is None or not d.below_floor_at_bind[2]:
        return ""
    first, last, counted = d.below_floor_at_bind
    return (
        f"\n[$error]evicted below the floor at bind:[/] {counted} message(s) a dead daemon held "
        f"(CHAT seq {first}–{last}) were gone from CHAT before this daemon bound — counted in "
        "lost before routing"
    )


# -- detail bodies --------------------------------------------------------------------------


def kv(label: str, value: object) -> str:
    return f"[b]{escape(label):<12}[/b] {escape(str(value))}"


def agent_detail(row: RosterRow, feed: Sequence[FeedEntry], now: Ms) -> str:
    status = f"{STATUS_GLYPH.get(row.status, '?')} {row.status}"
    if row.status == "working":
        status += " · progress unknown"
    age = row.heartbeat_age_at(now)
    beat = beat_text(age) if age is not None else "unknown (writer clock ahead)"
    lines = [
        kv("name", row.name + (" (you)" if row.is_self else "")),
        kv("id", row.id),
        kv("role", row.role or "—"),
        kv("kind", row.kind),
        f"[b]{'status':<12}[/b] [$text-{'muted' if row.status == 'offline' else 'accent'}]"
        f"{escape(status)}[/] · heartbeat {beat} ago",
        kv("activity", row.activity or "—"),
        kv("description", row.description or "—"),
        kv("tags", ", ".join(row.tags) or "—"),
        kv("runs", " · ".join(x for x in (row.connector, row.model) if x) or "—"),
        kv("skills", ", ".join(row.skills) or "—"),
        "",
        "[b]recent messages to/from this peer[/b]",
    ]
    mine = [
        e
        for e in feed
        if e.sender_id == row.id
        or (e.mode == "dm" and e.target == row.id)
        or row.name.lower() in e.mentions
    ][-6:]
    if not mine:
        lines.append("[dim]none in the feed window[/]")
    for e in mine:
        lines.append(
            f"{clock_text(e.ts)} {escape(e.sender_name)} → {escape(e.target_label)}: "
            f"{escape(one_line(e.text, 100))}"
        )
    return "\n".join(lines)


def channel_detail(row: ChannelRow) -> str:
    if row.joined and row.delivery_class == "durable":
        membership = (
            f"durable membership, generation {row.generation}"
            if row.durable_membership
            else "joined live with the durable backstop unestablished"
        )
    elif row.joined:
        membership = "joined (live class: no durable membership)"
    else:
        membership = "not joined"
    lines = [
        kv("channel", "#" + row.name),
        kv("description", row.description or "—"),
        kv(
            "class",
            (
                f"{row.delivery_class} — the stored value {escape(row.class_invalid)} is neither "
                "live nor durable; read as the reference does, as not durable (no offline "
                "backstop). Fix the registry entry"
            )
            if row.class_invalid
            else row.delivery_class,
        ),
        kv(
            "replay",
            ("on" if row.replay else "off")
            + (f" ({row.replay_window})" if row.replay_window else ""),
        ),
        kv("retained", row.retained),
        kv("membership", membership),
        kv("health", row.health_text or "—"),
    ]
    if row.health_caveat:
        lines.append(kv("caveat", row.health_caveat))
    lines += [
        kv("unread", row.unread),
        kv("msgs/s", sparkline(row.rate) + f"  (last {len(row.rate)}s, {sum(row.rate)} msgs)"),
        kv("instructions", row.instructions or "—"),
        kv("members", ", ".join(row.members) or "— (not visible to this console)"),
        *([kv("broker feed", row.broker_feed)] if row.broker_feed else []),
        "",
        "[b]config (channel registry)[/b]",
        escape(json.dumps(dict(row.config), indent=2, sort_keys=True) if row.config else "{}"),
    ]
    return "\n".join(lines)


def lease_detail(lease: LeaseView, daemon: DaemonView | None) -> str:
    lines = [
        f"[b]verdict[/b]      {severity_markup(lease.severity, lease.verdict)}",
        kv("consequence", lease.consequence),
        kv("rule", lease.rule),
        kv("evidence", lease.evidence),
        kv("holder", lease.holder or "—"),
        kv("ready", yes_no(lease.ready)),
        kv("revision", lease.revision if lease.revision is not None else "—"),
        kv("age", age_text(lease.age_ms)),
        kv("ttl", age_text(lease.ttl_ms)),
        kv("ttl left", age_text(lease.ttl_left_ms)),
        kv("clock skew", age_text(lease.skew_ms) if lease.skew_ms is not None else "none seen"),
        kv("read error", lease.read_error or "—"),
        kv("responder", lease.responder),
        kv(
            "latency",
            f"{lease.responder_latency_ms:.1f} ms" if lease.responder_latency_ms else "—",
        ),
        kv("lease src", source_line(lease.source)),
        kv("probe src", source_line(lease.responder_source)),
        *(kv("progress", line) for line in lease.progress),
    ]
    if lease.cluster:
        lines += ["", "[b]cluster[/b]", *(escape(line) for line in lease.cluster)]
    if daemon is not None:
        lines += ["", daemon_markup(daemon)]
    lines += ["", "[dim]r: raw lease record (JSON)[/]"]
    return "\n".join(lines)


def lease_raw(lease: LeaseView) -> str:
    if lease.raw is None:
        return "[dim]no lease record was read (nothing to show raw)[/]"
    return escape(json.dumps(dict(lease.raw), indent=2, sort_keys=True))


def message_detail(e: FeedEntry) -> str:
    mode = {"channel": "multicast (channel)", "dm": "unicast (DM)", "anycast": "anycast (role)"}
    lines = [
        kv("mode", mode.get(e.mode, e.mode)),
        kv("time", stamp_text(e.ts)),
        kv("from", f"{e.sender_name} ({e.sender_role or '—'}) {e.sender_id}"),
        kv("to", e.target_label),
        kv("id", e.id),
        kv("mentions", ", ".join("@" + m for m in e.mentions) or "—"),
        kv("backfill", "yes (historical)" if e.historical else "no (live)"),
        *([kv("backlog", "yes (sent while we were offline; its dlv_ copy)")] if e.backlog else []),
        "",
        escape(e.text),
        "",
        "[dim]r: raw envelope (JSON)[/]",
    ]
    return "\n".join(lines)


def message_raw(e: FeedEntry) -> str:
    return escape(json.dumps(dict(e.raw), indent=2, sort_keys=True)) if e.raw else "{}"
