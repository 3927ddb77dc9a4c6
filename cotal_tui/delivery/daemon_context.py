"""What the delivery daemon's parts share: connection, buckets, index, roster, counters.

The fan-out writer, the trusted reader and the ``ctl.delivery`` service each take this context;
it does the fresh registry reads in per-batch groups (one read per distinct key, issued after
the batch was received, so a write that happened before an entry was read is always seen) and
the pipelined JetStream publishes (many in flight, PubAcks gathered).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from cotal_tui.delivery.acl import AclEntry, read_acl
from cotal_tui.delivery.fresh_cache import FreshKvCache
from cotal_tui.delivery.inbox_pressure import InboxPressure
from cotal_tui.delivery.member_index import MembershipIndex
from cotal_tui.delivery.members import MemberEntry, read_member
from cotal_tui.mesh.batch_send import (
    CHUNK_BYTES,
    header_value,
    hpub_encoded,
    max_payload,
    send_commands,
)
from cotal_tui.mesh.connection import Connection
from cotal_tui.mesh.direct_sub import subscribe_direct
from cotal_tui.mesh.kv import KvBucket, KvEntry
from cotal_tui.mesh.tasks import cancel_and_wait
from cotal_tui.protocol.channel_config import delivery_class_reading
from cotal_tui.protocol.dead_letter import (
    DeadLetter,
    dead_letter_stream,
    dead_letter_subject,
    short_detail,
)
from cotal_tui.protocol.names import (
    CHANNEL_DEFAULTS_KEY,
    acl_bucket,
    acl_key,
    channel_bucket,
    chat_stream,
    delivery_bucket,
    dlv_stream,
    inbox_stream,
    member_key,
    members_bucket,
    reader_durable,
)
from cotal_tui.protocol.subjects import dinbox_subject, dlv_subject, space_prefix

# How long a dead-letter record may wait for its PubAck, and how long the store is skipped
# after a failed write (records are then only counted).
DEAD_LETTER_WRITE_TIMEOUT_S = 2.0
DEAD_LETTER_RETRY_S = 30.0
# Publish tokens kept before the ones whose publish was given up on are dropped.
PRUNE_AT = 50_000
# Subjects whose bytes are memoized (the daemon publishes to a few per member).
SUBJECTS_KEPT = 50_000


@dataclass
class Counters:
    fanned_out: int = 0
    transferred: int = 0
    deferred: int = 0
    dropped: int = 0
    dead_lettered: int = 0
    naked: int = 0
    transfer_failures: int = 0
    joins: int = 0
    leaves: int = 0
    dead_letter_reasons: dict[str, int] = field(default_factory=dict)
    dead_letter_write_failures: int = 0


class InvalidRegistryValue(RuntimeError):
    """A channel-registry value the daemon reads the reference's way, reported once."""


class DeadLetterUnrecorded(RuntimeError):
    """A dead letter's record could not be written (store missing, or no grant)."""


class PublishFailed(RuntimeError):
    """JetStream refused a publish (its PubAck carried an error) or nobody stored it."""


class PendingBatch:
    """The PubAcks of one batch of publishes: a result per publish, one future for them all.

    A future per publish cost a future, a done-callback and a scheduled handle per copy (twice:
    entry and DLV copy); a batch counts its replies instead and wakes its waiter once.
    """

    __slots__ = ("results", "errors", "remaining", "done", "open")

    def __init__(self, n: int, loop: asyncio.AbstractEventLoop) -> None:
        self.results = [False] * n
        self.errors: list[Exception] = []
        self.remaining = 1  # held while publishes are still being handed over (release())
        self.done: asyncio.Future[None] = loop.create_future()
        self.open = True

    def __len__(self) -> int:
        return len(self.results)

    def resolve(self, index: int, error: Exception | None) -> None:
        if not self.open:
            return
        if error is None:
            self.results[index] = True
        else:
            self.errors.append(error)
        self.release()

    def release(self, n: int = 1) -> None:
        self.remaining -= n
        if self.remaining <= 0 and not self.done.done():
            self.done.set_result(None)

    def abandon(self) -> None:
        """No more replies are taken (given up on, or the tracker stopped)."""
        self.open = False
        if not self.done.done():
            self.done.cancel()


