"""What the console model reads: a `Source` it polls each tick, and `Commands` it sends back.

Theory of operation. The model never touches NATS. Once per tick (about 100 ms) it calls the
`Source` getters below, each of which must return immediately with the endpoint's *current*
knowledge (no I/O, no awaiting): a plain frozen record plus the time that knowledge was last
confirmed (`observed_at`) and the last error, if any. Messages are different: they arrive as an
async stream that the model drains into a buffer, so a burst never causes a redraw per message.

Every time here is epoch milliseconds (`Ms`) on the console's own clock, the same clock the model
is given; only `LeaseRead.since` and `PeerInput.ts` come from the writer's clock, which is why the
model measures skew instead of trusting them.

An adapter (console/adapter.py) makes the real endpoint and the optional in-process daemon satisfy
these protocols; `console/fixtures.py` satisfies them from fixed data for tests, snapshots and the
bench.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    from cotal_tui.mesh.cluster_view import ClusterView

Ms = int
"""Epoch milliseconds."""

LinkState = Literal["connecting", "connected", "reconnecting", "closed", "unreachable"]
ViewState = Literal["unpopulated", "current", "stale"]
PeerStatus = Literal["working", "waiting", "idle", "offline"]
PeerKind = Literal["agent", "endpoint"]
DeliveryClass = Literal["live", "durable"]
LeaseOutcome = Literal["pending", "present", "absent", "failed"]
ResponderOutcome = Literal["unchecked", "answered", "no-responders", "timeout", "failed"]
PendingOperation = Literal["join", "leave"]
MessageMode = Literal["channel", "dm", "anycast"]
SpaceMode = Literal["auth", "open"]

EMPTY: Mapping[str, Any] = {}


@dataclass(frozen=True, slots=True)
class Identity:
    """Who this console is, on which space."""

    space: str
    self_id: str
    self_name: str
    mode: SpaceMode = "auth"
    server: str = ""
    credential: str = ""
    """Which credential the console connects with (profile and file), for the header."""
    kind: str = "endpoint"
    """``agent`` when the console runs as the agent its cred describes (``console --creds``)."""
    read: tuple[str, ...] | None = None
    """The channels (patterns) the cred may read; None when not an agent or unrestricted."""
    post: tuple[str, ...] | None = None
    """The channels the cred may post on; None when not an agent or unrestricted."""


@dataclass(frozen=True, slots=True)
class ConnectionInput:
    """The broker link as the endpoint's connection callbacks last reported it."""

    state: LinkState
    since: Ms | None = None
    last_error: str | None = None
    reconnect_attempts: int = 0


@dataclass(frozen=True, slots=True)
class PeerInput:
    """One presence record (PROTOCOL §3.2), already swept (§6.1): stale records read offline."""

    id: str
    name: str
    kind: PeerKind
    status: PeerStatus
    ts: Ms
    role: str | None = None
    activity: str | None = None
    description: str | None = None
    tags: tuple[str, ...] = ()
    skills: tuple[str, ...] = ()
    model: str | None = None
    connector: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RosterInput:
    """The presence view: its trust state (§1.9 of CONSOLE.md) and its rows."""

    view: ViewState
    peers: tuple[PeerInput, ...]
    observed_at: Ms | None
    error: str | None = None
    origin: str = "presence-kv watch"


@dataclass(frozen=True, slots=True)
class ChannelInput:
    """One channel as `listChannels` would see it (PROTOCOL §5.9), plus its effective config."""

    name: str
    delivery_class: DeliveryClass = "durable"
    replay: bool = True
    replay_window: str | None = None
    description: str | None = None
    instructions: str | None = None
    retained: int = 0
    joined: bool = False
    durable_membership: bool = False
    generation: int | None = None
    durable_unclosed: bool = False
    mode: Literal["quiet", "muted"] | None = None
    live_reason: str | None = None
    """Why the last durable join came back LIVE only (the daemon's reason), when it did."""
    class_invalid: str | None = None
    """The stored deliveryClass as text when it is neither live nor durable (read as live)."""
    members: tuple[str, ...] = ()
    config: Mapping[str, Any] = field(default_factory=dict)
    broker_feed: str | None = None
    """Who the 0.9.0 membership feed says is on the channel (console/membership_feed.py);
    display-only, never read by a verdict. None when the space has no feed."""


@dataclass(frozen=True, slots=True)
class ChannelsInput:
    channels: tuple[ChannelInput, ...]
    observed_at: Ms | None
    error: str | None = None
    origin: str = "channel registry + CHAT stream"


