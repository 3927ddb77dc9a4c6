"""What a NATS cluster says about a space, read now: the node we are connected to, the nodes that
answer, each space stream's leader and replicas (STREAM.INFO's ``cluster`` block), and whether
the daemon's two consumers (fan-out on CHAT, the reader on INBOX) have a leader and are moving.

Reduced to one word for the one verdict table (``cluster`` column, mesh/lease_table.py):

- ``n/a``: not a cluster (the server reports no cluster), or nothing could be read with this
  credential (every request refused); the rows about the lease decide alone.
- ``ok``: every space stream answered with a leader, every replica is online and current, the
  connected server is routed to every node the streams name, and the daemon's consumers are not
  stalled.
- ``lost``: a space stream (or a daemon consumer) has no leader: STREAM.INFO was not answered (a
  stream without quorum answers nothing) or names none. Writes to it fail until a leader is
  elected (NATS needs 2 of 3 replicas up).
- ``unread``: the server is clustered but the view has not been read (yet), or reading it failed:
  no evidence about the cluster, so never serving.
- ``node-down``: every stream has a leader but a node is gone: a replica reported offline or not
  current in a space stream's (or KV bucket's) cluster block, or the connected server is routed
  to fewer nodes than the streams name (its latest INFO's ``connect_urls``: a node pushes a new
  INFO the moment a route drops, while NATS keeps calling a dead replica "current" for up to
  10 s). Said at once, before any leader moves or the daemon's consumers stall: the gap after a
  node loss starts here, and ``check`` is never OK during it.
- ``stalled``: the fan-out or reader consumer has work waiting (not yet delivered, or delivered
  and not acked) and acked nothing for :data:`STALL_AFTER_MS` by the server's own clock — the
  daemon is not moving (e.g. after its node died, until it reconnects and its consumers resume
  on the new leader; or while it takes messages but cannot write their copies). Acks, not
  deliveries, are the progress: a daemon that keeps taking messages it cannot settle is stalled.

The dead-letter store (``COTALTUI_DEAD_<space>``) is read like the other space streams when the
space has one (a space this project's ``up`` did not provision has none: left out, not lost).

Requests the credential may not make (an agent cred may read only some streams) are recognized by
the broker's refusal and left out, never counted as lost.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from cotal_tui.mesh.connection import Connection, PermissionRefusal
from cotal_tui.protocol.consumers import bucket_specs, stream_specs
from cotal_tui.protocol.dead_letter import dead_letter_stream
from cotal_tui.protocol.names import (
    chat_stream,
    fanout_durable,
    inbox_stream,
    reader_durable,
)

API = "$JS.API"
READ_TIMEOUT_S = 2.0
STALL_AFTER_MS = 3_000
"""A daemon consumer with work waiting that acked nothing for this long is stalled (a live,
connected daemon settles each batch within milliseconds)."""

ClusterWord = str  # one of lease_table.CLUSTER


@dataclass(frozen=True)
class ReplicaState:
    name: str
    current: bool
    offline: bool
    lag: int | None
    active_ms: float | None


@dataclass(frozen=True)
class StreamState:
    """One stream: `leader` None with `error` set when it did not answer (no quorum)."""

    name: str
    leader: str | None = None
    replicas: tuple[ReplicaState, ...] = ()
    wanted: int | None = None
    error: str | None = None
    denied: bool = False
    absent: bool = False
    """An optional stream (the dead-letter store) the space does not have."""

    @property
    def lost(self) -> bool:
        return not (self.denied or self.absent) and self.leader is None

    @property
    def current(self) -> list[str]:
        return [r.name for r in self.replicas if r.current and not r.offline]

    @property
    def lagging(self) -> list[str]:
        return [r.name for r in self.replicas if not (r.current and not r.offline)]

    @property
    def read(self) -> bool:
        return not (self.denied or self.absent)


@dataclass(frozen=True)
class ConsumerState:
    """A daemon consumer: work waiting (`pending` not yet delivered + `ack_pending`) and how long
    since its last ack (`idle_ms`, server clock; since its creation when it never acked)."""

    stream: str
    name: str
    leader: str | None = None
    pending: int = 0
    ack_pending: int = 0
    idle_ms: float | None = None
    error: str | None = None
    denied: bool = False
    absent: bool = False

    @property
    def lost(self) -> bool:
        return not (self.denied or self.absent) and self.leader is None

    @property
    def stalled(self) -> bool:
        waiting = self.pending + self.ack_pending > 0
        return waiting and self.idle_ms is not None and self.idle_ms > STALL_AFTER_MS


@dataclass(frozen=True)
class ClusterView:
    clustered: bool
    connected: str | None = None
    cluster_name: str | None = None
    streams: tuple[StreamState, ...] = ()
    consumers: tuple[ConsumerState, ...] = ()
    read_at: float = field(default_factory=time.time)
    unread: str | None = None
    """Why there is no reading of a clustered server (not read yet, or the read failed)."""
    routed: int | None = None
    """How many nodes the connected server is routed to, itself included (its latest INFO's
    ``connect_urls``); None when it advertises none (``no_advertise``)."""
    generation: int | None = None
    """The connection's generation when read (it changes on every reconnect)."""

    @property
    def nodes_known(self) -> list[str]:
        names: set[str] = set()
        if self.connected:
            names.add(self.connected)
        for s in self.streams:
            if s.leader:
                names.add(s.leader)
            names.update(r.name for r in s.replicas)
        return sorted(names)

    @property
    def nodes_answering(self) -> list[str]:
        """Our own node, every stream leader, and every replica reported online and current."""
        names: set[str] = set()
        if self.connected:
            names.add(self.connected)
        for s in self.streams:
            if s.leader:
                names.add(s.leader)
            names.update(s.current)
        return sorted(names)

    @property
    def answering(self) -> int:
        """How many nodes answer: the names in :attr:`nodes_answering`, but never more than the
        connected server is routed to (a dead replica stays "current" for a while)."""
        count = len(self.nodes_answering)
        return count if self.routed is None else min(count, self.routed)

    @property
    def nodes_down(self) -> list[str]:
        """Nodes a read stream reports as a replica offline or not current."""
        return sorted({n for s in self.streams if s.read for n in s.lagging})

    @property
    def unrouted(self) -> int:
        """How many of the nodes the streams name the connected server is not routed to."""
        if self.routed is None:
            return 0
        return max(0, len(self.nodes_known) - self.routed)

    @property
    def node_lost(self) -> bool:
        return bool(self.nodes_down) or self.unrouted > 0

    @property
    def readable(self) -> bool:
        return any(not s.denied for s in self.streams)

    def word(self) -> ClusterWord:
        if not self.clustered:
            return "n/a"
        if self.unread is not None:
            return "unread"
        if not self.readable:
            return "n/a"
        if any(s.lost for s in self.streams) or any(c.lost for c in self.consumers):
            return "lost"
        if any(c.stalled for c in self.consumers):
            return "stalled"
        if self.node_lost:
            return "node-down"
        return "ok"

    def detail(self) -> str:
        """What the word rests on, in words (for the verdict's consequence)."""
        if self.unread is not None:
            return self.unread
        lost = [s.name for s in self.streams if s.lost]
        lost += [f"{c.stream}/{c.name}" for c in self.consumers if c.lost]
        if lost:
            return f"no leader for {', '.join(lost)}"
        stalled = [c for c in self.consumers if c.stalled]
        if stalled:
            return "; ".join(
                f"{c.stream}/{c.name} has {c.pending + c.ack_pending} waiting and acked "
                f"nothing for {(c.idle_ms or 0) / 1000:.1f}s"
                for c in stalled
            )
        text = f"{self.answering}/{len(self.nodes_known)} nodes answering"
        if self.unrouted:
            text += (
                f", {self.connected or 'the connected node'} routed to {self.routed} of "
                f"{len(self.nodes_known)}"
            )
        if self.nodes_down:
            text += f", replicas offline or lagging on {', '.join(self.nodes_down)}"
        return text