Waiter = asyncio.Future[None] | tuple[PendingBatch, int]


def _waiting(value: Waiter) -> bool:
    if isinstance(value, tuple):
        return value[0].open
    return not value.done()


class AckTracker:
    """JetStream publishes with their PubAcks collected on one wildcard inbox subscription.

    nats-py's ``publish_async`` does the same but builds a ``PubAck`` object per reply; here a
    reply only resolves a future or a batch's slot (``error`` in the body or a 503 status fails
    it), which keeps the daemon's per-copy cost down. Replies still in flight across a
    reconnect time out and the caller naks (the dedup ids make the retry harmless).
    """

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._prefix = ""
        self._prefix_bytes = b""
        self._subjects: dict[str, bytes] = {}
        self._sub: Any = None
        self._futures: dict[str, Waiter] = {}
        self._next = 0
        self._prune_at = PRUNE_AT

    async def start(self) -> None:
        if self._sub is not None:
            return
        nc = self.conn.nc
        self._prefix = nc.new_inbox() + "."
        self._prefix_bytes = self._prefix.encode()
        # handled as parsed (mesh/direct_sub.py): two PubAcks per copy
        self._sub = await subscribe_direct(nc, self._prefix + "*", self._on_reply)

    async def stop(self) -> None:
        sub, self._sub = self._sub, None
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        for waiter in self._futures.values():
            if isinstance(waiter, tuple):
                waiter[0].abandon()
            elif not waiter.done():
                waiter.cancel()
        self._futures.clear()

    def _on_reply(self, msg: Any) -> None:
        waiter = self._futures.pop(msg.subject[len(self._prefix) :], None)
        if waiter is None:
            return
        error: Exception | None = None
        headers = msg.headers
        if headers and headers.get("Status") == "503":
            error = PublishFailed("no stream stored the message (503 no responders)")
        elif b'"error"' in msg.data:
            error = PublishFailed(msg.data.decode(errors="replace"))
        if type(waiter) is tuple:
            waiter[0].resolve(waiter[1], error)
        elif waiter.done():
            return
        elif error is not None:
            waiter.set_exception(error)
        else:
            waiter.set_result(None)

    def _prune(self) -> None:
        """Drop the tokens of publishes given up on (their replies never came)."""
        if len(self._futures) > self._prune_at:
            self._futures = {t: w for t, w in self._futures.items() if _waiting(w)}
            self._prune_at = max(PRUNE_AT, 2 * len(self._futures))

    async def publish(self, subject: str, payload: bytes, msg_id: str) -> asyncio.Future[None]:
        if self._sub is None:
            await self.start()
        self._prune()
        self._next += 1
        token = str(self._next)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._futures[token] = fut
        try:
            await self.conn.nc.publish(
                subject, payload, reply=self._prefix + token, headers={"Nats-Msg-Id": msg_id}
            )
        except Exception:
            self._futures.pop(token, None)
            raise
        return fut

    async def publish_batch(
        self, items: list[tuple[str, bytes, str]], on_error: Callable[[Exception], None]
    ) -> PendingBatch:
        """Publish every ``(subject, payload, Nats-Msg-Id)`` as one batch (mesh/batch_send.py):
        the same HPUB commands as :meth:`publish`, handed to nats-py in chunks as they are
        built. A payload over ``max_payload``, or what the client refuses (closed, buffer full
        while reconnecting), is reported and counts as not stored."""
        if self._sub is None:
            await self.start()
        self._prune()
        nc = self.conn.nc
        limit = max_payload(nc)
        batch = PendingBatch(len(items), asyncio.get_running_loop())
        prefix, waiters, subjects = self._prefix_bytes, self._futures, self._subjects
        if len(subjects) > SUBJECTS_KEPT:
            subjects.clear()
        commands: list[bytes] = []
        first = self._next + 1  # the token of the chunk's first publish
        size = 0
        try:
            for index, (subject, payload, msg_id) in enumerate(items):
                if len(payload) > limit:
                    too_big = f"{len(payload)}-byte payload for {subject} over {limit}"
                    on_error(PublishFailed(too_big))
                    continue
                encoded = subjects.get(subject)
                if encoded is None:
                    encoded = subjects[subject] = subject.encode()
                self._next = n = self._next + 1
                command = hpub_encoded(encoded, prefix, n, header_value(msg_id), payload)
                waiters[str(n)] = (batch, index)
                batch.remaining += 1
                commands.append(command)
                size += len(command)
                if size >= CHUNK_BYTES:  # on the wire while the rest is built
                    await send_commands(nc, commands, messages=len(commands), size=size)
                    commands, first, size = [], self._next + 1, 0
                    await asyncio.sleep(0)  # let the flusher write it and PubAcks come in
            await send_commands(nc, commands, messages=len(commands), size=size)
        except Exception as exc:  # noqa: BLE001 - what was not handed over failed
            on_error(_as_exc(exc))
            batch.release(_drop_unsent(waiters, batch, first, self._next))
        finally:
            batch.release()  # every publish is out (or failed): only replies are awaited now
        return batch

    def forget(self, fut: asyncio.Future[None]) -> None:
        fut.cancel()

    def fail_pending(self, why: str) -> int:
        """Fail every PubAck still awaited (after a reconnect: those sent on the old connection
        never come). The callers nak at once instead of after ``publish_timeout_s``: a broker
        restart otherwise stalls the in-order fan-out for that long while CHAT evicts."""
        failed = 0
        for fut in self._futures.values():
            if not fut.done():
                fut.set_exception(PublishFailed(why))
                failed += 1
        self._futures.clear()
        return failed


