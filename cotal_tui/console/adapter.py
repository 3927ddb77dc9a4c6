"""`MeshSource`: the real `Endpoint` (and an optional in-process `DeliveryDaemon`) as a `Source`
and a `Commands` for the console model.

Theory of operation. The model polls the getters every tick and they must not do I/O, so:
- what the endpoint already keeps in memory (connection state, roster, joined set, pending
  boot joins and leave retries, the daemon's counters) is read straight through, converted
  once per changed object (caches keyed by the endpoint's own objects);
- what needs a round trip (the `lease.0` read, the `ctl.delivery` responder probe, the channel
  list with retained counts) is refreshed by one poller task owned here, and the getters return
  the last result with the time it was taken, so the model can say how old it is;
- messages arrive as endpoint events and are queued for `messages()`.

Nothing here decides health: the verdict table (verdict.py) does, from what this reports.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from cotal_tui.console.membership_feed import BrokerFeed
from cotal_tui.console.model import Clock, wall_clock
from cotal_tui.console.roster_inputs import PeerInputs
from cotal_tui.console.roster_inputs import peer_input as peer_input
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
    current_view,
    latest_info,
    read_cluster_view,
    unread_view,
)
from cotal_tui.mesh.connection import Closed, Connected, Connection, Reconnecting
from cotal_tui.mesh.creds_claims import creds_label
from cotal_tui.mesh.events import ConnectionChanged, EndpointError, EndpointEvent, MessageReceived
from cotal_tui.mesh.eviction_stats import read_evictions
from cotal_tui.mesh.pipeline_probe import read_pipeline
from cotal_tui.mesh.plane3_agent import NothingPending, Plane3Agent, probe_delivery_responder
from cotal_tui.protocol.pipeline import delivery_json, judge_pipeline
from cotal_tui.protocol.subjects import parse_subject

if TYPE_CHECKING:
    from cotal_tui.delivery.daemon import DeliveryDaemon
    from cotal_tui.mesh.endpoint import ChannelRow, Endpoint
    from cotal_tui.mesh.lease import LeaseRead as EndpointLeaseRead
    from cotal_tui.mesh.messages import Inbound
    from cotal_tui.protocol.cred_card import CredCard
    from cotal_tui.protocol.models import CotalMessage

LEASE_EVERY_S = 2.0
CHANNELS_EVERY_S = 5.0
PROBE_CANNOT = "this credential may not publish on ctl.delivery, so the responder cannot be probed"


class LeaveDeferred(RuntimeError):
    """A leave failed closed and is being retried in the background (a Pending row)."""


class RetryUnavailable(RuntimeError):
    """`retry now` needs the Plane-3 agent (auth mode) and a pending entry for that channel."""


def message_input(inbound: Inbound) -> MessageInput:
    m = inbound.message
    # The label comes from where the message travelled (its subject), never from the body: a
    # body's `channel`/`to` is the sender's claim (issue 10: a post on #dur shown as #exec).
    parsed = parse_subject(inbound.subject)
    if inbound.kind == "channel":
        target = inbound.channel or m.channel or ""
    elif inbound.kind == "dm":
        target = parsed.rest if parsed is not None and parsed.kind == "inst" else m.to or ""
    else:
        target = parsed.rest if parsed is not None and parsed.kind == "svc" else m.to_service or ""
    return MessageInput(
        id=m.id,
        ts=m.ts,
        sender_id=m.from_.id,
        sender_name=m.from_.name,
        sender_role=m.from_.role,
        mode=inbound.kind,
        target=target,
        text=m.text,
        mentions=tuple(m.mentions or ()),
        historical=inbound.historical,
        raw=m.to_wire(),
        backlog=inbound.backlog,
    )


class MeshSource:
    """Source + Commands over a started `Endpoint`; `start()` owns the poller, `stop()` ends it."""

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        daemon: DeliveryDaemon | None = None,
        daemon_refused: str | None = None,
        server: str = "",
        lease_every_s: float = LEASE_EVERY_S,
        channels_every_s: float = CHANNELS_EVERY_S,
        clock: Clock = wall_clock,
    ) -> None:
        self.ep = endpoint
        self.delivery_daemon = daemon
        self.daemon_refused = daemon_refused
        self.server = server
        self.lease_every_s = lease_every_s
        self.channels_every_s = channels_every_s
        self.clock = clock
        self.mode = "auth" if endpoint.creds else "open"
        self.known_holders: dict[str, str] = {}
        """Delivery identities this console can name (id → words), for the lease pane."""
        self.up_daemon_id: str | None = None
        self._queue: asyncio.Queue[MessageInput | None] = asyncio.Queue()
        self._off: Callable[[], None] | None = None
        self._listening: Endpoint | None = None
        self._poller: asyncio.Task[None] | None = None
        self._lease = LeaseRead("pending")
        self._probe = ResponderCheck("unchecked")
        self._progress = ProgressCheck("pending")
        self.progress_via: tuple[Connection, str | None] | None = None
        """A better-credentialed connection to read progress through (the in-process daemon's
        manager or delivery cred); None: the endpoint's own, as its profile allows."""
        self._cluster: ClusterView | None = None
        self._ep_lease: EndpointLeaseRead | None = None
        self._rows: list[ChannelRow] = []
        self._rows_at: Ms | None = None
        self._rows_error: str | None = None
        self._channel_cache: dict[str, tuple[tuple[Any, ...], ChannelInput]] = {}
        self._channels_input: ChannelsInput | None = None
        self._peer_inputs = PeerInputs()
        self._peers: tuple[PeerInput, ...] = ()
        self._pending_since: dict[tuple[str, str], Ms] = {}
        self._live_reasons: dict[str, str] = {}
        self._daemon_error: tuple[str, Ms] | None = None
        self.last_error: str | None = None
        self._refresh_now = asyncio.Event()
        self._echoed: dict[str, None] = {}
        self.agent_card: CredCard | None = None
        """Set when the console runs as the agent its cred describes (name, role, ACL)."""
        self.feed = BrokerFeed()
        """The 0.9.0 membership feed, display-only (console/membership_feed.py)."""

    # -- lifecycle ------------------------------------------------------------------------------

    def listen(self) -> None:
        """Receive the endpoint's events from now on (call before its start, so the boot
        backfill and the ``dlv_`` backlog that arrive while it starts reach the feed)."""
        if self._off is not None and self._listening is self.ep:
            return
        if self._off is not None:
            self._off()
        self._off = self.ep.on_event(self._on_event)
        self._listening = self.ep

    async def start(self) -> None:
        self.listen()
        if self._poller is None or self._poller.done():
            self._poller = asyncio.get_running_loop().create_task(
                self._poll_loop(), name="console-mesh-poller"
            )
        self.feed.start(lambda: (self.ep.conn, self.ep.space, self.ep.connected))

    async def stop(self) -> None:
        if self._off is not None:
            self._off()
            self._off = None
        task, self._poller = self._poller, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        await self.feed.stop()
        self._queue.put_nowait(None)

    def _on_event(self, event: EndpointEvent) -> None:
        if isinstance(event, MessageReceived):
            if event.inbound.message.id not in self._echoed:
                self._queue.put_nowait(message_input(event.inbound))
        elif isinstance(event, EndpointError):
            self.last_error = event.message
        elif isinstance(event, ConnectionChanged) and isinstance(event.state, Connected):
            self._refresh_now.set()

    async def _poll_loop(self) -> None:
        next_channels = 0.0
        while True:
            try:
                await self.refresh_lease()
                if time.monotonic() >= next_channels:
                    await self.refresh_channels()
                    next_channels = time.monotonic() + self.channels_every_s
                # After the channels: a credential refused some progress reads waits out their
                # timeouts here, and must not hold the channels pane empty meanwhile.
                await self.refresh_progress()
                await self.refresh_cluster()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the poller must outlive any one failure
                self.last_error = f"console poller: {exc}"
            self._refresh_now.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.lease_every_s):
                    await self._refresh_now.wait()
            if self._refresh_now.is_set():
                next_channels = 0.0

    async def refresh_lease(self) -> None:
        """Read `lease.0` and probe the responder; keep the last results with their times."""
        if not self.ep.connected:
            return  # keep the last facts; the link state makes the verdict "unreachable"
        read = await self.ep.read_lease()
        now = self.clock()
        self._ep_lease = read
        if not read.known:
            self._lease = LeaseRead("failed", read_at=now, error=read.error)
        elif read.error is not None:
            self._lease = LeaseRead("failed", read_at=now, error=read.error)
        elif read.lease is None:
            self._lease = LeaseRead("absent", read_at=now, revision=read.revision)
        else:
            info = read.lease
            self._lease = LeaseRead(
                "present",
                read_at=now,
                holder=info.holder,
                since=int(info.since),
                ready=info.ready,
                revision=read.revision,
                raw=info.to_wire(),
            )
        outcome, ms = await probe_delivery_responder(self.ep)
        checked = self.clock()
        if outcome == "answered":
            self._probe = ResponderCheck("answered", checked, ms)
        elif outcome in ("no-responders", "timeout"):
            self._probe = ResponderCheck(outcome, checked)  # type: ignore[arg-type]
        elif outcome == "unknown":
            self._probe = ResponderCheck("failed", checked, error=PROBE_CANNOT)
        else:
            self._probe = ResponderCheck("unchecked")

    async def refresh_progress(self) -> None:
        """Read the pipeline's progress (issue 10) as this credential allows."""
        conn, creds = self.progress_via or (self.ep.conn, self.ep.creds)
        try:
            figs = await read_pipeline(conn, self.ep.space, creds=creds)
        except Exception as exc:  # noqa: BLE001 - shown as unknown progress, never as moving
            self._progress = ProgressCheck("failed", self.clock(), error=str(exc) or repr(exc))
            return
        verdict = judge_pipeline(figs, peers=len(self.ep.roster.roster))
        delivery = delivery_json(figs, verdict)
        if self.delivery_daemon is None:
            # A daemon in another process (issue 11): its evictedBeforeRouting over ctl.delivery,
            # as `status --json` reads it; unknown (never 0) when it did not answer.
            answered = self._probe.outcome == "answered"
            delivery.update(await read_evictions(self.ep, answered, self._probe.outcome))
        self._progress = ProgressCheck(
            "read",
            self.clock(),
            state=verdict.state,
            text=verdict.text,
            evidence=verdict.evidence,
            delivery=delivery,
        )

    async def refresh_cluster(self) -> None:
        """Read the cluster's view of the space (no requests when the server is not clustered)."""
        try:
            self._cluster = await read_cluster_view(self.ep.conn, self.ep.space)
        except Exception as exc:  # noqa: BLE001 - the lease facts stand; the error is shown
            self._cluster = unread_view(self.ep.conn, f"the read failed: {exc}")
            self.last_error = f"cluster read: {exc}"

    async def refresh_channels(self) -> None:
        try:
            self._rows = await self.ep.list_channels(self._ep_lease)
            self._rows_at, self._rows_error = self.clock(), None
        except Exception as exc:  # noqa: BLE001 - shown as the channels source's failure
            self._rows_error = str(exc) or type(exc).__name__

    def poke(self) -> None:
        """Re-read lease and channels now (after a join or leave)."""
        self._refresh_now.set()

    # -- Source ---------------------------------------------------------------------------------

    def identity(self) -> Identity:
        card = self.agent_card
        if card is None:
            return Identity(
                self.ep.space,
                self.ep.id,
                self.ep.card.name,
                self.mode,
                self.server,
                credential=creds_label(self.ep.creds),
            )
        return Identity(
            self.ep.space,
            self.ep.id,
            self.ep.card.name,
            self.mode,
            self.server,
            credential=creds_label(self.ep.creds),
            kind="agent",
            read=card.read,
            post=card.post,
        )

    def connection(self) -> ConnectionInput:
        st = self.ep.connection_state
        if st is None:
            return ConnectionInput("connecting")
        if isinstance(st, Connected):
            return ConnectionInput("connected", since=int(st.at * 1000))
        if isinstance(st, Reconnecting):
            return ConnectionInput(
                "reconnecting",
                since=int(st.since * 1000),
                last_error=st.last_error,
                reconnect_attempts=st.attempt,
            )
        assert isinstance(st, Closed)
        return ConnectionInput("closed", since=int(st.at * 1000), last_error=st.reason)

    def roster(self) -> RosterInput:
        """The peers, converted only where the roster wrote since the last tick (roster_inputs)."""
        self._peers = self._peer_inputs.read(self.ep.roster.roster)
        last = self.ep.roster.last_activity  # monotonic seconds
        if last is not None and self.ep.watch_presence:
            observed: Ms | None = self.clock() - int((time.monotonic() - last) * 1000)
        else:
            observed = None
        return RosterInput(self.ep.roster_view, self._peers, observed_at=observed)

    def channels(self) -> ChannelsInput:
        joined = set(self.ep.joined_channels())
        unclosed = {p.channel for p in self.ep.pending_leaves()}
        registry = self.ep.registry
        durable = self.ep.durable
        rows: list[ChannelInput] = []
        any_changed = self._channels_input is None
        names = {r.channel for r in self._rows}
        fresh: dict[str, tuple[tuple[Any, ...], ChannelInput]] = {}
        peer_names = self._peer_inputs.names
        for row in [*self._rows, *(_joined_only(ch) for ch in sorted(joined - names))]:
            ch = row.channel
            member = self.ep.has_durable_membership(ch)
            generation = durable.generation(ch)
            feed = self.feed.line(ch, peer_names)
            key = (row, ch in joined, member, ch in unclosed, generation,
                   self._live_reasons.get(ch), feed)  # fmt: skip
            hit = self._channel_cache.get(ch)
            if hit is not None and hit[0] == key:
                item = hit[1]
            else:
                any_changed = True
                config = registry.config(ch) or {}
                item = ChannelInput(
                    name=ch,
                    delivery_class=registry.delivery_class(ch),  # type: ignore[arg-type]
                    replay=registry.replay(ch),
                    replay_window=config.get("replayWindow"),
                    description=row.description,
                    instructions=config.get("instructions"),
                    retained=row.messages,
                    joined=ch in joined,
                    durable_membership=member,
                    generation=generation,
                    durable_unclosed=ch in unclosed,
                    mode=row.mode,  # type: ignore[arg-type]
                    live_reason=self._live_reasons.get(ch),
                    class_invalid=registry.invalid_delivery_class(ch),
                    config=dict(config),
                    broker_feed=feed,
                )
            fresh[ch] = (key, item)
            rows.append(item)
        if len(fresh) != len(self._channel_cache):
            any_changed = True
        self._channel_cache = fresh
        prev = self._channels_input
        if (
            any_changed
            or prev is None
            or prev.observed_at != self._rows_at
            or prev.error != self._rows_error
        ):
            self._channels_input = ChannelsInput(
                tuple(rows), observed_at=self._rows_at, error=self._rows_error
            )
        return self._channels_input  # type: ignore[return-value]

    def lease(self) -> LeaseInput:
        holder = self._lease.holder
        label = self.known_holders.get(holder) if holder else None
        is_up = holder is not None and holder == self.up_daemon_id
        # As it stands now: unread after a reconnect, a route dropped since the read counted.
        conn = self.ep.conn
        cluster = current_view(self._cluster, generation=conn.generation, info=latest_info(conn))
        if cluster is None and self.ep.connected:
            cluster = unread_view(self.ep.conn, "not read yet")
        return LeaseInput(
            self._lease,
            self._probe,
            progress=self._progress,
            holder_label=label,
            holder_is_up=is_up,
            cluster=cluster,
        )

    def cluster(self) -> ClusterView | None:
        """The last cluster read (None: not read yet)."""
        return self._cluster

    def pending(self) -> PendingInput:
        now = self.clock()
        ops: list[PendingOp] = []
        seen: set[tuple[str, str]] = set()
        for p in [*self.ep.pending_boot_joins(), *self.ep.pending_leaves()]:
            op = "join" if p.operation == "durableJoin" else "leave"
            key = (op, p.channel)
            seen.add(key)
            since = self._pending_since.setdefault(key, now)
            ops.append(
                PendingOp(
                    p.channel,
                    op,  # type: ignore[arg-type]
                    attempt=p.attempt,
                    next_retry_at=None if p.next_retry_at is None else int(p.next_retry_at * 1000),
                    since=since,
                    last_error=p.last_error,
                )
            )
        for key in list(self._pending_since):
            if key not in seen:
                del self._pending_since[key]
        return PendingInput(tuple(ops), observed_at=now)

    def daemon(self) -> DaemonInput | None:
        if self.delivery_daemon is None:
            if self.daemon_refused is None:
                return None
            return DaemonInput(running=False, refused=self.daemon_refused, observed_at=self.clock())
        st = self.delivery_daemon.state
        now = self.clock()
        if st.last_error and (self._daemon_error is None or self._daemon_error[0] != st.last_error):
            self._daemon_error = (st.last_error, now)
        refused = None
        if st.status in ("failed", "lost"):
            refused = st.stopped_reason or st.status
        c = st.counters
        return DaemonInput(
            running=st.status == "serving",
            holder=st.lease.holder,
            ready=st.lease.ready,
            revision=st.lease.revision,
            last_renew_at=None if st.lease.last_renew is None else int(st.lease.last_renew * 1000),
            fanned_out=c.fanned_out,
            transferred=c.transferred,
            deferred=c.deferred,
            dropped=c.dropped,
            dead_lettered=c.dead_lettered,
            last_error=st.last_error,
            last_error_at=self._daemon_error[1] if self._daemon_error else None,
            refused=refused,
            observed_at=now,
            evicted_before_routing=tuple(sorted(st.evicted_before_routing.items())),
            below_floor_at_bind=below_floor_figure(st.below_floor_at_bind),
            below_floor_unknown=st.below_floor_unknown,
        )

    async def messages(self) -> AsyncIterator[MessageInput]:
        while True:
            item = await self._queue.get()
            if item is None:
                return
            yield item

    # -- Commands -------------------------------------------------------------------------------

    async def join(self, channel: str) -> JoinOutcome:
        result = await self.ep.join_channel(channel)
        cls = self.ep.registry.delivery_class(channel)
        if result.joined and not result.durable and result.reason:
            self._live_reasons[channel] = result.reason
        elif result.durable:
            self._live_reasons.pop(channel, None)
        self.poke()
        return JoinOutcome(
            joined=result.joined,
            durable=result.durable,
            delivery_class=cls,  # type: ignore[arg-type]
            reason=result.reason,
            backfilled=result.backfilled,
        )

    async def leave(self, channel: str) -> LeaveOutcome:
        try:
            left = await self.ep.leave_channel(channel)
        except Exception as exc:
            agent = self.ep.durable
            if self.agent_card is None or not isinstance(agent, Plane3Agent):
                raise
            # fail-closed: nothing changed. As an agent, keep closing the membership in the
            # background (a leave row in the Pending pane) and drop the live side once it lands.
            if not agent.leave_later(channel, lambda: self.ep.chat.leave(channel)):
                raise
            self.poke()
            raise LeaveDeferred(
                f"leave of #{channel} failed closed ({exc or type(exc).__name__}); still on "
                f"#{channel} — retrying the durable leave in the background (Pending pane), "
                "then leaving"
            ) from exc
        self._live_reasons.pop(channel, None)
        self.poke()
        return LeaveOutcome(left)

    async def post(self, channel: str, text: str, mentions: tuple[str, ...]) -> SendOutcome:
        msg = await self.ep.send(channel, text, mentions=list(mentions) or None)
        self._echo(msg, "channel", channel)
        return SendOutcome(msg.id)

    async def dm(self, peer_id: str, text: str) -> SendOutcome:
        msg = await self.ep.send_dm(peer_id, text)
        self._echo(msg, "dm", peer_id)
        return SendOutcome(msg.id)

    def _echo(self, msg: CotalMessage, mode: str, target: str) -> None:
        """Show our own sends in the feed (the endpoint does not hand them back to us)."""
        if msg.id in self._echoed:
            return
        self._echoed[msg.id] = None
        while len(self._echoed) > 1024:
            self._echoed.pop(next(iter(self._echoed)))
        self._queue.put_nowait(
            MessageInput(
                id=msg.id,
                ts=msg.ts,
                sender_id=msg.from_.id,
                sender_name=msg.from_.name,
                sender_role=msg.from_.role,
                mode=mode,  # type: ignore[arg-type]
                target=target,
                text=msg.text,
                mentions=tuple(msg.mentions or ()),
                raw=msg.to_wire(),
            )
        )

    async def set_status(self, status: PeerStatus) -> None:
        await self.ep.set_status(status)  # type: ignore[arg-type]

    async def set_activity(self, activity: str | None) -> None:
        await self.ep.set_activity(activity or "")

    async def retry_now(
        self, channel: str, operation: PendingOperation, owner: str | None = None
    ) -> None:
        """Wake the pending operation's retry loop so it tries now, outside its backoff sleep.

        The attempt runs in the endpoint's own loop (which keeps the generation and the pending
        entry); its outcome shows in the Pending pane: the row goes, or its attempt count and
        last error move on.
        """
        if owner is not None and owner not in (self.ep.id, self.ep.card.name):
            raise RetryUnavailable(
                f"{owner}'s retry loops are not in this console; only this endpoint's "
                f"({self.ep.card.name}) can be retried here"
            )
        agent = self.ep.durable
        if not isinstance(agent, Plane3Agent):
            raise RetryUnavailable(
                "nothing to retry: this endpoint has no Plane-3 agent (open mode, no daemon)"
            )
        try:
            agent.retry_now(channel, operation)
        except NothingPending as exc:
            raise RetryUnavailable(str(exc)) from exc
        self.poke()


def _joined_only(channel: str) -> ChannelRow:
    """A joined channel not yet in the last channel list (joined since the last refresh)."""
    from cotal_tui.mesh.endpoint import ChannelRow

    return ChannelRow(
        channel=channel,
        description=None,
        delivery_class="durable",
        replay=True,
        messages=0,
        joined=True,
        durable_unclosed=False,
        delivery_health=None,
    )


def below_floor_figure(below: dict[str, int] | None) -> tuple[int, int, int] | None:
    """deliveryStats' ``belowFloorAtBind`` ({from, to, counted}) as a tuple (None: unknown)."""
    if below is None:
        return None
    try:
        return int(below["from"]), int(below["to"]), int(below["counted"])
    except (KeyError, TypeError, ValueError):
        return None