def space_stream_names(space: str) -> list[str]:
    """Every stream the cluster view reads: the space streams, the KV buckets' streams, and the
    dead-letter store (optional: :func:`optional_streams`)."""
    return (
        [s.name for s in stream_specs(space)]
        + [b.stream_spec().name for b in bucket_specs(space)]
        + sorted(optional_streams(space))
    )


def optional_streams(space: str) -> set[str]:
    """Streams a space may lack (the reference's spaces have no dead-letter store)."""
    return {dead_letter_stream(space)}


def latest_info(conn: Connection) -> dict[str, Any]:
    """The connected server's latest INFO (pushed updates included, see Connection)."""
    tracked = conn.server_info() if hasattr(conn, "server_info") else {}
    if tracked:
        return tracked
    try:
        info = getattr(conn.nc, "_server_info", None)
    except Exception:  # noqa: BLE001 - closed connection
        return {}
    return dict(info) if isinstance(info, dict) else {}


def routed_nodes(info: dict[str, Any]) -> int | None:
    """Nodes the server is routed to, itself included: the client URLs it advertises (every
    routed peer's and its own). None when it advertises none (no_advertise)."""
    urls = info.get("connect_urls")
    if not isinstance(urls, list) or not urls:
        return None
    return len(set(urls))


def _ts_ms(value: Any) -> float | None:
    """An RFC 3339 timestamp from the server (nanosecond precision) as epoch ms."""
    if not isinstance(value, str) or not value or value.startswith("0001-"):
        return None
    text = value.rstrip("Z")
    if "." in text:
        head, frac = text.split(".", 1)
        text = f"{head}.{frac[:6]}"
    try:
        return datetime.fromisoformat(text + "+00:00").timestamp() * 1000
    except ValueError:
        return None


