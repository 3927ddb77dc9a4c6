"""The endpoint: one identity on a space, composed from the mesh modules.

``Endpoint`` owns a :class:`~cotal_tui.mesh.connection.Connection` and, depending on its
options, the presence heartbeat, the roster watch, the channel registry, the live chat
subscriptions, the ``dm_<id>`` / ``svc_<role>`` / ``dlv_<id>`` pumps and a
:class:`~cotal_tui.mesh.durable.DurableMembership`. Every part registers its own re-arm with the
connection; the endpoint only sequences start and stop (§5.7 ``connectAndBind``) and routes
everything that happens into one stream of typed events (:mod:`cotal_tui.mesh.events`).

Messages are deduplicated by id across the live, backfill and durable copies (two rotating sets
of 4096 ids): each id reaches the application once; a later durable copy of an id already
surfaced is acked at once, since the durable ack owns the message.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nats.aio.msg import Msg

from cotal_tui.mesh.channels import ChannelRegistry
from cotal_tui.mesh.chat import ChatChannels, HistoryMessage, JoinFailed
from cotal_tui.mesh.connection import (
    WATCH_INACTIVE_S,
    Connected,
    Connection,
    ConnectionState,
)
from cotal_tui.mesh.control import (
    ControlHandler,
    ControlServer,
    request_bound,
    request_control,
    serve_control,
)
from cotal_tui.mesh.durable import DurableFactory, DurableMembership, LiveOnly, PendingOp
from cotal_tui.mesh.events import (
    ChannelChanged,
    ChannelDropped,
    ConnectionChanged,
    EndpointError,
    EndpointEvent,
    MessageReceived,
    PresenceChanged,
    RosterChanged,
    RosterViewChanged,
)
from cotal_tui.mesh.jsapi import JsApiError, consumer_info, create_consumer
from cotal_tui.mesh.kv import BucketNotFound, KvBucket
from cotal_tui.mesh.lease import LeaseRead
from cotal_tui.mesh.messages import (
    Decision,
    Inbound,
    SeenIds,
    check_dlv,
    check_pumped,
    new_message,
    publish_message,
)
from cotal_tui.mesh.plane3_agent import Plane3Agent
from cotal_tui.mesh.presence import PresencePublisher, RosterView, RosterWatch
from cotal_tui.mesh.pump import PullPump
from cotal_tui.mesh.roster import PeerNotFound, resolve_peer
from cotal_tui.mesh.space import ensure_open_space
from cotal_tui.mesh.tasks import cancel_and_wait
from cotal_tui.protocol.channels import (
    assert_valid_channel,
    is_concrete_channel,
    normalize_mentions,
)
from cotal_tui.protocol.consumers import dm_durable_config, task_durable_config
from cotal_tui.protocol.errors import InvalidChannel
from cotal_tui.protocol.models import (
    AgentCard,
    Attention,
    ChannelMode,
    CotalMessage,
    DeliveryLeaseInfo,
    EndpointRef,
    Presence,
    Status,
)
from cotal_tui.protocol.names import (
    ACK_WAIT_MS,
    HEARTBEAT_MS,
    OPEN_DM_INACTIVE_THRESHOLD_MS,
    PRESENCE_TTL_MS,
    delivery_bucket,
    dlv_durable,
    dlv_stream,
    dm_durable,
    dm_stream,
    lease_key,
    task_durable,
    task_stream,
)
from cotal_tui.protocol.subjects import (
    CONTROL_DELIVERY,
    anycast_subject,
    chat_subject,
    unicast_subject,
)

Listener = Callable[[EndpointEvent], None]
BACKLOG_DRAIN_S = 5.0
"""How long a start waits for the ``dlv_`` backlog to surface before the boot backfill."""


class EndpointNotStarted(Exception):
    pass


class NotJoinable(Exception):
    """A channel name that cannot be joined or posted to (wildcard where concrete is needed)."""


@dataclass(frozen=True)
class JoinResult:
    channel: str
    joined: bool
    backfilled: int = 0
    durable: bool = False
    reason: str | None = None


@dataclass(frozen=True)
class Sent:
    """A published message and the stream sequence its PubAck named."""

    message: CotalMessage
    seq: int


@dataclass(frozen=True)
class ChannelRow:
    """One row of :meth:`Endpoint.list_channels` (§5.9)."""

    channel: str
    description: str | None
    delivery_class: str
    replay: bool
    messages: int
    joined: bool
    durable_unclosed: bool
    delivery_health: str | None
    mode: str | None = None
    delivery_class_problem: str | None = None  # an invalid stored deliveryClass, read as live


def creds_identity(path: str) -> str:
    """The user public key (``sub`` of the JWT) a ``.creds`` file authenticates as."""
    text = Path(path).read_text()
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if "BEGIN NATS USER JWT" in line:
            token = lines[i + 1].strip()
            payload = token.split(".")[1]
            payload += "=" * (-len(payload) % 4)
            return str(json.loads(base64.urlsafe_b64decode(payload))["sub"])
    raise ValueError(f"{path} holds no NATS user JWT; pass a .creds file minted for this space")


class Endpoint:
    def __init__(
        self,
        server: str | list[str],
        space: str,
        card: AgentCard | None = None,
        *,
        name: str | None = None,
        role: str | None = None,
        kind: str = "agent",
        description: str | None = None,
        instance_id: str | None = None,
        creds: str | None = None,
        channels: Sequence[str] = (),
        register_presence: bool = True,
        watch_presence: bool = True,
        watch_channels: bool = True,
        consume: bool = True,
        create_space: bool | None = None,
        ttl_ms: int = PRESENCE_TTL_MS,
        heartbeat_ms: int = HEARTBEAT_MS,
        sweep_ms: int | None = None,
        watch_heartbeat_ms: int = 1000,
        roster_liveness_ms: int | None = None,
        ack_wait_ms: int = ACK_WAIT_MS,
        dm_inactive_threshold_ms: int = OPEN_DM_INACTIVE_THRESHOLD_MS,
        confirm_window_s: float = 0.05,
        auto_ack: bool = True,
        durable: DurableFactory | None = None,
        connect_timeout: float = 5.0,
        reconnect_time_wait: float = 0.5,
        watch_inactive_s: float = WATCH_INACTIVE_S,
    ) -> None:
        if card is None:
            if name is None:
                raise ValueError("Endpoint needs a card or a name")
            if instance_id is None:
                instance_id = creds_identity(creds) if creds else str(uuid.uuid4())
            card = AgentCard.model_validate(
                {
                    "id": instance_id,
                    "name": name,
                    "kind": kind,
                    "role": role,
                    "description": description,
                }
            )
        if creds is not None and card.id != (creds_id := creds_identity(creds)):
            raise ValueError(
                f"card id {card.id} does not match the identity of {creds} ({creds_id}); in "
                "auth mode the id comes from the creds"
            )
        self.card = card
        self.space = space
        self.creds = creds
        self.boot_channels = list(channels)
        self.register_presence = register_presence
        self.watch_presence = watch_presence
        self.watch_channels = watch_channels
        self.consume = consume
        self.create_space = (creds is None) if create_space is None else create_space
        self.ttl_ms = ttl_ms
        self.heartbeat_ms = heartbeat_ms
        self.ack_wait_ms = ack_wait_ms
        self.dm_inactive_threshold_ms = dm_inactive_threshold_ms
        self.auto_ack = auto_ack
        self.conn = Connection(
            server,
            card.name,
            card.id,
            creds=creds,
            connect_timeout=connect_timeout,
            reconnect_time_wait=reconnect_time_wait,
            watch_inactive_s=watch_inactive_s,
        )
        self.roster = RosterWatch(
            self.conn,
            space,
            ttl_ms=ttl_ms,
            sweep_ms=sweep_ms,
            liveness_ms=roster_liveness_ms,
            watch_heartbeat_ms=watch_heartbeat_ms,
            on_presence=lambda e: self._emit(PresenceChanged(e)),
            on_roster=lambda: self._emit(RosterChanged()),
            on_view=lambda v: self._emit(RosterViewChanged(v)),
            on_error=self._error_reporter("presence watch"),
        )
        self.registry = ChannelRegistry(
            self.conn,
            space,
            on_change=lambda key: self._emit(ChannelChanged(key)),
            on_error=self._error_reporter("channel registry"),
            watch_heartbeat_ms=watch_heartbeat_ms,
        )
        self.presence = PresencePublisher(
            self.conn,
            space,
            card,
            heartbeat_ms=heartbeat_ms,
            on_error=self._error_reporter("presence heartbeat"),
        )
        self.chat = ChatChannels(
            self.conn,
            space,
            card.id,
            emit=self._ingest,
            on_late_refusal=self._on_late_refusal,
            on_error=self._error_reporter("live chat"),
            confirm_window_s=confirm_window_s,
        )
        if durable is None:
            # auth mode: the real Plane-3 membership (the daemon's guarantees need the broker's
            # policing); open mode: live only, as the reference (no daemon in open mode)
            durable = Plane3Agent if creds is not None else LiveOnly
        self.durable: DurableMembership = durable(self)
        self._listeners: list[Listener] = []
        self._seen = SeenIds()
        self._pumps: dict[str, PullPump] = {}
        self._servers: list[ControlServer] = []
        self._started = False
        self._stopping = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._dlv_backlog = 0
        self._dlv_bound = False
        self._backlog_drained: asyncio.Event | None = None
        self.conn.add_state_listener(lambda s: self._emit(ConnectionChanged(s)))
        self.conn.add_error_listener(self._error_reporter("connection"))

    # -- identity & observation ----------------------------------------------------------------

    @property
    def id(self) -> str:
        return self.card.id

    @property
    def me(self) -> EndpointRef:
        return EndpointRef.of(self.card)

    @property
    def connection_state(self) -> ConnectionState | None:
        return self.conn.state

    @property
    def roster_view(self) -> RosterView:
        return self.roster.view if self.watch_presence else "unpopulated"

    def roster_entries(self) -> list[Presence]:
        return self.roster.entries()

    def resolve_peer(self, ref: str) -> Presence:
        return resolve_peer(self.roster.entries(), ref)

    def joined_channels(self) -> list[str]:
        return self.chat.joined()

    def pending_boot_joins(self) -> list[PendingOp]:
        return self.durable.pending_boot_joins()

    def pending_leaves(self) -> list[PendingOp]:
        return self.durable.pending_leaves()

    def has_durable_membership(self, channel: str) -> bool:
        return self.durable.has_membership(channel)

    # -- events --------------------------------------------------------------------------------

    def on_event(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    @contextlib.asynccontextmanager
    async def events(self) -> AsyncIterator[asyncio.Queue[EndpointEvent]]:
        """``async with ep.events() as q: ev = await q.get()`` — a queue of every event."""
        queue: asyncio.Queue[EndpointEvent] = asyncio.Queue()
        off = self.on_event(queue.put_nowait)
        try:
            yield queue
        finally:
            off()

    def _emit(self, event: EndpointEvent) -> None:
        for fn in list(self._listeners):
            try:
                fn(event)
            except Exception:  # noqa: BLE001 - a listener bug must not break delivery
                continue

    def report_error(self, error: Exception, context: str) -> None:
        """Emit an :class:`EndpointError` (for plug-ins such as the durable membership)."""
        self._emit(EndpointError(error, context))

    def spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        """Run a background task owned by the endpoint: cancelled and awaited on stop()."""
        return self._spawn(coro, name)

    def _error_reporter(self, context: str) -> Callable[[Exception], None]:
        return lambda exc: self._emit(EndpointError(exc, context))

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect and bind in the reference's order (§5.7 ``connectAndBind``)."""
        if self._started:
            return
        await self.conn.connect()
        self._started = True
        try:
            if self.create_space:
                await ensure_open_space(self.conn, self.space, presence_ttl_ms=self.ttl_ms)
            if self.watch_presence:
                await self.roster.start()
            if self.watch_channels:
                await self.registry.start()
            if self.register_presence:
                await self.presence.start()
            if self.consume:
                await self._start_consumers()
            await self.durable.on_connected(True, list(self.boot_channels))
            self.conn.register_rearm("durable membership", self._rearm_durable)
        except BaseException:
            await self.stop(graceful=False)
            raise

    async def _rearm_durable(self) -> None:
        if self.consume and dlv_durable(self.id) not in self._pumps:
            await self._bind_dlv()
        await self.durable.on_connected(False, list(self.boot_channels))

    async def _start_consumers(self) -> None:
        await self._bind_dm()
        await self._bind_dlv()
        await self._drain_backlog(BACKLOG_DRAIN_S)
        for channel in self.boot_channels:
            try:
                await self._join_live(channel, backfill=True)
            except JoinFailed as exc:
                self._emit(EndpointError(exc, f"boot join of {channel}"))
        if self.card.role:
            await self._bind_task()

    async def stop(self, *, graceful: bool = True) -> None:
        """Stop every task, put ``offline`` (graceful), close. Never hangs."""
        if self._stopping:
            return
        self._stopping = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.durable.stop(), 5)
        await cancel_and_wait(list(self._tasks))
        for pump in list(self._pumps.values()):
            await pump.stop()
        self._pumps.clear()
        for srv in self._servers:
            await srv.stop()
        self._servers.clear()
        await self.chat.stop()
        if self.register_presence:
            await self.presence.stop(graceful=graceful)
        await self.roster.stop()
        await self.registry.stop()
        await self.conn.close()
        self._started = False

    async def __aenter__(self) -> Endpoint:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- pumps ---------------------------------------------------------------------------------

    async def _ensure_durable(self, stream: str, config: dict[str, Any]) -> bool:
        """Open mode creates the durable; auth mode binds only (provisioned by the manager)."""
        name = config["durable_name"]
        if self.creds is None:
            try:
                await create_consumer(self.conn, stream, config)
                return True
            except JsApiError:
                pass  # exists with another config: bind to it as it is
        return await consumer_info(self.conn, stream, name) is not None

    async def _bind_dm(self) -> None:
        cfg = dm_durable_config(
            self.space,
            self.id,
            ack_wait_ms=self.ack_wait_ms,
            inactive_threshold_ms=self.dm_inactive_threshold_ms if self.creds is None else None,
        )
        if await self._ensure_durable(dm_stream(self.space), cfg):
            await self._pump(dm_stream(self.space), dm_durable(self.id), self._on_pumped)
        else:
            self._emit(
                EndpointError(
                    LookupError(f"{dm_durable(self.id)} is not provisioned; DMs will not arrive"),
                    "binding the DM durable",
                )
            )

    async def _bind_task(self) -> None:
        role = self.card.role or ""
        cfg = task_durable_config(self.space, role, ack_wait_ms=self.ack_wait_ms)
        if await self._ensure_durable(task_stream(self.space), cfg):
            await self._pump(task_stream(self.space), task_durable(role), self._on_pumped)

    async def _bind_dlv(self) -> None:
        """Bind and pump ``dlv_<id>`` if it exists (provisioned in auth mode; absent in open)."""
        try:
            info = await consumer_info(self.conn, dlv_stream(self.space), dlv_durable(self.id))
        except Exception:  # noqa: BLE001 - no DLV grant or stream: no durable lane
            return
        if info is not None:
            if not self._dlv_bound:  # what waits at the first bind is the offline backlog
                self._dlv_bound = True
                # (copies a crashed run took but never acked come back only after ack_wait,
                # so they are not counted: they would hold the start and mislabel live copies)
                self._dlv_backlog = int(info.get("num_pending") or 0)
            await self._pump(dlv_stream(self.space), dlv_durable(self.id), self._on_dlv)

    async def _drain_backlog(self, timeout: float) -> None:
        """Let the ``dlv_`` backlog surface before boot backfill, so an offline message is
        surfaced (and marked) as backlog by its durable copy rather than as history."""
        if self._dlv_backlog <= 0:
            return
        self._backlog_drained = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._backlog_drained.wait()

    async def _pump(self, stream: str, durable: str, handler: Callable[[Msg], Any]) -> None:
        if durable in self._pumps:
            return
        pump = PullPump(
            self.conn, stream, durable, handler, on_error=self._error_reporter(f"pump {durable}")
        )
        self._pumps[durable] = pump
        await pump.start()

    async def _on_pumped(self, msg: Msg) -> None:
        await self._handle_durable(msg, check_pumped(msg.subject, msg.data, self.id))

    async def _on_dlv(self, msg: Msg) -> None:
        backlog = self._dlv_backlog > 0
        if backlog:
            self._dlv_backlog -= 1
            if self._dlv_backlog == 0 and self._backlog_drained is not None:
                self._backlog_drained.set()
        await self._handle_durable(msg, check_dlv(msg.subject, msg.data, self.id), backlog)

    async def _handle_durable(self, msg: Msg, decision: Decision, backlog: bool = False) -> None:
        if decision.error is not None:
            self._emit(EndpointError(decision.error, f"receiving on {msg.subject}"))
        if decision.verdict == "term":
            await msg.term()
            return
        if decision.verdict == "ack" or decision.message is None:
            await msg.ack()
            return
        seq = None
        with contextlib.suppress(Exception):
            seq = msg.metadata.sequence.stream
        inbound = Inbound(
            decision.message,
            decision.kind or "channel",
            msg.subject,
            durable=True,
            channel=decision.channel,
            seq=seq,
            backlog=backlog,
            _ack=msg.ack,
            _nak=msg.nak,
        )
        if not self._ingest(inbound):
            await msg.ack()  # already surfaced: the durable ack owns the message, close it
            return
        if self.auto_ack:
            await inbound.ack()

    def _ingest(self, inbound: Inbound) -> bool:
        """Surface a message once per id; False when it was a duplicate."""
        if inbound.id in self._seen:
            return False
        self._seen.add(inbound.id)
        self._emit(MessageReceived(inbound))
        return True

    # -- channels ------------------------------------------------------------------------------

    async def _join_live(self, channel: str, *, backfill: bool) -> tuple[int, int]:
        watermark = await self.chat.subscribe(channel)
        count = 0
        if backfill:
            replay, window_ms = await self._join_policy(channel)
            if replay:
                count = await self.chat.backfill(channel, watermark, window_ms=window_ms)
        return watermark, count

    async def _join_policy(self, channel: str) -> tuple[bool, int | float | None]:
        try:
            return await self.registry.fresh_join_policy(channel)
        except Exception:  # noqa: BLE001 - fall back to the cache (same rules)
            return self.registry.replay(channel), self.registry.replay_window_ms(channel)

    async def join_channel(self, channel: str) -> JoinResult:
        """Join live, ask for the durable backstop on a durable-class channel, then backfill."""
        self._require_started()
        assert_valid_channel(channel)
        if self.chat.is_joined(channel):
            return JoinResult(channel, False, 0, self.durable.has_membership(channel))
        watermark = await self.chat.subscribe(channel)
        durable, reason = False, None
        if is_concrete_channel(channel) and self.registry.delivery_class(channel) == "durable":
            try:
                got = await self.durable.on_join(channel)
                durable = got.durable
                reason = None if got.durable else (got.reason or "durable backstop unavailable")
            except Exception as exc:  # noqa: BLE001 - reported as the join's reason
                reason = f"durable backstop unavailable ({exc})"
        count = 0
        replay, window_ms = await self._join_policy(channel)
        if replay:
            count = await self.chat.backfill(channel, watermark, window_ms=window_ms)
        return JoinResult(channel, True, count, durable, reason)

    async def leave_channel(self, channel: str) -> bool:
        """Fail-closed: the durable side may raise, and then nothing changes."""
        self._require_started()
        if not self.chat.is_joined(channel):
            return False
        await self.durable.before_leave(channel)
        return await self.chat.leave(channel)

    def _on_late_refusal(self, channel: str) -> None:
        self._emit(ChannelDropped(channel, "the broker refused the live subscription"))
        try:
            self.durable.on_refused(channel)
        except Exception as exc:  # noqa: BLE001
            self._emit(EndpointError(exc, f"closing the refused membership of {channel}"))

    async def history(self, channel: str, **kwargs: Any) -> list[HistoryMessage]:
        self._require_started()
        return await self.chat.history(channel, **kwargs)

    async def read_lease(self, timeout: float = 2.5) -> LeaseRead:
        """Read ``lease.0`` (STREAM.MSG.GET). A credential without the grant sees a timeout:
        the lease is then unknown, never assumed absent."""
        bucket = KvBucket(self.conn, delivery_bucket(self.space))
        try:
            entry = await asyncio.wait_for(bucket.get(lease_key(0)), timeout)
        except TimeoutError:
            return LeaseRead(
                False,
                error=f"no answer reading lease.0 within {timeout:g}s (the credential may not "
                "read the delivery bucket)",
            )
        except BucketNotFound as exc:
            return LeaseRead(False, error=str(exc))
        except Exception as exc:  # noqa: BLE001 - reported as unknown
            return LeaseRead(False, error=str(exc))
        if entry is None:
            return LeaseRead(True)
        try:
            return LeaseRead(True, DeliveryLeaseInfo.from_json(entry.value), entry.revision)
        except Exception as exc:  # noqa: BLE001
            return LeaseRead(True, error=f"undecodable lease: {exc}")

    async def list_channels(self, lease: LeaseRead | None = None) -> list[ChannelRow]:
        """Every channel with retained messages or a registry entry, plus unclosed leaves."""
        self._require_started()
        counts = await self.chat.message_counts()
        lease = lease if lease is not None else await self.read_lease()
        unclosed = {p.channel for p in self.durable.pending_leaves()}
        names = set(counts) | set(self.registry.channels()) | unclosed
        modes = self.presence.channel_modes or {}
        rows = []
        for ch in sorted(names):
            joined = self.chat.is_joined(ch)
            cls = self.registry.delivery_class(ch)
            health = None
            if lease.known and joined and cls == "durable":
                active = lease.live and self.durable.has_membership(ch)
                health = "active" if active else "degraded"
            rows.append(
                ChannelRow(
                    channel=ch,
                    description=self.registry.description(ch),
                    delivery_class=cls,
                    replay=self.registry.replay(ch),
                    messages=counts.get(ch, 0),
                    joined=joined,
                    durable_unclosed=ch in unclosed,
                    delivery_health=health,
                    mode=modes.get(ch),
                    delivery_class_problem=self.registry.delivery_class_problem(ch),
                )
            )
        return rows

    # -- sending -------------------------------------------------------------------------------

    async def send(
        self,
        channel: str,
        text: str | None = None,
        *,
        parts: list[dict[str, Any]] | None = None,
        mentions: list[str] | None = None,
        reply_to: str | None = None,
        context_id: str | None = None,
    ) -> CotalMessage:
        """Multicast to a concrete channel; returns once the PubAck is in."""
        return await self._post(
            self._post_subject(channel),
            text=text,
            parts=parts,
            channel=channel,
            mentions=normalize_mentions(mentions),
            reply_to=reply_to,
            context_id=context_id,
        )

    async def send_dm(
        self,
        target: str,
        text: str | None = None,
        *,
        parts: list[dict[str, Any]] | None = None,
        reply_to: str | None = None,
        context_id: str | None = None,
    ) -> CotalMessage:
        """Unicast to a peer by id or name (resolved through the roster)."""
        self._require_started()
        try:
            target_id = self.resolve_peer(target).card.id
        except PeerNotFound:
            target_id = target
        return await self._post(
            unicast_subject(self.space, target_id, self.id),
            text=text,
            parts=parts,
            to=target_id,
            reply_to=reply_to,
            context_id=context_id,
        )

    async def send_anycast(
        self,
        role: str,
        text: str | None = None,
        *,
        parts: list[dict[str, Any]] | None = None,
        reply_to: str | None = None,
        context_id: str | None = None,
    ) -> CotalMessage:
        self._require_started()
        return await self._post(
            anycast_subject(self.space, role, self.id),
            text=text,
            parts=parts,
            to_service=role,
            reply_to=reply_to,
            context_id=context_id,
        )

    def _post_subject(self, channel: str) -> str:
        """The CHAT subject this endpoint posts ``channel`` on; refuses a bad or pattern channel."""
        self._require_started()
        try:
            assert_valid_channel(channel)
        except InvalidChannel as exc:
            raise NotJoinable(str(exc)) from exc
        if not is_concrete_channel(channel):
            raise NotJoinable(f'cannot post to "{channel}": publishes need a concrete channel')
        return chat_subject(self.space, self.id, channel)

    async def _post(self, subject: str, **fields: Any) -> CotalMessage:
        """Build the message (``new_message`` fields) and publish it, PubAck awaited."""
        return (await self._post_stored(subject, **fields)).message

    async def _post_stored(self, subject: str, **fields: Any) -> Sent:
        msg = new_message(self.space, self.me, **fields)
        seq = await publish_message(self.conn, subject, msg)
        return Sent(msg, seq)

    async def send_stored(
        self, channel: str, text: str, *, mentions: list[str] | None = None
    ) -> Sent:
        """:meth:`send` of a text, returning the stored stream sequence with the message."""
        return await self._post_stored(
            self._post_subject(channel),
            text=text,
            channel=channel,
            mentions=normalize_mentions(mentions),
        )

    async def send_dm_stored(self, target_id: str, text: str) -> Sent:
        """A text DM to an instance id (already resolved), with its stored sequence."""
        self._require_started()
        return await self._post_stored(
            unicast_subject(self.space, target_id, self.id), text=text, to=target_id
        )

    # -- presence ------------------------------------------------------------------------------

    async def set_status(self, status: Status) -> None:
        await self.presence.update(status=status)

    async def set_activity(self, activity: str) -> None:
        await self.presence.update(activity=activity)

    async def set_attention(self, attention: Attention) -> None:
        await self.presence.update(attention=attention)

    async def set_channel_modes(self, modes: dict[str, ChannelMode]) -> None:
        await self.presence.update(channel_modes=modes)

    # -- control -------------------------------------------------------------------------------

    async def serve_control(
        self, service: str, handler: ControlHandler, *, bound_reply: bool = False, queue: str = ""
    ) -> ControlServer:
        self._require_started()
        srv = await serve_control(
            self.conn,
            self.space,
            service,
            handler,
            bound_reply=bound_reply,
            queue=queue,
            on_error=self._error_reporter(f"control service {service}"),
        )
        self._servers.append(srv)
        return srv

    async def request_control(
        self, service: str, op: str, args: dict[str, Any] | None = None, *, timeout: float = 5.0
    ) -> Any:
        self._require_started()
        return await request_control(
            self.conn, self.space, service, self.me, op, args, timeout=timeout
        )

    async def request_delivery(
        self, op: str, args: dict[str, Any] | None = None, *, timeout: float = 5.0
    ) -> Any:
        """``ctl.delivery`` on the bound lane: 503 → NoResponders, silence → RequestTimeout."""
        self._require_started()
        return await request_bound(
            self.conn, self.space, CONTROL_DELIVERY, self.me, op, args, timeout=timeout
        )

    def _require_started(self) -> None:
        if not self._started:
            raise EndpointNotStarted(f"endpoint {self.card.name} is not started; call start()")

    @property
    def connected(self) -> bool:
        return isinstance(self.conn.state, Connected) and self.conn.is_connected