def _drop_unsent(waiters: dict[str, Waiter], batch: PendingBatch, first: int, last: int) -> int:
    """Forget this batch's publishes with tokens ``first..last`` not answered yet; how many.
    (Another batch may have taken tokens in that range while this one awaited a send.)"""
    unsent = 0
    for n in range(first, last + 1):
        token = str(n)
        waiter = waiters.get(token)
        if isinstance(waiter, tuple) and waiter[0] is batch:
            del waiters[token]
            unsent += 1
    return unsent


class Pipeline:
    """Up to ``depth`` batch completions (PubAck waits, then acks) in flight at once.

    The loop routes and publishes batch N+1 while batch N's PubAcks are still on the wire; a
    message is acked only by its own batch's completion, so overlap never acks early.
    """

    def __init__(self, depth: int = 4) -> None:
        self.depth = depth
        self._slots = asyncio.Semaphore(depth)
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, completion: Coroutine[Any, Any, None]) -> None:
        await self._slots.acquire()
        task = asyncio.get_running_loop().create_task(completion)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    @property
    def busy(self) -> int:
        """Completions in flight."""
        return len(self._tasks)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._slots.release()

    async def drain(self, timeout: float) -> None:
        """Let in-flight completions finish (their messages get acked); cancel the rest."""
        tasks = list(self._tasks)
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=timeout)
            await cancel_and_wait(pending)


K = TypeVar("K")
V = TypeVar("V")


async def _read_each(
    keys: Iterable[K], read: Callable[[K], Awaitable[V]]
) -> dict[K, V | Exception]:
    """One concurrent read per distinct key; a failed read is its key's value (an Exception)."""
    wanted = list(dict.fromkeys(keys))
    reads = await asyncio.gather(*(read(k) for k in wanted), return_exceptions=True)
    return {
        k: (_as_exc(r) if isinstance(r, BaseException) else r)
        for k, r in zip(wanted, reads, strict=True)
    }


