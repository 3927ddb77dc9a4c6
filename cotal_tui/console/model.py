"""`ConsoleModel`: folds a `Source` into one immutable `Snapshot` per tick.

Theory of operation:
- Messages arrive on an async stream and are only *buffered* (`ingest`): a burst costs an append
  each, never a redraw.
- `tick()` reads every getter of the source once, drains the buffer into the feed window, the
  per-channel unread counts and the msgs/s rate rings, judges the lease (verdict.py) and returns
  a new `Snapshot`. Renderers draw whole snapshots, at the tick rate, whatever the traffic.
- Time comes from an injected clock (epoch ms), so fixed inputs give identical snapshots.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields, replace
from operator import attrgetter

from cotal_tui.console.format import age_text
from cotal_tui.console.roster_fold import RosterFold
from cotal_tui.console.roster_fold import sort_key as roster_sort_key
from cotal_tui.console.snapshot import (
    ChannelRow,
    ChannelsView,
    ConnectionView,
    DaemonView,
    FeedEntry,
    FeedView,
    LeaseView,
    PendingRow,
    PendingView,
    RosterRow,
    RosterView,
    Snapshot,
    SourceView,
    build_channel_row,
)
from cotal_tui.console.source import (
    ChannelInput,
    ConnectionInput,
    DaemonInput,
    Identity,
    LeaseInput,
    MessageInput,
    Ms,
    PeerStatus,
    PendingInput,
    RosterInput,
    Source,
)
from cotal_tui.console.verdict import (
    CLEANUP_TEXT,
    HEALTH_TEXT,
    PROBE_STALE_MS,
    READ_STALE_MS,
    channel_health,
    judge_lease,
)
from cotal_tui.mesh.cluster_view import cluster_lines

Clock = Callable[[], Ms]


def wall_clock() -> Ms:
    return int(time.time() * 1000)


ROSTER_STALE_MS = 6_000
"""No presence update for this long (heartbeats come every 2 s) makes the roster source stale."""
CHANNELS_STALE_MS = 30_000
PENDING_STALE_MS = 10_000
DAEMON_STALE_MS = 20_000
TICK_MS = 100

BANNERS = {
    "unpopulated": (
        "roster unpopulated: the initial presence snapshot is not complete — a missing name is "
        "not an absence"
    ),
    "stale": (
        "roster stale: the presence watch went silent — rows are last-known, not offline; "
        "re-binding"
    ),
}


@dataclass(frozen=True, slots=True)
class ModelOptions:
    feed_window: int = 300
    rate_window_s: int = 30
    read_only: bool = False
    demo: bool = False


def freshness(
    name: str,
    origin: str,
    observed_at: Ms | None,
    error: str | None,
    now: Ms,
    stale_after_ms: int,
) -> SourceView:
    age = None if observed_at is None else max(0, now - observed_at)
    if error:
        return SourceView(name, origin, age, "failed", error)
    if age is None:
        return SourceView(name, origin, None, "unknown", "never observed")
    if age > stale_after_ms:
        return SourceView(name, origin, age, "stale", f"no update for {age_text(age)}")
    return SourceView(name, origin, age, "fresh")


def _same(a: tuple[object, ...], b: tuple[object, ...]) -> bool:
    """Cache keys hold input objects: identity for those, equality for the small values."""
    return a[0] is b[0] and a[1] == b[1] and a[2] is b[2] and a[3] == b[3]


_CHANNEL_FIELDS = [f.name for f in fields(ChannelRow)]
_RATE_AT = _CHANNEL_FIELDS.index("rate")
_ROW_HEAD = attrgetter(*_CHANNEL_FIELDS[:_RATE_AT])
"""A ChannelRow's fields before `rate`, in order (build_channel_row takes them positionally)."""
_ROW_TAIL = attrgetter(*_CHANNEL_FIELDS[_RATE_AT + 1 :])
"""A ChannelRow's fields after `rate`, in order."""