@dataclass(frozen=True, slots=True)
class LeaseRead:
    """The last `readDeliveryLease(0)` (PROTOCOL §3.6): what the KV said, or why it said nothing."""

    outcome: LeaseOutcome
    read_at: Ms | None = None
    holder: str | None = None
    since: Ms | None = None
    ready: bool | None = None
    revision: int | None = None
    error: str | None = None
    raw: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ResponderCheck:
    """The last round-trip to `ctl.delivery` (a `listMemberships` probe), or why there was none."""

    outcome: ResponderOutcome
    checked_at: Ms | None = None
    latency_ms: float | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class ProgressCheck:
    """The last read of the delivery pipeline's progress (``protocol.pipeline``), or why none.

    ``state`` is the pipeline verdict's word (moving, stalled, unknown, dead-letters,
    consumer-excess); ``text`` its one-line reason; ``evidence`` the figures in words;
    ``delivery`` the ``status --json`` ``delivery`` object (dead-letter records included).
    """

    outcome: Literal["pending", "read", "failed"]
    checked_at: Ms | None = None
    state: str = "unknown"
    text: str = "not read yet"
    evidence: tuple[str, ...] = ()
    delivery: Mapping[str, Any] | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class LeaseInput:
    read: LeaseRead
    responder: ResponderCheck
    ttl_ms: int = 30_000
    """The lease bucket's max_age: a record older than this has outlived its renewals."""
    progress: ProgressCheck | None = None
    """Pipeline progress; None where the source does not read it (fixtures): not weighed."""
    holder_label: str | None = None
    """Who the holder is, when this console knows the identity (e.g. the daemon `up` runs)."""
    holder_is_up: bool = False
    """The holder is the delivery identity of the `up` on this console's state dir."""
    cluster: ClusterView | None = None
    """What the NATS cluster said at the last read (None: not read; not a cluster)."""


@dataclass(frozen=True, slots=True)
class PendingOp:
    """A boot durable join still reconciling, or a leave retry (PROTOCOL §5.7)."""

    channel: str
    operation: PendingOperation
    attempt: int
    next_retry_at: Ms | None
    since: Ms | None = None
    last_error: str | None = None
    owner: str | None = None
    """Whose retry loop this is (an agent name or id) when it is not this console's own endpoint
    (the demo shows every in-process agent's); None for our own."""


@dataclass(frozen=True, slots=True)
class PendingInput:
    ops: tuple[PendingOp, ...]
    observed_at: Ms | None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class DaemonInput:
    """The in-process delivery daemon's own counters (present only with --daemon)."""

    running: bool
    holder: str | None = None
    ready: bool = False
    revision: int | None = None
    last_renew_at: Ms | None = None
    fanned_out: int = 0
    transferred: int = 0
    deferred: int = 0
    dropped: int = 0
    dead_lettered: int = 0
    last_error: str | None = None
    last_error_at: Ms | None = None
    refused: str | None = None
    """Why it did not bind (e.g. another daemon holds the lease), said plainly."""
    observed_at: Ms | None = None
    evicted_before_routing: tuple[tuple[str, int], ...] = ()
    """(channel, CHAT messages evicted before its fan-out routed them), sorted by channel."""
    below_floor_at_bind: tuple[int, int, int] | None = None
    """(from, to, counted): a dead daemon's copies CHAT evicted below the floor before the bind
    (counted ones are in ``evicted_before_routing`` too); None when not counted."""
    below_floor_unknown: str | None = None
    """Why that count is unknown (e.g. a cred without STREAM.MSG.GET); never shown as 0."""


@dataclass(frozen=True, slots=True)
class MessageInput:
    """One received CotalMessage (PROTOCOL §4.1), classified by subject."""

    id: str
    ts: Ms
    sender_id: str
    sender_name: str
    mode: MessageMode
    target: str
    """The channel for `channel`, the recipient id for `dm`, the role for `anycast`."""
    text: str
    sender_role: str | None = None
    mentions: tuple[str, ...] = ()
    historical: bool = False
    raw: Mapping[str, Any] = field(default_factory=dict)
    backlog: bool = False
    """A durable copy that was waiting in ``dlv_`` when we started: sent while we were away."""


@runtime_checkable
class Source(Protocol):
    """What the model polls each tick. Every getter returns at once, without I/O."""

    def identity(self) -> Identity: ...

    def connection(self) -> ConnectionInput: ...

    def roster(self) -> RosterInput: ...

    def channels(self) -> ChannelsInput: ...

    def lease(self) -> LeaseInput: ...

    def pending(self) -> PendingInput: ...

    def daemon(self) -> DaemonInput | None:
        """None when no daemon runs in this process."""
        ...

    def messages(self) -> AsyncIterator[MessageInput]:
        """Every message received from now on (backfill marked `historical`), until closed."""
        ...


@dataclass(frozen=True, slots=True)
class JoinOutcome:
    """What `joinChannel` returned (PROTOCOL §5.7)."""

    joined: bool
    durable: bool
    delivery_class: DeliveryClass
    reason: str | None = None
    backfilled: int = 0


@dataclass(frozen=True, slots=True)
class LeaveOutcome:
    left: bool


@dataclass(frozen=True, slots=True)
class SendOutcome:
    """A publish was stored; delivery is never confirmed by a send."""

    message_id: str
    seq: int | None = None


@runtime_checkable
class Commands(Protocol):
    """What the console asks of the endpoint. Raise an exception whose text says what happened."""

    async def join(self, channel: str) -> JoinOutcome: ...

    async def leave(self, channel: str) -> LeaveOutcome: ...

    async def post(self, channel: str, text: str, mentions: tuple[str, ...]) -> SendOutcome: ...

    async def dm(self, peer_id: str, text: str) -> SendOutcome: ...

    async def set_status(self, status: PeerStatus) -> None: ...

    async def set_activity(self, activity: str | None) -> None: ...

    async def retry_now(
        self, channel: str, operation: PendingOperation, owner: str | None = None
    ) -> None:
        """Cut the backoff sleep of a pending boot join or leave retry short (``owner`` as in
        :attr:`PendingOp.owner`: None for this console's own endpoint)."""
        ...
