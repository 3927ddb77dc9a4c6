"""The immutable picture every surface renders: TUI, `--plain`, `check`.

One `Snapshot` is built per model tick. Nothing in here is computed by a renderer: ages,
countdowns, verdicts, health words and freshness are all decided once, in the model, so the
TUI and the headless surfaces can never disagree.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, make_dataclass
from typing import Any, Literal, TypeVar

from cotal_tui.console.source import (
    DeliveryClass,
    LinkState,
    MessageMode,
    Ms,
    PeerKind,
    PeerStatus,
    PendingOperation,
    SpaceMode,
    ViewState,
)
from cotal_tui.mesh.lease_table import Severity, Verdict

AGE_STEP_MS = 1_000
"""Heartbeat ages are shown in whole seconds."""

Freshness = Literal["fresh", "stale", "unknown", "failed"]
ChannelHealth = Literal["active", "degraded"]


@dataclass(frozen=True, slots=True)
class SourceView:
    """Where a pane's facts came from, how old they are, and whether to trust them."""

    name: str
    origin: str
    age_ms: int | None
    freshness: Freshness
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class ConnectionView:
    state: LinkState
    server: str
    for_ms: int | None
    last_error: str | None
    reconnect_attempts: int


@dataclass(frozen=True, slots=True)
class RosterRow:
    id: str
    name: str
    status: PeerStatus
    kind: PeerKind
    role: str | None
    activity: str | None
    heartbeat_ts: Ms
    """When the record was written, by the writer's clock. The row holds this, not an age, so
    it changes only when its record does; every surface shows `heartbeat_age_at(snap.now)`."""
    is_self: bool = False
    description: str | None = None
    tags: tuple[str, ...] = ()
    skills: tuple[str, ...] = ()
    model: str | None = None
    connector: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)
    last_known: bool = False
    """The roster is not current and this status is the last one seen while it was: shown
    dimmed, never turned into "offline" without evidence."""

    def heartbeat_age_at(self, now: Ms) -> int | None:
        """The heartbeat's age at `now` (the snapshot's), in whole seconds (as ms): a 2 s
        heartbeat needs no finer grain. None when the writer's clock is ahead of ours (age
        unknown, never 0). The status never comes from this: see RosterFold."""
        delta = now - self.heartbeat_ts
        return None if delta < 0 else delta - delta % AGE_STEP_MS


@dataclass(frozen=True, slots=True)
class RosterView:
    view: ViewState
    rows: tuple[RosterRow, ...]
    counts: Mapping[str, int]
    source: SourceView
    banner: str | None
    """Said above the rows whenever the view is not current."""
    others_online: int | None = None
    """Rows that are not this console's own and not offline (None: count them from `rows`)."""


@dataclass(frozen=True, slots=True)
class ChannelRow:
    name: str
    delivery_class: DeliveryClass
    replay: bool
    replay_window: str | None
    description: str | None
    retained: int
    joined: bool
    unread: int
    rate: tuple[int, ...]
    """Messages per second, oldest first, one entry per second of the rate window."""
    health: ChannelHealth | None
    health_text: str | None
    """The reference's own wording (§5.9), e.g. "durable backstop active"."""
    health_caveat: str | None
    """Why an "active" word is not evidence of serving (the lease verdict disagrees)."""
    durable_unclosed: bool
    mode: str | None
    durable_membership: bool
    generation: int | None
    instructions: str | None = None
    members: tuple[str, ...] = ()
    config: Mapping[str, Any] = field(default_factory=dict)
    broker_feed: str | None = None
    """Display-only (the 0.9.0 membership feed); see ChannelInput.broker_feed."""
    class_invalid: str | None = None
    """The stored deliveryClass as text when it is neither live nor durable (read as live)."""


@dataclass(frozen=True, slots=True)
class ChannelsView:
    rows: tuple[ChannelRow, ...]
    source: SourceView
    total_rate: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class LeaseView:
    verdict: Verdict
    severity: Severity
    consequence: str
    rule: str
    """The table row that produced the verdict, for the evidence line."""
    evidence: str
    """The column words the table judged, e.g. "link=up read=present age=fresh ..."."""
    holder: str | None
    ready: bool | None
    age_ms: int | None
    ttl_ms: int
    ttl_left_ms: int | None
    skew_ms: int | None
    revision: int | None
    read_error: str | None
    responder: str
    responder_latency_ms: float | None
    responder_age_ms: int | None
    responder_error: str | None
    raw: Mapping[str, Any] | None
    source: SourceView
    responder_source: SourceView
    progress: tuple[str, ...] = ()
    """The pipeline's progress figures in words (backlogs, ages, dead letters)."""
    delivery: Mapping[str, Any] | None = None
    """The ``status --json`` ``delivery`` object, dead-letter records included (None: not read)."""
    holder_note: str | None = None
    """Who the holder is and, for a stale lease of `up`'s own daemon, what `up` waits for."""
    cluster: tuple[str, ...] = ()
    """What the NATS cluster says (mesh/cluster_view.cluster_lines); empty when not a cluster."""