def _last_known(src: SourceView, link_state: str) -> SourceView:
    """With the broker link down, nothing read over it is current, however recent it looks."""
    if src.freshness != "fresh":
        return src
    return replace(src, freshness="stale", reason=f"link {link_state}: last-known")


class RateRing:
    """Counts per whole second over a sliding window, keyed by the second of arrival."""

    __slots__ = ("window", "counts", "last_second", "_history")

    def __init__(self, window: int) -> None:
        self.window = window
        self.counts: deque[int] = deque([0] * window, maxlen=window)
        self.last_second: int | None = None
        self._history: tuple[int, ...] | None = None

    def _advance(self, second: int) -> None:
        if self.last_second is None:
            self.last_second = second
            return
        gap = second - self.last_second
        if gap <= 0:
            return
        for _ in range(min(gap, self.window)):
            self.counts.append(0)
        self.last_second = second
        self._history = None

    def add(self, second: int) -> None:
        self._advance(second)
        assert self.last_second is not None
        back = self.last_second - second
        if 0 <= back < self.window:
            self.counts[self.window - 1 - back] += 1
            self._history = None

    def history(self, second: int) -> tuple[int, ...]:
        """The window as a tuple; the same object until a count or the second changes."""
        self._advance(second)
        if self._history is None:
            self._history = tuple(self.counts)
        return self._history