async def _request(
    conn: Connection, subject: str
) -> tuple[dict[str, Any] | None, str | None, bool]:
    """(answer, error, denied): a refusal by the broker is told apart from silence."""
    refused: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    def on_refusal(_r: PermissionRefusal) -> None:
        if not refused.done():
            refused.set_result(True)

    off = conn.on_refusal(subject, on_refusal)
    try:
        req = asyncio.ensure_future(conn.nc.request(subject, b"", timeout=READ_TIMEOUT_S))
        req.add_done_callback(_retrieve)  # a cancelled read leaves no unretrieved exception
        await asyncio.wait({req, refused}, return_when=asyncio.FIRST_COMPLETED)
        if not req.done():
            req.cancel()
            return None, "refused by the broker (this credential may not read it)", True
        refused.cancel()
        try:
            msg = req.result()
        except Exception as exc:  # noqa: BLE001 - a timeout is what a leaderless stream gives
            return None, f"no answer in {READ_TIMEOUT_S:g}s ({type(exc).__name__})", False
        data = json.loads(msg.data or b"{}")
        err = data.get("error")
        if err:
            return data, f"{err.get('description')} (err_code {err.get('err_code')})", False
        return data, None, False
    finally:
        off()


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


def unread_view(conn: Connection, reason: str) -> ClusterView | None:
    """A clustered server's view with no reading (None when the server is not clustered)."""
    info = latest_info(conn)
    if not info.get("cluster"):
        return None
    return ClusterView(
        clustered=True,
        connected=info.get("server_name"),
        cluster_name=info.get("cluster"),
        unread=reason,
    )


def _replicas(block: dict[str, Any]) -> tuple[ReplicaState, ...]:
    out = []
    for r in block.get("replicas") or []:
        active = r.get("active")
        out.append(
            ReplicaState(
                name=str(r.get("name")),
                current=bool(r.get("current")),
                offline=bool(r.get("offline")),
                lag=r.get("lag"),
                active_ms=None if active is None else active / 1_000_000,
            )
        )
    return tuple(out)


async def _stream(conn: Connection, name: str, optional: bool = False) -> StreamState:
    data, error, denied = await _request(conn, f"{API}.STREAM.INFO.{name}")
    if data is None or error:
        absent = optional and data is not None and "not found" in (error or "")
        return StreamState(name, error=error, denied=denied, absent=absent)
    block = data.get("cluster") or {}
    wanted = (data.get("config") or {}).get("num_replicas")
    return StreamState(name, leader=block.get("leader"), replicas=_replicas(block), wanted=wanted)


async def _consumer(conn: Connection, stream: str, name: str) -> ConsumerState:
    data, error, denied = await _request(conn, f"{API}.CONSUMER.INFO.{stream}.{name}")
    if data is None or error:
        absent = data is not None and "not found" in (error or "")
        return ConsumerState(stream, name, error=error, denied=denied, absent=absent)
    block = data.get("cluster") or {}
    now = _ts_ms(data.get("ts")) or time.time() * 1000
    # ack_floor.last_active is the time of the last ack of any message (not only of the floor).
    last = _ts_ms((data.get("ack_floor") or {}).get("last_active")) or _ts_ms(data.get("created"))
    return ConsumerState(
        stream,
        name,
        leader=block.get("leader"),
        pending=int(data.get("num_pending") or 0),
        ack_pending=int(data.get("num_ack_pending") or 0),
        idle_ms=None if last is None else max(0.0, now - last),
    )


async def read_cluster_view(conn: Connection, space: str) -> ClusterView:
    """Read it all now (in parallel, each bounded by :data:`READ_TIMEOUT_S`). A server that
    reports no cluster gives a view with ``clustered`` False and no requests are made."""
    info = latest_info(conn)
    generation = conn.generation
    if not info.get("cluster"):
        return ClusterView(clustered=False, connected=info.get("server_name"))
    optional = optional_streams(space)
    names = space_stream_names(space)
    # all at once: a leaderless cluster times every request out, so the read takes one
    # READ_TIMEOUT_S, not one for the streams and another for the consumers
    found = await asyncio.gather(
        *(_stream(conn, n, n in optional) for n in names),
        _consumer(conn, chat_stream(space), fanout_durable()),
        _consumer(conn, inbox_stream(space), reader_durable()),
    )
    streams = [s for s in found if isinstance(s, StreamState)]
    consumers = [c for c in found if isinstance(c, ConsumerState)]
    return ClusterView(
        clustered=True,
        connected=info.get("server_name"),
        cluster_name=info.get("cluster"),
        streams=tuple(streams),
        consumers=tuple(consumers),
        # After the reads: a route that dropped meanwhile is counted.
        routed=routed_nodes(latest_info(conn)),
        generation=generation,
    )