@dataclass(frozen=True, slots=True)
class DaemonView:
    running: bool
    holder: str | None
    ready: bool
    revision: int | None
    last_renew_age_ms: int | None
    fanned_out: int
    transferred: int
    deferred: int
    dropped: int
    dead_lettered: int
    last_error: str | None
    last_error_age_ms: int | None
    refused: str | None
    source: SourceView
    evicted_before_routing: tuple[tuple[str, int], ...] = ()
    below_floor_at_bind: tuple[int, int, int] | None = None
    below_floor_unknown: str | None = None


@dataclass(frozen=True, slots=True)
class PendingRow:
    channel: str
    operation: PendingOperation
    attempt: int
    next_retry_in_ms: int | None
    """Countdown to the next try; <= 0 means due now."""
    waiting_ms: int | None
    last_error: str | None
    owner: str | None = None
    """Whose retry loop (agent name or id); None for this console's own endpoint."""


@dataclass(frozen=True, slots=True)
class PendingView:
    rows: tuple[PendingRow, ...]
    headline: str
    """Never silent: "nothing pending", or how many wait and on what."""
    source: SourceView


@dataclass(frozen=True, slots=True)
class FeedEntry:
    seq: int
    """Arrival order in this console, strictly increasing; renderers print each seq once."""
    id: str
    ts: Ms
    sender_id: str
    sender_name: str
    sender_role: str | None
    mode: MessageMode
    target: str
    target_label: str
    text: str
    mentions: tuple[str, ...]
    historical: bool
    to_me: bool
    raw: Mapping[str, Any] = field(default_factory=dict)
    backlog: bool = False


@dataclass(frozen=True, slots=True)
class FeedView:
    entries: tuple[FeedEntry, ...]
    received: int
    rate: tuple[int, ...]
    source: SourceView
    last_seq: int = 0
    """The highest seq in the feed (entries are in time order, so not always the last one)."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    tick: int
    now: Ms
    space: str
    self_id: str
    self_name: str
    mode: SpaceMode
    demo: bool
    read_only: bool
    connection: ConnectionView
    roster: RosterView
    channels: ChannelsView
    lease: LeaseView
    daemon: DaemonView | None
    pending: PendingView
    feed: FeedView
    credential: str = ""
    """Which credential is in use (profile and file); empty when the source does not say."""
    self_kind: str = "endpoint"
    """``agent`` when the console is the agent its cred describes; then ``acl_read`` and
    ``acl_post`` are the channels it may read and post on (None: unrestricted)."""
    acl_read: tuple[str, ...] | None = None
    acl_post: tuple[str, ...] | None = None

    @property
    def sources(self) -> tuple[SourceView, ...]:
        """Every source with its age and freshness, in pane order."""
        out = [
            self.roster.source,
            self.channels.source,
            self.lease.source,
            self.lease.responder_source,
            self.pending.source,
            self.feed.source,
        ]
        if self.daemon is not None:
            out.append(self.daemon.source)
        return tuple(out)


T = TypeVar("T")


def positional_builder(cls: type[T]) -> Callable[..., T]:
    """A fast constructor for the frozen slots dataclass `cls`, every field given positionally.

    A frozen dataclass's `__init__` sets each field through `object.__setattr__` (~1 µs for a
    roster row; the model builds ~700 of them per tick at 5,000 peers). This fills an unfrozen
    twin with the same slots (plain attribute stores) and relabels it as `cls`: CPython allows
    `__class__` assignment between classes of identical slot layout. What comes out is an
    ordinary `cls` instance: equal to one built by `cls(...)`, and frozen (assignment raises).
    """
    names = [(f.name, f.type) for f in fields(cls)]  # type: ignore[arg-type]
    draft = make_dataclass(f"{cls.__name__}Draft", names, slots=True, eq=False, repr=False)

    def build(*values: Any) -> T:
        row = draft(*values)
        row.__class__ = cls
        return row  # type: ignore[return-value]

    return build


build_roster_row = positional_builder(RosterRow)
"""`RosterRow(...)` with all 15 fields positional, without the frozen `__init__`'s cost."""
build_channel_row = positional_builder(ChannelRow)
"""`ChannelRow(...)` with all 21 fields positional (every active channel's row is rebuilt each
second, when its rate window slides)."""