class ConsoleModel:
    """Owns the feed buffer, unread watermarks and rate rings; builds snapshots on `tick()`."""

    def __init__(
        self,
        source: Source,
        *,
        clock: Clock = wall_clock,
        options: ModelOptions | None = None,
    ) -> None:
        self.source = source
        self.clock = clock
        self.options = options or ModelOptions()
        self._inbox: deque[MessageInput] = deque()
        self._feed: deque[FeedEntry] = deque(maxlen=self.options.feed_window)
        self._seq = 0
        self._tick = 0
        self._received = 0
        self._unread: dict[str, int] = {}
        self._last_current_rows: tuple[RosterRow, ...] = ()
        self._last_known_in: tuple[RosterRow, ...] | None = None
        self._last_known_base: tuple[RosterRow, ...] | None = None
        self._last_known_self = ""
        self._last_known_out: tuple[tuple[RosterRow, ...], dict[str, int], bool] = ((), {}, False)
        """The rows of the last current view: each peer's status as last seen (_last_known)."""
        self._rates: dict[str, RateRing] = {}
        self._total_rate = RateRing(self.options.rate_window_s)
        self._zero_rate: tuple[int, ...] = (0,) * self.options.rate_window_s
        self._names: dict[str, str] = {}
        self._snapshot: Snapshot | None = None
        self._pump_task: asyncio.Task[None] | None = None
        self._feed_last_at: Ms | None = None
        self._roster_fold = RosterFold()
        self._feed_out: tuple[FeedEntry, ...] = ()
        self._feed_dirty = False
        self._channel_cache: dict[str, tuple[tuple[object, ...], ChannelRow]] = {}
        self._channels_in: tuple[ChannelInput, ...] | None = None
        self._channel_inputs: dict[str, ChannelInput] = {}
        """The channel inputs last folded in full; None forces a full fold next tick."""
        self._channels_lease: tuple[object, ...] | None = None
        self._channels_second: int | None = None
        self._channel_at: dict[str, int] = {}
        self._channel_rows: list[ChannelRow] = []
        self._channels_out: tuple[ChannelRow, ...] = ()
        self._channels_dirty: set[str] = set()
        """Channels whose unread count or rate moved since the last tick."""
        self._channels_ticking: set[str] = set()
        """Channels whose rate window still holds a count: their sparkline moves every second."""
        self.full_folds = 0
        """Ticks that folded every channel (tests and the bench read it)."""

    # -- messages ---------------------------------------------------------------------------

    def ingest(self, message: MessageInput) -> None:
        """Buffer one message; it reaches the snapshot on the next tick."""
        self._inbox.append(message)

    def ingest_many(self, messages: Iterable[MessageInput]) -> None:
        self._inbox.extend(messages)

    async def pump(self) -> None:
        """Drain the source's message stream into the buffer until it ends or is cancelled."""
        async for message in self.source.messages():
            self._inbox.append(message)

    def start(self) -> asyncio.Task[None]:
        """Start the pump task (owned here; `stop()` cancels it)."""
        if self._pump_task is None or self._pump_task.done():
            self._pump_task = asyncio.get_running_loop().create_task(
                self.pump(), name="console-model-pump"
            )
        return self._pump_task

    async def stop(self) -> None:
        task, self._pump_task = self._pump_task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - shutdown path
                pass

    def _place(self, entry: FeedEntry) -> None:
        """Append a live message; put a replayed (historical) one where its time belongs, so
        backfill never shows older times below newer ones."""
        feed = self._feed
        if not entry.historical or not feed or feed[-1].ts <= entry.ts:
            feed.append(entry)
            return
        i = len(feed)
        while i > 0 and feed[i - 1].ts > entry.ts:
            i -= 1
        if len(feed) == feed.maxlen:
            if i == 0:
                return  # older than everything the window keeps
            feed.popleft()
            i -= 1
        feed.insert(i, entry)

    def mark_read(self, channel: str) -> None:
        """The operator looked at this channel: its unread arrivals go back to zero."""
        self._unread[channel] = 0
        self._channels_dirty.add(channel)

    @property
    def snapshot(self) -> Snapshot | None:
        """The last snapshot built, or None before the first tick."""
        return self._snapshot

    def pending_messages(self) -> int:
        return len(self._inbox)

    # -- the tick -----------------------------------------------------------------------------

    def tick(self) -> Snapshot:
        now = self.clock()
        self._tick += 1
        ident = self.source.identity()
        link = self.source.connection()
        roster = self._roster(self.source.roster(), ident, now)  # learns names: before the drain
        self._drain(ident, now)
        lease_in = self.source.lease()
        lease = self._lease(lease_in, link, ident, now)
        channels = self._channels(self.source.channels(), lease_in, lease.verdict, now)
        pending = self._pending(self.source.pending(), now)
        daemon_in = self.source.daemon()
        second = now // 1000
        feed = FeedView(
            entries=self._feed_entries(),
            last_seq=self._seq,
            received=self._received,
            rate=self._total_rate.history(second),
            source=self._feed_source(link, now),
        )
        if link.state != "connected":
            roster = replace(roster, source=_last_known(roster.source, link.state))
            channels = replace(channels, source=_last_known(channels.source, link.state))
            lease = replace(
                lease,
                source=_last_known(lease.source, link.state),
                responder_source=_last_known(lease.responder_source, link.state),
            )
        snap = Snapshot(
            tick=self._tick,
            now=now,
            space=ident.space,
            self_id=ident.self_id,
            self_name=ident.self_name,
            credential=ident.credential,
            mode=ident.mode,
            demo=self.options.demo,
            read_only=self.options.read_only,
            connection=ConnectionView(
                state=link.state,
                server=ident.server,
                for_ms=None if link.since is None else max(0, now - link.since),
                last_error=link.last_error,
                reconnect_attempts=link.reconnect_attempts,
            ),
            roster=roster,
            channels=channels,
            lease=lease,
            daemon=None if daemon_in is None else self._daemon(daemon_in, now),
            pending=pending,
            feed=feed,
            self_kind=ident.kind,
            acl_read=ident.read,
            acl_post=ident.post,
        )
        self._snapshot = snap
        return snap

    def _drain(self, ident: Identity, now: Ms) -> None:
        inbox = self._inbox
        while inbox:
            m = inbox.popleft()
            self._seq += 1
            self._received += 1
            if m.mode == "channel":
                label = "#" + m.target
            elif m.mode == "dm":
                label = "@" + self._names.get(m.target, m.target)
            else:
                label = "role:" + m.target
            lowered = ident.self_name.lower()
            to_me = (m.mode == "dm" and m.target == ident.self_id) or lowered in m.mentions
            self._place(
                FeedEntry(
                    seq=self._seq,
                    id=m.id,
                    ts=m.ts,
                    sender_id=m.sender_id,
                    sender_name=m.sender_name,
                    sender_role=m.sender_role,
                    mode=m.mode,
                    target=m.target,
                    target_label=label,
                    text=m.text,
                    mentions=m.mentions,
                    historical=m.historical,
                    to_me=to_me,
                    raw=m.raw,
                    backlog=m.backlog,
                )
            )
            self._feed_dirty = True
            if m.historical:
                continue
            self._feed_last_at = now
            second = min(m.ts, now) // 1000
            self._total_rate.add(second)
            if m.mode == "channel" and m.sender_id != ident.self_id:
                self._unread[m.target] = self._unread.get(m.target, 0) + 1
                self._channels_dirty.add(m.target)
                self._channels_ticking.add(m.target)
                ring = self._rates.get(m.target)
                if ring is None:
                    ring = self._rates[m.target] = RateRing(self.options.rate_window_s)
                ring.add(second)

    def _feed_entries(self) -> tuple[FeedEntry, ...]:
        """The feed window as a tuple, rebuilt only on a tick that drained something."""
        if self._feed_dirty:
            self._feed_out = tuple(self._feed)
            self._feed_dirty = False
        return self._feed_out

    def _roster(self, r: RosterInput, ident: Identity, now: Ms) -> RosterView:
        """Only the peers whose record changed cost work (roster_fold.py): 5,000 peers
        heartbeat 2,500 times a second; their ages are rendered from the heartbeat's time."""
        rows, counts = self._roster_fold.fold(r.peers, ident.self_id, self._names)
        if r.view == "current":
            self._last_current_rows = rows  # O(1): read only once the view stops being current
            me = self._roster_fold.row(ident.self_id)
            self_online = me is not None and me.status != "offline"
        else:
            rows, counts, self_online = self._last_known(rows, counts, ident.self_id)
        source = freshness("roster", r.origin, r.observed_at, r.error, now, ROSTER_STALE_MS)
        if r.view != "current" and source.freshness == "fresh":
            source = SourceView(source.name, source.origin, source.age_ms, "stale", r.view)
        return RosterView(
            view=r.view,
            rows=rows,
            counts=counts,
            source=source,
            banner=BANNERS.get(r.view),
            others_online=len(rows) - counts.get("offline", 0) - self_online,
        )

    def _last_known(
        self, rows: tuple[RosterRow, ...], counts: dict[str, int], self_id: str
    ) -> tuple[tuple[RosterRow, ...], dict[str, int], bool]:
        """While the roster is not current, a peer that aged out to offline keeps the status it
        last had in a current view, marked last-known: losing our own link is no evidence that
        it went offline. O(roster) per tick, but only while the link or the watch is down.
        Also says whether this console's own row is online."""
        if (
            rows is self._last_known_in
            and self._last_current_rows is self._last_known_base
            and self_id == self._last_known_self
        ):
            return self._last_known_out
        known: dict[str, PeerStatus] = {row.id: row.status for row in self._last_current_rows}
        out: list[RosterRow] = []
        self_online = False
        for row in rows:
            was = known.get(row.id, "offline")
            if row.status == "offline" and was != "offline":
                row = replace(row, status=was, last_known=True)
            if row.id == self_id:
                self_online = row.status != "offline"
            out.append(row)
        tally = dict.fromkeys(counts, 0)
        for row in out:
            tally[row.status] = tally.get(row.status, 0) + 1
        ordered = tuple(sorted(out, key=roster_sort_key))
        self._last_known_in = rows
        self._last_known_base = self._last_current_rows
        self._last_known_self = self_id
        self._last_known_out = (ordered, tally, self_online)
        return self._last_known_out

    def _channels(self, c_in, lease_in: LeaseInput, verdict: str, now: Ms) -> ChannelsView:
        """Fold every channel only when the inputs or the lease changed; otherwise only the
        channels that received messages or were read, plus, once a second, those whose rate
        window still holds counts (their sparkline slides)."""
        second = now // 1000
        lease_key = (lease_in.read.outcome, lease_in.read.ready, verdict)
        if c_in.channels is not self._channels_in or lease_key != self._channels_lease:
            self._channels_full(c_in.channels, lease_in, verdict, lease_key, second)
        else:
            dirty = self._channels_dirty
            if second != self._channels_second:
                dirty |= self._channels_ticking
            changed = False
            for name in dirty:
                at = self._channel_at.get(name)
                if at is None:  # not a listed channel: a full fold will pick it up
                    self._channels_ticking.discard(name)
                    continue
                ch = self._channel_inputs[name]
                row = self._channel_fold(ch, lease_in, verdict, lease_key, second)
                if row is not self._channel_rows[at]:
                    self._channel_rows[at] = row
                    changed = True
            if changed:
                self._channels_out = tuple(self._channel_rows)
        self._channels_dirty = set()
        self._channels_second = second
        return ChannelsView(
            rows=self._channels_out,
            source=freshness(
                "channels", c_in.origin, c_in.observed_at, c_in.error, now, CHANNELS_STALE_MS
            ),
            total_rate=self._total_rate.history(second),
        )

    def _channel_fold(
        self,
        ch: ChannelInput,
        lease_in: LeaseInput,
        verdict: str,
        lease_key: tuple[object, ...],
        second: int,
    ) -> ChannelRow:
        """One channel's row now: the cached one while its input, unread and rate are the same."""
        name = ch.name
        ring = self._rates.get(name)
        if ring is not None:
            rate = ring.history(second)
            if any(rate):
                self._channels_ticking.add(name)
            else:
                self._channels_ticking.discard(name)
        else:
            rate = self._zero_rate
        key = (ch, self._unread.get(name, 0), rate, lease_key)
        hit = self._channel_cache.get(name)
        if hit is not None:
            was, row = hit
            if _same(was, key):
                return row
            if was[0] is ch and was[1] == key[1] and was[3] == key[3]:
                # Only the rate window slid (every active channel, once a second): the same row
                # with the new window, its other fields copied in C.
                row = build_channel_row(*_ROW_HEAD(row), rate, *_ROW_TAIL(row))
                self._channel_cache[name] = (key, row)
                return row
        row = self._channel_row(ch, lease_in, verdict, rate)
        self._channel_cache[name] = (key, row)
        return row

    def _channels_full(
        self,
        channels: tuple[ChannelInput, ...],
        lease_in: LeaseInput,
        verdict: str,
        lease_key: tuple[object, ...],
        second: int,
    ) -> None:
        self.full_folds += 1
        old = self._channel_cache
        self._channel_cache = {}
        self._channel_inputs = {ch.name: ch for ch in channels}
        rows = []
        for ch in channels:
            hit = old.get(ch.name)
            if hit is not None:
                self._channel_cache[ch.name] = hit
            rows.append(self._channel_fold(ch, lease_in, verdict, lease_key, second))
        rows.sort(key=lambda row: row.name)
        self._channel_rows = rows
        self._channels_out = tuple(rows)
        self._channel_at = {row.name: i for i, row in enumerate(rows)}
        # Duplicate names make a row's place ambiguous: fold in full until the source stops.
        unique = len(self._channel_at) == len(rows)
        self._channels_in = channels if unique else None
        self._channels_lease = lease_key

    def _channel_row(
        self, ch: ChannelInput, lease_in: LeaseInput, verdict: str, rate: tuple[int, ...]
    ) -> ChannelRow:
        health, reason = channel_health(ch, lease_in)
        if health == "degraded":
            text = HEALTH_TEXT["degraded"] + (f" ({reason})" if reason else "")
        elif health == "active":
            text = HEALTH_TEXT["active"]
        else:
            text = None
        caveat = None
        if health == "active" and verdict in BACKSTOP_DOWN_VERDICTS:
            # The agents' rule (§5.9) reads only the lease; the console knows more: a held
            # lease whose daemon does not answer is no backstop.
            health = "degraded"
            text = HEALTH_TEXT["degraded"] + f" (lease verdict {verdict})"
        elif health == "active" and verdict in BACKSTOP_AT_RISK_TEXT:
            # The daemon answers and moves, so the backstop runs; but not safely: it must not
            # read as a plain "active" (let alone green) while the cluster under it lost a node.
            health = "degraded"
            text = BACKSTOP_AT_RISK_TEXT[verdict] + f" (lease verdict {verdict})"
        elif health == "active" and verdict != "serving":
            caveat = f"as agents see it; the lease verdict is {verdict}"
        if ch.durable_unclosed:
            text = CLEANUP_TEXT if text is None else f"{CLEANUP_TEXT} · {text}"
        return build_channel_row(
            ch.name, ch.delivery_class, ch.replay, ch.replay_window, ch.description, ch.retained,
            ch.joined, min(self._unread.get(ch.name, 0), max(ch.retained, 0)), rate, health,
            text, caveat, ch.durable_unclosed, ch.mode, ch.durable_membership, ch.generation,
            ch.instructions, ch.members, ch.config, ch.broker_feed, ch.class_invalid,
        )  # fmt: skip

    def _lease(
        self, lease: LeaseInput, link: ConnectionInput, ident: Identity, now: Ms
    ) -> LeaseView:
        j = judge_lease(lease, link, ident.mode, now)
        read = lease.read
        probe = lease.responder
        read_error = read.error if read.outcome == "failed" else None
        if read.outcome == "pending":
            read_error = None
        source = freshness("lease", "lease-kv", read.read_at, read_error, now, READ_STALE_MS)
        if read.outcome == "pending":
            source = SourceView("lease", "lease-kv", None, "unknown", "not read yet")
        probe_error = probe.error if probe.outcome == "failed" else None
        responder_source = freshness(
            "responder", "responder-roundtrip", probe.checked_at, probe_error, now, PROBE_STALE_MS
        )
        return LeaseView(
            verdict=j.verdict,
            severity=j.severity,
            consequence=j.consequence,
            rule=j.rule,
            evidence=" ".join(
                f"{k}={v}" for k, v in j.columns.items() if (k, v) != ("pipeline", "unchecked")
            ),
            holder=read.holder,
            ready=read.ready,
            age_ms=j.age_ms,
            ttl_ms=lease.ttl_ms,
            ttl_left_ms=j.ttl_left_ms,
            skew_ms=j.skew_ms,
            revision=read.revision,
            read_error=read.error,
            responder=probe.outcome,
            responder_latency_ms=probe.latency_ms,
            responder_age_ms=None if probe.checked_at is None else max(0, now - probe.checked_at),
            responder_error=probe.error,
            raw=read.raw,
            source=source,
            responder_source=responder_source,
            progress=lease.progress.evidence if lease.progress is not None else (),
            delivery=lease.progress.delivery if lease.progress is not None else None,
            holder_note=holder_note(lease, j.verdict, j.age_ms, j.ttl_left_ms),
            cluster=cluster_lines(lease.cluster),
        )

    @staticmethod
    def _pending(p: PendingInput, now: Ms) -> PendingView:
        rows = tuple(
            PendingRow(
                channel=op.channel,
                operation=op.operation,
                attempt=op.attempt,
                next_retry_in_ms=None if op.next_retry_at is None else op.next_retry_at - now,
                waiting_ms=None if op.since is None else max(0, now - op.since),
                last_error=op.last_error,
                owner=op.owner,
            )
            for op in sorted(
                p.ops, key=lambda o: (o.operation, o.owner is not None, o.owner or "", o.channel)
            )
        )
        joins = sum(1 for r in rows if r.operation == "join")
        leaves = len(rows) - joins
        if not rows:
            headline = "nothing pending: every join and leave has completed"
        else:
            parts = []
            if joins:
                parts.append(
                    f"{joins} boot join{'s' if joins != 1 else ''} retrying (no durable "
                    "membership until the daemon accepts it)"
                )
            if leaves:
                parts.append(
                    f"{leaves} leave{'s' if leaves != 1 else ''} retrying (the backstop may "
                    "still deliver)"
                )
            headline = "; ".join(parts)
        source = freshness(
            "pending", "endpoint retry loops", p.observed_at, p.error, now, PENDING_STALE_MS
        )
        return PendingView(rows=rows, headline=headline, source=source)

    @staticmethod
    def _daemon(d: DaemonInput, now: Ms) -> DaemonView:
        return DaemonView(
            running=d.running,
            holder=d.holder,
            ready=d.ready,
            revision=d.revision,
            last_renew_age_ms=None if d.last_renew_at is None else max(0, now - d.last_renew_at),
            fanned_out=d.fanned_out,
            transferred=d.transferred,
            deferred=d.deferred,
            dropped=d.dropped,
            dead_lettered=d.dead_lettered,
            last_error=d.last_error,
            last_error_age_ms=(None if d.last_error_at is None else max(0, now - d.last_error_at)),
            refused=d.refused,
            source=freshness(
                "daemon", "in-process daemon", d.observed_at, None, now, DAEMON_STALE_MS
            ),
            evicted_before_routing=d.evicted_before_routing,
            below_floor_at_bind=d.below_floor_at_bind,
            below_floor_unknown=d.below_floor_unknown,
        )

    def _feed_source(self, link: ConnectionInput, now: Ms) -> SourceView:
        age = None if self._feed_last_at is None else max(0, now - self._feed_last_at)
        if link.state != "connected":
            return SourceView("feed", "chat/dm subscriptions", age, "stale", f"link {link.state}")
        if age is None:
            return SourceView("feed", "chat/dm subscriptions", None, "fresh", "no live message yet")
        return SourceView("feed", "chat/dm subscriptions", age, "fresh")