@dataclass
class DaemonContext:
    conn: Connection
    space: str
    daemon_id: str
    on_error: Callable[[Exception], None]
    publish_timeout_s: float = 10.0
    counters: Counters = field(default_factory=Counters)
    index: MembershipIndex = field(default_factory=MembershipIndex)
    mention_names: Callable[[], dict[str, list[str]]] = field(default=lambda: {})
    delivery_stats: Callable[[], dict[str, Any]] = field(default=lambda: {})
    chat_seq_routed: Callable[[int], None] = field(default=lambda seq: None)
    """The reader saw an entry for this CHAT sequence (chat_gaps.py un-counts an eviction)."""
    route_member: Callable[[MemberEntry], Awaitable[None]] | None = None
    """Where else a record this daemon wrote must be routed from (a fan-out stage process)."""

    def __post_init__(self) -> None:
        self.acker = AckTracker(self.conn)
        self._dinbox: dict[str, str] = {}
        self._dlv: dict[str, str] = {}
        # INBOX keeps at most 1,000 entries per owner (discard old): the fan-out waits on the
        # reader consumer's real unread count (inbox_pressure.py), so no unread entry, ours or
        # a dead predecessor's, can be pushed out.
        self.inbox = InboxPressure(self.conn, inbox_stream(self.space), reader_durable())
        self._class_warned: dict[str, str] = {}
        self._dead_store_down_until = 0.0
        self.acl_cache: FreshKvCache[AclEntry] | None = None
        self.members_cache: FreshKvCache[MemberEntry] | None = None
        # the channel registry, for the fan-out's delivery classes (None: read directly)
        self.channels_cache: FreshKvCache[Any] | None = None
        self.members = KvBucket(self.conn, members_bucket(self.space))
        self.acls = KvBucket(self.conn, acl_bucket(self.space))
        self.channels = KvBucket(self.conn, channel_bucket(self.space))
        self.lease = KvBucket(self.conn, delivery_bucket(self.space))
        self.prefix = space_prefix(self.space)
        self.chat_stream = chat_stream(self.space)
        self.inbox_stream = inbox_stream(self.space)
        self.dlv_stream = dlv_stream(self.space)

    async def member_written(self, entry: MemberEntry | None) -> None:
        """A membership record this daemon wrote: in every routing index before this returns
        (a join reads its fence after it; member_index.py)."""
        self.index.apply_entry(entry)
        if entry is not None and self.route_member is not None:
            await self.route_member(entry)

    # -- subjects (memoized: route_token runs a regex) ------------------------------------------

    def dinbox_subject(self, owner: str) -> str:
        subject = self._dinbox.get(owner)
        if subject is None:
            subject = self._dinbox[owner] = dinbox_subject(self.space, owner)
        return subject

    def dlv_subject(self, owner: str) -> str:
        subject = self._dlv.get(owner)
        if subject is None:
            subject = self._dlv[owner] = dlv_subject(self.space, owner)
        return subject

    # -- dead letters (protocol.dead_letter) ---------------------------------------------------

    async def dead_letter(
        self, msg: Any, stream: str, reason: str, detail: str, *, term: bool = False
    ) -> None:
        """Ack ``msg`` out of the pipeline, recording why in the dead-letter store.

        The record is published with its PubAck awaited (bounded); a failed record (no store,
        no grant) is counted and reported, and the message is acked all the same: one message
        that cannot be routed must never hold up the ones behind it.
        """
        seq = _stream_seq(msg)
        record = DeadLetter(
            subject=str(msg.subject),
            stream=stream,
            seq=seq,
            reason=reason,
            detail=short_detail(detail),
            ts=int(time.time() * 1000),
            size=len(msg.data or b""),
            by=self.daemon_id,
        )
        self.counters.dead_lettered += 1
        reasons = self.counters.dead_letter_reasons
        reasons[reason] = reasons.get(reason, 0) + 1
        ok = False
        tried = time.monotonic() >= self._dead_store_down_until
        if tried:
            try:
                fut = await self.acker.publish(
                    dead_letter_subject(self.space, reason), record.to_json(), f"{stream}:{seq}"
                )
                done, _ = await asyncio.wait([fut], timeout=DEAD_LETTER_WRITE_TIMEOUT_S)
                ok = bool(done) and not fut.cancelled() and fut.exception() is None
                if not done:
                    fut.cancel()
            except Exception as exc:  # noqa: BLE001 - reported below
                self.on_error(exc)
        if not ok:
            self.counters.dead_letter_write_failures += 1
        if tried and not ok:
            # A store that is missing, or a cred without the grant (a denied publish is only a
            # timeout), must not cost every later poison message the wait: skip it a while
            # (counting only), and say so once per attempt.
            self._dead_store_down_until = time.monotonic() + DEAD_LETTER_RETRY_S
            self.on_error(
                DeadLetterUnrecorded(
                    f"dead letter {stream}#{seq} ({reason}) could not be recorded in "
                    f"{dead_letter_stream(self.space)}; the message was acked out all the same "
                    f"(dead letters are only counted for the next {DEAD_LETTER_RETRY_S:.0f}s)"
                )
            )
        with contextlib.suppress(Exception):
            await (msg.term() if term else msg.ack())

    # -- INBOX backpressure -------------------------------------------------------------------

    @property
    def inbox_backlog(self) -> int:
        """INBOX entries not acked by the reader yet (server figure + what moved since)."""
        return self.inbox.estimate

    def entries_written(self, n: int) -> None:
        """``n`` dinbox writes started (their PubAcks: :meth:`entries_settled`)."""
        self.inbox.written(n)

    def entries_settled(self, n: int) -> None:
        self.inbox.settled(n)

    def entries_decided(self, n: int) -> None:
        """``n`` entries the reader decided, or writes that were never stored."""
        self.inbox.decided(n)

    async def inbox_room(self, batch: int) -> None:
        """Wait until a batch of up to ``batch`` messages cannot push an unread entry out."""
        await self.inbox.room(batch)

    # -- fresh registry reads, one per distinct key ------------------------------------------

    async def delivery_classes(self, channels: Iterable[str]) -> dict[str, str | Exception]:
        """Each channel's delivery class, as fresh as a direct read made now: from the watched
        registry after its freshness barrier (one request for the batch), else one read per
        channel and one of the defaults."""
        chans = list(dict.fromkeys(channels))
        reads: list[Any] | None = None
        cache = self.channels_cache
        if cache is not None:
            try:
                if await cache.barrier():
                    reads = [cache.get(CHANNEL_DEFAULTS_KEY), *(cache.get(ch) for ch in chans)]
            except Exception as exc:  # noqa: BLE001 - fall back to direct reads
                self.on_error(exc)
        if reads is None:
            reads = await asyncio.gather(
                self.channels.get_json(CHANNEL_DEFAULTS_KEY),
                *(self.channels.get_json(ch) for ch in chans),
                return_exceptions=True,
            )
        defaults = reads[0]
        out: dict[str, str | Exception] = {}
        for ch, cfg in zip(chans, reads[1:], strict=True):
            if isinstance(defaults, BaseException):
                out[ch] = _as_exc(defaults)
            elif isinstance(cfg, BaseException):
                out[ch] = _as_exc(cfg)
            else:
                cls, problem = delivery_class_reading(_mapping(cfg), _mapping(defaults))
                if problem is not None and self._class_warned.get(ch) != problem:
                    self._class_warned[ch] = problem
                    self.on_error(InvalidRegistryValue(f"channel registry #{ch}: {problem}"))
                out[ch] = cls
        return out

    async def acls_fresh(self, owners: Iterable[str]) -> dict[str, AclEntry | None | Exception]:
        return await _read_each(owners, lambda o: read_acl(self.acls, o))

    async def members_fresh(
        self, keys: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], MemberEntry | None | Exception]:
        return await _read_each(keys, lambda k: read_member(self.members, k[0], k[1]))

    async def batch_reads(
        self, owners: Iterable[str], member_keys: Iterable[tuple[str, str]]
    ) -> tuple[
        dict[str, AclEntry | None | Exception],
        dict[tuple[str, str], MemberEntry | None | Exception],
    ]:
        """ACLs and membership records as fresh as a direct read made now (see fresh_cache)."""
        owners, member_keys = list(dict.fromkeys(owners)), list(dict.fromkeys(member_keys))
        acl_cache, members_cache = self.acl_cache, self.members_cache
        if acl_cache is not None and members_cache is not None:
            try:
                fresh = await asyncio.gather(acl_cache.barrier(), members_cache.barrier())
            except Exception as exc:  # noqa: BLE001 - fall back to direct reads
                self.on_error(exc)
                fresh = [False, False]
            if all(fresh):
                return (
                    {o: acl_cache.get(acl_key(o)) for o in owners},
                    {(c, o): members_cache.get(member_key(c, o)) for c, o in member_keys},
                )
        return await self.acls_fresh(owners), await self.members_fresh(member_keys)

    # -- pipelined publishes ------------------------------------------------------------------

    async def publish_many(self, items: list[tuple[str, bytes, str]]) -> list[bool]:
        """Publish every ``(subject, payload, Nats-Msg-Id)`` with PubAcks in flight together."""
        return await self.settle(await self.publish_start(items))

    async def publish_start(self, items: list[tuple[str, bytes, str]]) -> PendingBatch:
        """Start the publishes as one batch; :meth:`settle` waits for their PubAcks."""
        return await self.acker.publish_batch(items, self.on_error)

    async def settle(self, batch: PendingBatch) -> list[bool]:
        """Wait (bounded) for the PubAcks; True per publish that was stored."""
        if not batch.done.done():
            await asyncio.wait([batch.done], timeout=self.publish_timeout_s)
        batch.open = False  # a reply after this does not count: the caller has decided
        if batch.errors:
            self.on_error(batch.errors[0])
        return list(batch.results)


