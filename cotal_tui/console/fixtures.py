"""Fixed data that satisfies `Source` and `Commands`: for snapshots, Pilot tests and the bench.

`FixtureSource` returns whatever its fields hold (tests mutate them to move the world) and streams
messages pushed into it. `FixtureCommands` applies commands to that same data, so a join shows up
in the Channels pane on the next tick, and can be told to fail the way a real endpoint fails
(an ACL refusal, no daemon).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from cotal_tui.console.source import (
    ChannelInput,
    ChannelsInput,
    ConnectionInput,
    DaemonInput,
    Identity,
    JoinOutcome,
    LeaseInput,
    LeaseRead,
    LeaveOutcome,
    MessageInput,
    Ms,
    PeerInput,
    PeerStatus,
    PendingInput,
    PendingOp,
    PendingOperation,
    ProgressCheck,
    ResponderCheck,
    RosterInput,
    SendOutcome,
)
from cotal_tui.mesh.cluster_view import (
    ClusterView,
    ConsumerState,
    ReplicaState,
    StreamState,
    space_stream_names,
)
from cotal_tui.protocol.pipeline import (
    Backlog,
    DeadLetterSummary,
    PipelineFigures,
    delivery_json,
    judge_pipeline,
)

FIXED_NOW: Ms = 1_795_759_200_000
"""2026-11-27T06:00:00Z: every fixture time is relative to this."""

SELF_ID = "op-7c1e"
HOLDER = "dlv-4b2d9e"


def fixed_clock(now: Ms = FIXED_NOW) -> Callable[[], Ms]:
    return lambda: now


class MutableClock:
    """A clock a test advances by hand."""

    def __init__(self, now: Ms = FIXED_NOW) -> None:
        self.now = now

    def __call__(self) -> Ms:
        return self.now

    def advance(self, ms: int) -> None:
        self.now += ms


def _peer(
    pid: str,
    name: str,
    status: PeerStatus,
    role: str | None,
    activity: str | None = None,
    *,
    age_ms: int = 800,
    kind: str = "agent",
    now: Ms = FIXED_NOW,
    **extra: Any,
) -> PeerInput:
    raw: dict[str, Any] = {
        "card": {"id": pid, "name": name, "kind": kind, **({"role": role} if role else {})},
        "status": status,
        "ts": now - age_ms,
    }
    if activity:
        raw["activity"] = activity
    if extra.get("description"):
        raw["card"]["description"] = extra["description"]
    if extra.get("tags"):
        raw["card"]["tags"] = list(extra["tags"])
    meta = {k: extra[k] for k in ("model", "connector") if extra.get(k)}
    if meta:
        raw["card"]["meta"] = meta
    return PeerInput(
        id=pid,
        name=name,
        kind=kind,  # type: ignore[arg-type]
        status=status,
        ts=now - age_ms,
        role=role,
        activity=activity,
        description=extra.get("description"),
        tags=tuple(extra.get("tags", ())),
        skills=tuple(extra.get("skills", ())),
        model=extra.get("model"),
        connector=extra.get("connector"),
        raw=raw,
    )


def demo_peers(now: Ms = FIXED_NOW) -> tuple[PeerInput, ...]:
    return (
        _peer(
            "ag-ada-01",
            "ada",
            "working",
            "planner",
            "drafting the release plan",
            now=now,
            age_ms=400,
            description="Plans releases and splits work",
            tags=("planning",),
            skills=("plan", "triage"),
            model="claude-sonnet",
            connector="claude-code",
        ),
        _peer(
            "ag-bo-02",
            "bo",
            "waiting",
            "reviewer",
            "approval: release notes",
            now=now,
            age_ms=1_200,
            model="gpt-5",
            connector="codex",
        ),
        _peer(
            "ag-cy-03", "cy", "working", "builder", "running the test suite", now=now, age_ms=900
        ),
        _peer("ag-dee-04", "dee", "idle", "builder", now=now, age_ms=1_700),
        _peer("ag-eli-05", "eli", "idle", "writer", "", now=now, age_ms=300),
        _peer("ag-fox-06", "fox", "working", "tester", "fuzzing the parser", now=now, age_ms=1_100),
        _peer("ag-gil-07", "gil", "offline", "ops", "restarting the cache", now=now, age_ms=47_000),
        _peer(
            "ag-hal-08",
            "hal",
            "waiting",
            "researcher",
            "input: which dataset?",
            now=now,
            age_ms=600,
        ),
        _peer("ag-kit-09", "kit", "idle", "builder", now=now, age_ms=1_400),
        _peer("ag-kit-10", "kit", "working", "tester", "bisecting a flake", now=now, age_ms=500),
        _peer(
            SELF_ID,
            "operator",
            "idle",
            "operator",
            "watching",
            kind="endpoint",
            now=now,
            age_ms=200,
        ),
        _peer(
            "ep-mgr-01",
            "manager",
            "idle",
            "manager",
            "supervisor (demo)",
            kind="endpoint",
            now=now,
            age_ms=1_000,
        ),
    )


def demo_channels() -> tuple[ChannelInput, ...]:
    return (
        ChannelInput(
            "general",
            "durable",
            True,
            "24h",
            "Everyone, everything",
            retained=42,
            joined=True,
            durable_membership=True,
            generation=3,
            members=("ada", "bo", "cy", "dee", "eli", "fox", "hal", "kit", "operator"),
            config={
                "replay": True,
                "replayWindow": "24h",
                "deliveryClass": "durable",
                "description": "Everyone, everything",
            },
        ),
        ChannelInput(
            "review",
            "durable",
            True,
            None,
            "Code review requests",
            retained=17,
            joined=True,
            durable_membership=True,
            generation=1,
            members=("ada", "bo", "operator"),
            instructions="Post a link and the risk; @bo answers within the hour.",
            config={
                "deliveryClass": "durable",
                "description": "Code review requests",
                "instructions": "Post a link and the risk; @bo answers within the hour.",
            },
        ),
        ChannelInput(
            "team.backend",
            "durable",
            True,
            None,
            "Backend squad",
            retained=8,
            joined=True,
            durable_membership=False,
            live_reason="activation catch-up window partially evicted by retention",
            members=("cy", "dee", "operator"),
            config={"description": "Backend squad"},
        ),
        ChannelInput(
            "random",
            "live",
            False,
            None,
            "Off-topic",
            retained=5,
            joined=True,
            config={"deliveryClass": "live", "replay": False, "description": "Off-topic"},
        ),
        ChannelInput(
            "ops",
            "live",
            True,
            None,
            "Pager and deploys",
            retained=11,
            joined=False,
            config={"deliveryClass": "live", "description": "Pager and deploys"},
        ),
        ChannelInput(
            "legacy",
            "durable",
            True,
            None,
            None,
            retained=0,
            joined=False,
            durable_unclosed=True,
            generation=2,
        ),
    )


def serving_lease(now: Ms = FIXED_NOW) -> LeaseInput:
    return LeaseInput(
        read=LeaseRead(
            "present",
            read_at=now - 300,
            holder=HOLDER,
            since=now - 4_000,
            ready=True,
            revision=12,
            raw={"holder": HOLDER, "since": now - 4_000, "ready": True},
        ),
        responder=ResponderCheck("answered", checked_at=now - 1_500, latency_ms=3.2),
    )


def lease_case(verdict: str, now: Ms = FIXED_NOW) -> tuple[LeaseInput, ConnectionInput, str]:
    """(lease, connection, mode) inputs that the verdict table judges as `verdict`."""
    up = ConnectionInput("connected", since=now - 600_000)
    base = serving_lease(now)
    read, probe = base.read, base.responder
    mode = "auth"
    if verdict == "serving":
        return base, up, mode
    if verdict == "not-ready":
        r = replace(
            read,
            ready=False,
            since=now - 1_000,
            raw={"holder": HOLDER, "since": now - 1_000, "ready": False},
        )
        return LeaseInput(r, ResponderCheck("unchecked")), up, mode
    if verdict == "no-lease":
        return (
            LeaseInput(
                LeaseRead("absent", read_at=now - 300),
                ResponderCheck("no-responders", checked_at=now - 2_000, latency_ms=1.1),
            ),
            up,
            mode,
        )
    if verdict == "stale":
        r = replace(
            read, since=now - 48_000, raw={"holder": HOLDER, "since": now - 48_000, "ready": True}
        )
        return (
            LeaseInput(r, ResponderCheck("no-responders", checked_at=now - 2_000, latency_ms=0.9)),
            up,
            mode,
        )
    if verdict == "no-responder":
        return (
            LeaseInput(read, ResponderCheck("timeout", checked_at=now - 2_000, latency_ms=5_000.0)),
            up,
            mode,
        )
    if verdict == "refused":
        err = (
            "permission denied: $JS.API.DIRECT.GET.KV_cotal_delivery_demo "
            "(this credential may not read the lease bucket)"
        )
        return LeaseInput(LeaseRead("failed", read_at=now - 300, error=err), probe), up, mode
    if verdict == "unreachable":
        down = ConnectionInput(
            "unreachable",
            since=now - 12_000,
            last_error="dial tcp 127.0.0.1:4222: connection refused",
            reconnect_attempts=6,
        )
        return base, down, mode
    if verdict == "unverified":
        return LeaseInput(read, ResponderCheck("unchecked")), up, mode
    if verdict == "clock-skew":
        r = replace(
            read, since=now + 95_000, raw={"holder": HOLDER, "since": now + 95_000, "ready": True}
        )
        return LeaseInput(r, probe), up, mode
    if verdict == "not-moving":
        return replace(base, progress=stalled_progress(now)), up, mode
    if verdict == "dead-letters":
        return replace(base, progress=dead_letter_progress(now)), up, mode
    if verdict in ("quorum-lost", "stalled", "node-lost"):
        return replace(base, cluster=demo_cluster(verdict)), up, mode
    raise ValueError(f"no fixture for lease verdict {verdict!r}")


def _progress(figs: PipelineFigures, now: Ms) -> ProgressCheck:
    verdict = judge_pipeline(figs)
    return ProgressCheck(
        "read",
        now - 1_000,
        state=verdict.state,
        text=verdict.text,
        evidence=verdict.evidence,
        delivery=delivery_json(figs, verdict),
    )


def stalled_progress(now: Ms = FIXED_NOW) -> ProgressCheck:
    """A serving daemon whose fan-out has not routed a message for 42 s (issue 10)."""
    return _progress(
        PipelineFigures(
            Backlog(17, 42_000),
            Backlog(0),
            DeadLetterSummary(0, {}),
            {"KV_cotal_presence_demo": 6, "KV_cotal_channels_demo": 4},
        ),
        now,
    )


DEAD_LETTERS: tuple[dict[str, Any], ...] = (
    {
        "subject": "cotal.demo.chat.UMALLORY.review",
        "stream": "CHAT_demo",
        "seq": 4312,
        "reason": "too-deep",
        "detail": "nested 3003 levels, more than the 64-level bound",
        "ts": FIXED_NOW - 95_000,
        "size": 6_187,
        "by": HOLDER,
    },
    {
        "subject": "cotal.demo.chat.UMALLORY.review",
        "stream": "CHAT_demo",
        "seq": 4290,
        "reason": "entry-oversized",
        "detail": "the 1048540-byte message makes a 1048617-byte dinbox entry, over the "
        "server's 1048576-byte max_payload",
        "ts": FIXED_NOW - 310_000,
        "size": 1_048_540,
        "by": HOLDER,
    },
    {
        "subject": "cotal.demo.chat.UMALLORY.ops",
        "stream": "CHAT_demo",
        "seq": 4177,
        "reason": "channel-mismatch",
        "detail": "body says from.id='UMALLORY' channel='exec'; subject is "
        "cotal.demo.chat.UMALLORY.ops",
        "ts": FIXED_NOW - 1_250_000,
        "size": 231,
        "by": HOLDER,
    },
)


def dead_letter_progress(now: Ms = FIXED_NOW) -> ProgressCheck:
    """A moving pipeline with three recent dead letters."""
    return _progress(
        PipelineFigures(
            Backlog(0),
            Backlog(0),
            DeadLetterSummary(
                3,
                {"too-deep": 1, "entry-oversized": 1, "channel-mismatch": 1},
                DEAD_LETTERS,
                95_000,
            ),
            {"KV_cotal_presence_demo": 6, "KV_cotal_channels_demo": 4},
        ),
        now,
    )


def demo_cluster(verdict: str) -> ClusterView:
    """A 3-node cluster (n1..n3, connected to n1, n3 down) with CHAT leaderless (quorum-lost),
    the fan-out consumer not moving (stalled), or neither: only the node gone (node-lost)."""
    up2 = (
        ReplicaState("n2", current=True, offline=False, lag=0, active_ms=120.0),
        ReplicaState("n3", current=False, offline=True, lag=None, active_ms=9_000.0),
    )
    streams = [
        StreamState(name, leader="n1", replicas=up2, wanted=3)
        for name in space_stream_names("demo")
    ]
    if verdict == "quorum-lost":
        streams[0] = StreamState(streams[0].name, wanted=3, error="no answer in 2s (TimeoutError)")
    idle = 6_400.0 if verdict == "stalled" else 40.0
    consumers = (
        ConsumerState("CHAT_demo", "fanout", leader="n1", pending=37, ack_pending=0, idle_ms=idle),
        ConsumerState("INBOX_demo", "reader", leader="n2", pending=0, ack_pending=0, idle_ms=idle),
    )
    return ClusterView(
        clustered=True,
        connected="n1",
        cluster_name="cotal",
        streams=tuple(streams),
        consumers=consumers,
        read_at=FIXED_NOW / 1000,
        routed=2 if verdict == "node-lost" else None,
    )


LEASE_VERDICTS = (
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
    "quorum-lost",
    "stalled",
    "node-lost",
)


def demo_pending(now: Ms = FIXED_NOW) -> tuple[PendingOp, ...]:
    return (
        PendingOp(
            "releases",
            "join",
            attempt=3,
            next_retry_at=now + 8_000,
            since=now - 7_000,
            last_error="no responders on cotal.demo.ctl.delivery (no daemon bound)",
        ),
        PendingOp(
            "legacy",
            "leave",
            attempt=2,
            next_retry_at=now + 4_000,
            since=now - 3_000,
            last_error="durableLeave: timed out after 5000 ms",
        ),
    )


def demo_daemon(now: Ms = FIXED_NOW) -> DaemonInput:
    return DaemonInput(
        running=True,
        holder=HOLDER,
        ready=True,
        revision=12,
        last_renew_at=now - 4_000,
        fanned_out=1_284,
        transferred=1_190,
        deferred=12,
        dropped=3,
        dead_lettered=1,
        last_error="reader: terminated a message whose from.id did not match its subject",
        last_error_at=now - 65_000,
        observed_at=now - 100,
    )


def _msg(
    i: int,
    sender: tuple[str, str, str],
    mode: str,
    target: str,
    text: str,
    ago_ms: int,
    *,
    now: Ms,
    historical: bool = False,
    mentions: tuple[str, ...] = (),
) -> MessageInput:
    sid, sname, srole = sender
    raw: dict[str, Any] = {
        "id": f"msg-{i:04d}",
        "ts": now - ago_ms,
        "space": "demo",
        "from": {"id": sid, "name": sname, "role": srole},
        "parts": [{"kind": "text", "text": text}],
    }
    key = {"channel": "channel", "dm": "to", "anycast": "toService"}[mode]
    raw[key] = target
    if mentions:
        raw["mentions"] = list(mentions)
    return MessageInput(
        id=f"msg-{i:04d}",
        ts=now - ago_ms,
        sender_id=sid,
        sender_name=sname,
        sender_role=srole,
        mode=mode,
        target=target,
        text=text,
        mentions=mentions,  # type: ignore[arg-type]
        historical=historical,
        raw=raw,
    )


def demo_messages(now: Ms = FIXED_NOW) -> tuple[MessageInput, ...]:
    ada = ("ag-ada-01", "ada", "planner")
    bo = ("ag-bo-02", "bo", "reviewer")
    cy = ("ag-cy-03", "cy", "builder")
    fox = ("ag-fox-06", "fox", "tester")
    hal = ("ag-hal-08", "hal", "researcher")
    kit = ("ag-kit-10", "kit", "tester")
    return (
        _msg(
            1,
            ada,
            "channel",
            "general",
            "morning all — release train leaves at 10:00",
            3_600_000,
            now=now,
            historical=True,
        ),
        _msg(
            2,
            bo,
            "channel",
            "review",
            "PR 412 looks fine, one nit on naming",
            1_800_000,
            now=now,
            historical=True,
        ),
        _msg(
            3,
            ada,
            "channel",
            "general",
            "@cy can you take the flaky test?",
            28_000,
            now=now,
            mentions=("cy",),
        ),
        _msg(4, cy, "channel", "general", "on it", 26_000, now=now),
        _msg(
            5,
            fox,
            "channel",
            "review",
            "fuzzer found a crash in the subject parser",
            21_000,
            now=now,
        ),
        _msg(
            6,
            bo,
            "channel",
            "review",
            "@fox please attach the seed",
            19_000,
            now=now,
            mentions=("fox",),
        ),
        _msg(7, kit, "channel", "team.backend", "bisect narrowed it to 3 commits", 15_000, now=now),
        _msg(8, hal, "dm", SELF_ID, "which dataset should I use for the eval?", 12_000, now=now),
        _msg(9, ada, "anycast", "reviewer", "who can review the migration today?", 9_000, now=now),
        _msg(
            10,
            cy,
            "channel",
            "general",
            "flake fixed: a sleep in a test, now waits on the condition",
            6_000,
            now=now,
        ),
        _msg(11, fox, "channel", "random", "coffee machine is back", 4_000, now=now),
        _msg(
            12,
            bo,
            "channel",
            "general",
            "@operator release notes need your approval",
            2_000,
            now=now,
            mentions=("operator",),
        ),
    )


@dataclass
class FixtureData:
    identity: Identity
    connection: ConnectionInput
    roster: RosterInput
    channels: ChannelsInput
    lease: LeaseInput
    pending: PendingInput
    daemon: DaemonInput | None
    messages: tuple[MessageInput, ...] = ()


def demo_data(now: Ms = FIXED_NOW, *, daemon: bool = True) -> FixtureData:
    return FixtureData(
        identity=Identity("demo", SELF_ID, "operator", "auth", "nats://127.0.0.1:4222"),
        connection=ConnectionInput("connected", since=now - 600_000),
        roster=RosterInput("current", demo_peers(now), observed_at=now - 200),
        channels=ChannelsInput(demo_channels(), observed_at=now - 1_000),
        lease=serving_lease(now),
        pending=PendingInput(demo_pending(now), observed_at=now - 100),
        daemon=demo_daemon(now) if daemon else None,
        messages=demo_messages(now),
    )


def agent_data(now: Ms = FIXED_NOW) -> FixtureData:
    """The console running as the agent ``ada`` (``console --creds ada.creds``): its cred reads
    general, review and team.*, posts on general only; #general and #review are durable
    memberships (one a boot channel, one resumed from an earlier run); two messages sent while
    it was away arrived from its ``dlv_`` backlog."""
    data = demo_data(now, daemon=False)
    ada_id = "ag-ada-01"
    data.identity = Identity("demo", ada_id, "ada", "auth", "nats://127.0.0.1:4222",
                             credential="agent ada.creds", kind="agent",
                             read=("general", "review", "team.*"),
                             post=("general",))  # fmt: skip
    data.roster = RosterInput(
        "current",
        tuple(p for p in demo_peers(now) if p.name != "operator"),
        observed_at=now - 200,
    )
    data.channels = ChannelsInput(
        tuple(c for c in demo_channels() if c.name in ("general", "review", "ops")),
        observed_at=now - 1_000,
    )
    data.pending = PendingInput((), observed_at=now - 100)
    bo = ("ag-bo-02", "bo", "reviewer")
    cy = ("ag-cy-03", "cy", "builder")
    away = [
        replace(_msg(20, bo, "channel", "review", "@ada PR 413 is waiting for you", 540_000,
                     now=now, mentions=("ada",)), backlog=True),
        replace(_msg(21, cy, "channel", "general", "deploy done, all green", 300_000, now=now),
                backlog=True),
        _msg(22, cy, "channel", "general", "welcome back ada", 2_000, now=now),
    ]  # fmt: skip
    data.messages = tuple(away)
    return data


def lease_data(verdict: str, now: Ms = FIXED_NOW) -> FixtureData:
    data = demo_data(now, daemon=False)
    lease, conn, _mode = lease_case(verdict, now)
    data.lease, data.connection = lease, conn
    return data


class FixtureSource:
    """A `Source` over mutable `FixtureData`."""

    def __init__(self, data: FixtureData) -> None:
        self.data = data
        self._queue: asyncio.Queue[MessageInput | None] | None = None
        self._closed = False

    def identity(self) -> Identity:
        return self.data.identity

    def connection(self) -> ConnectionInput:
        return self.data.connection

    def roster(self) -> RosterInput:
        return self.data.roster

    def channels(self) -> ChannelsInput:
        return self.data.channels

    def lease(self) -> LeaseInput:
        return self.data.lease

    def pending(self) -> PendingInput:
        return self.data.pending

    def daemon(self) -> DaemonInput | None:
        return self.data.daemon

    async def messages(self) -> AsyncIterator[MessageInput]:
        self._queue = asyncio.Queue()
        for m in self.data.messages:
            yield m
        while not self._closed:
            m = await self._queue.get()
            if m is None:
                return
            yield m

    def push(self, message: MessageInput) -> None:
        """Deliver a message on the stream (once `messages()` has been started)."""
        if self._queue is None:
            self.data.messages = (*self.data.messages, message)
        else:
            self._queue.put_nowait(message)

    def close(self) -> None:
        self._closed = True
        if self._queue is not None:
            self._queue.put_nowait(None)

    # -- world changes that commands cause -------------------------------------------------

    def update_channel(self, name: str, **changes: Any) -> None:
        chans = list(self.data.channels.channels)
        for i, ch in enumerate(chans):
            if ch.name == name:
                chans[i] = replace(ch, **changes)
                break
        else:
            chans.append(ChannelInput(name, **changes))
        self.data.channels = replace(self.data.channels, channels=tuple(chans))


class JoinRefused(PermissionError):
    """The broker refused the live subscription (the agent's read ACL)."""


class NoDaemon(RuntimeError):
    """Nothing answered on ctl.delivery."""


@dataclass
class FixtureCommands:
    """A `Commands` that records calls and applies them to a `FixtureSource`."""

    source: FixtureSource
    acl_denied: set[str] = field(default_factory=set)
    daemon_answers: bool = True
    calls: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)
    seq: int = 100

    def _channel(self, name: str) -> ChannelInput | None:
        return next((c for c in self.source.data.channels.channels if c.name == name), None)

    async def join(self, channel: str) -> JoinOutcome:
        self.calls.append(("join", (channel,)))
        if channel in self.acl_denied:
            raise JoinRefused(
                f'cannot join "{channel}": not within this agent\'s read ACL (allowSubscribe)'
            )
        existing = self._channel(channel)
        if existing is not None and existing.joined:
            return JoinOutcome(False, existing.durable_membership, existing.delivery_class)
        cls = existing.delivery_class if existing is not None else "durable"
        if cls == "live":
            self.source.update_channel(channel, joined=True)
            return JoinOutcome(True, False, "live")
        if self.daemon_answers:
            self.source.update_channel(channel, joined=True, durable_membership=True, generation=1)
            return JoinOutcome(True, True, "durable")
        reason = "durable backstop unavailable (no responders on ctl.delivery)"
        self.source.update_channel(channel, joined=True, live_reason=reason)
        return JoinOutcome(True, False, "durable", reason=reason)

    async def leave(self, channel: str) -> LeaveOutcome:
        self.calls.append(("leave", (channel,)))
        existing = self._channel(channel)
        if existing is None or not existing.joined:
            return LeaveOutcome(False)
        if existing.durable_membership and not self.daemon_answers:
            raise NoDaemon("durableLeave: timed out after 5000 ms waiting for the delivery daemon")
        self.source.update_channel(channel, joined=False, durable_membership=False)
        return LeaveOutcome(True)

    async def post(self, channel: str, text: str, mentions: tuple[str, ...]) -> SendOutcome:
        self.calls.append(("post", (channel, text, mentions)))
        self.seq += 1
        return SendOutcome(f"sent-{self.seq}", self.seq)

    async def dm(self, peer_id: str, text: str) -> SendOutcome:
        self.calls.append(("dm", (peer_id, text)))
        self.seq += 1
        return SendOutcome(f"sent-{self.seq}", self.seq)

    async def set_status(self, status: PeerStatus) -> None:
        self.calls.append(("status", (status,)))

    async def set_activity(self, activity: str | None) -> None:
        self.calls.append(("activity", (activity,)))

    async def retry_now(
        self, channel: str, operation: PendingOperation, owner: str | None = None
    ) -> None:
        self.calls.append(("retry", (channel, operation) if owner is None else
                           (channel, operation, owner)))  # fmt: skip
        ops = self.source.data.pending.ops
        if not any(o.channel == channel and o.operation == operation for o in ops):
            raise LookupError(f"no pending {operation} for #{channel}")