BACKSTOP_DOWN_VERDICTS = frozenset(
    {"no-responder", "stale", "no-lease", "unreachable", "quorum-lost", "stalled"}
)
"""Lease verdicts under which no durable channel can honestly read "active" (a leaderless
stream or a daemon consumer that stopped moving is no backstop either)."""
BACKSTOP_AT_RISK_TEXT = {
    "node-lost": (
        "node lost: the durable backstop runs without a spare replica and may pause while NATS "
        "moves the leaders the node held"
    ),
}
"""Lease verdicts under which the backstop runs but is at risk: the row says what is true."""
UNRENEWED_MS = 20_000
"""A lease this old has missed its renewals (it is renewed every 15 s)."""


def holder_note(
    lease: LeaseInput, verdict: str, age_ms: int | None, ttl_left_ms: int | None
) -> str | None:
    """Who holds the lease (when known) and, when it is the unrenewed lease of the daemon `up`
    runs on this state dir (an `up` that crashed), what a restarted `up` is waiting for."""
    label = lease.holder_label
    if not lease.holder_is_up:
        return f"holder is {label}" if label else None
    who = label or "the in-process daemon of cotal-tui up on this state dir"
    unrenewed = verdict == "stale" or (age_ms is not None and age_ms > UNRENEWED_MS)
    if unrenewed:
        when = (
            f"it expires in {ttl_left_ms // 1000 + 1}s"
            if ttl_left_ms is not None and ttl_left_ms > 0
            else "it has outlived its TTL and is about to be removed"
        )
        return (
            f"holder is {who}, but nothing renews it: an up that crashed left it behind. A "
            f"restarted up waits for this lease to expire before its daemon binds ({when})"
        )
    return f"holder is {who}"