def registry_json(entry: KvEntry) -> Any:
    """A watched channel-registry value as ``KvBucket.get_json`` reads it (None: unreadable)."""
    try:
        return entry.json()
    except ValueError:
        return None


async def start_channels_cache(ctx: DaemonContext, timeout: float) -> None:
    """Watch the channel registry for the fan-out's delivery classes; if the watch cannot
    start, say so and keep reading each channel directly (as before the cache)."""
    cache: FreshKvCache[Any] = FreshKvCache(ctx.channels, registry_json)
    try:
        await cache.start(timeout)
    except Exception as exc:  # noqa: BLE001 - direct reads still work
        with contextlib.suppress(Exception):
            await cache.stop()
        ctx.on_error(
            RuntimeError(f"the channel registry watch did not start ({exc!r}): reading directly")
        )
        return
    ctx.channels_cache = cache


async def rebind_channels_cache(ctx: DaemonContext) -> None:
    """After a reconnect; a watch that cannot come back only means direct reads again."""
    if ctx.channels_cache is not None:
        try:
            await ctx.channels_cache.rebind()
        except Exception as exc:  # noqa: BLE001 - its barrier now answers False
            ctx.on_error(exc)


async def stop_channels_cache(ctx: DaemonContext) -> None:
    cache, ctx.channels_cache = ctx.channels_cache, None
    if cache is not None:
        await cache.stop()


def _stream_seq(msg: Any) -> int:
    try:
        return int(msg.metadata.sequence.stream)
    except Exception:  # noqa: BLE001 - not a JetStream delivery
        return 0


def _as_exc(value: BaseException) -> Exception:
    return value if isinstance(value, Exception) else RuntimeError(repr(value))


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def entry_payload(raw_msg: bytes, channel: str, seq: int, reason: str, generation: int) -> bytes:
    """A dinbox ``Plane3Entry`` built around the stored message bytes (no re-serialization)."""
    tail = (
        f',"channel":{json.dumps(channel, ensure_ascii=False)},"seq":{seq},'
        f'"reason":"{reason}","generation":{generation}}}'
    )
    return b'{"msg":' + raw_msg + tail.encode()