def current_view(
    view: ClusterView | None, *, generation: int, info: dict[str, Any]
) -> ClusterView | None:
    """The last read as it stands now, for a surface that keeps one between reads (the
    console): ``unread`` once the connection has reconnected since (``generation`` moved: its
    node may be the one that died, and the read did not see that), and ``routed`` from the latest
    INFO (``info``, :func:`latest_info`: a route that drops between two reads counts at once)."""
    if view is None or not view.clustered or view.unread is not None:
        return view
    if view.generation is not None and view.generation != generation:
        return ClusterView(
            clustered=True,
            connected=info.get("server_name"),
            cluster_name=info.get("cluster"),
            unread="reconnected since the last read (its node may be gone)",
        )
    routed = routed_nodes(info)
    if routed is not None and routed != view.routed:
        return replace(view, routed=routed)
    return view


def cluster_lines(view: ClusterView | None) -> tuple[str, ...]:
    """The cluster in words: a summary line, then one line per space stream and daemon consumer.
    Empty when not read or not a cluster."""
    if view is None or not view.clustered:
        return ()
    if view.unread is not None:
        return (f"unread (connected to {view.connected or '?'}: {view.unread})",)
    answering, known = view.nodes_answering, view.nodes_known
    named = f": {', '.join(answering) or 'none'}"
    if view.answering < len(answering):  # stale replica reports name nodes the routes lost
        named = (
            f": {view.connected}"
            if view.answering == 1 and view.connected
            else f" by its routes; replica reports still name {', '.join(answering)}"
        )
    lines = [
        f"{view.word()} (connected to {view.connected or '?'}, {view.answering}/{len(known)} "
        f"nodes answering{named})"
    ]
    if view.unrouted:
        lines.append(
            f"{view.connected or 'the connected node'} is routed to {view.routed} of the "
            f"{len(known)} nodes the streams name: {view.unrouted} not answering"
        )
    for s in view.streams:
        if not s.read:
            continue
        if s.leader is None:
            lines.append(f"{s.name}: NO LEADER — {s.error or 'none named'}")
            continue
        lag = f", lagging {', '.join(s.lagging)}" if s.lagging else ""
        current = ", ".join(s.current) or "none"
        lines.append(f"{s.name}: R{s.wanted or '?'} leader {s.leader}, current {current}{lag}")
    for c in view.consumers:
        if c.denied or c.absent:
            continue
        if c.leader is None:
            lines.append(f"{c.stream}/{c.name}: NO LEADER — {c.error or 'none named'}")
            continue
        idle = "—" if c.idle_ms is None else f"{c.idle_ms / 1000:.1f}s"
        state = "STALLED" if c.stalled else "moving"
        lines.append(
            f"{c.stream}/{c.name}: leader {c.leader}, {c.pending} pending, {c.ack_pending} "
            f"unacked, last ack {idle} ago ({state})"
        )
    return tuple(lines)


def cluster_json(view: ClusterView | None) -> dict[str, Any] | None:
    """The ``cluster`` object of ``status --json`` (None: not read)."""
    if view is None:
        return None
    return {
        "clustered": view.clustered,
        "name": view.cluster_name,
        "connectedTo": view.connected,
        "nodesKnown": view.nodes_known,
        "nodesAnswering": view.nodes_answering,
        "answering": view.answering,
        "nodesRouted": view.routed,
        "nodesDown": view.nodes_down,
        "verdict": view.word(),
        "detail": view.detail() if view.clustered else None,
        "streams": [
            {
                "stream": s.name,
                "leader": s.leader,
                "replicas": s.wanted,
                "current": s.current,
                "lagging": s.lagging,
                "error": s.error,
            }
            for s in view.streams
            if not s.absent
        ],
        "consumers": [
            {
                "stream": c.stream,
                "consumer": c.name,
                "leader": c.leader,
                "pending": c.pending,
                "ackPending": c.ack_pending,
                "idleMs": None if c.idle_ms is None else round(c.idle_ms),
                "stalled": c.stalled,
                "error": c.error,
            }
            for c in view.consumers
        ],
    }
