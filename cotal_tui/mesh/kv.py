"""Thin typed KV wrappers that work under the reference's auth grants.

Why not nats-py's ``KeyValue``: its ``get`` switches to DIRECT.GET when the bucket allows it,
but agents are granted only ``$JS.API.STREAM.MSG.GET.KV_<bucket>`` (PROTOCOL.md §10.2); and its
``watch`` creates the ordered consumer on the bare ``CONSUMER.CREATE.<stream>`` subject, which
the ``CONSUMER.CREATE.KV_<bucket>.>`` grants do not cover, and has no idle heartbeat, so a quiet
watch cannot be told from a dead one (§10.10). :class:`KvWatch` creates its own ordered push
consumer on the extended create subject with an idle heartbeat; every message or heartbeat
proves the watch alive (:attr:`KvWatch.last_activity`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.nuid import NUID

from cotal_tui.mesh.connection import Connection
from cotal_tui.mesh.creds_claims import may_publish
from cotal_tui.mesh.tasks import cancel_and_wait
from cotal_tui.protocol.names import kv_stream
from cotal_tui.protocol.untrusted import Refused, decode_untrusted

KvOp = Literal["PUT", "DEL", "PURGE"]

_KV_OP = "KV-Operation"
_MARKER_REASON = "Nats-Marker-Reason"
_EXPECTED_LAST_SUBJECT_SEQ = "Nats-Expected-Last-Subject-Sequence"
_NS_PER_S = 1_000_000_000
# How long a watch waits for the broker to delete the consumer it stopped using.
DELETE_TIMEOUT_S = 1.0
_nuid = NUID()


class KvError(Exception):
    """Base of KV failures; the message names the bucket and key."""


class BucketNotFound(KvError):
    pass


class KeyExists(KvError):
    """A create found a live value under the key."""


class RevisionMismatch(KvError):
    """An update's expected revision is no longer the latest (someone wrote in between)."""


class KvUnavailable(KvError):
    """The request did not complete (timeout, no responders, permission denied)."""


class WatchFailed(KvError):
    pass


@dataclass(frozen=True)
class KvEntry:
    bucket: str
    key: str
    value: bytes
    revision: int
    operation: KvOp = "PUT"
    created: float | None = None

    @property
    def deleted(self) -> bool:
        return self.operation != "PUT"

    def json(self) -> Any:
        """The value decoded by the one rule for untrusted bytes (``protocol.untrusted``);
        a refused value raises :class:`UndecodableValue` (a ``ValueError``) naming the reason."""
        outcome = decode_untrusted(self.value, want_object=False)
        if isinstance(outcome, Refused):
            raise UndecodableValue(f"{self.bucket}/{self.key}: {outcome}", outcome.reason)
        return outcome.value


class UndecodableValue(ValueError):
    """A KV value the decoding rule refused; ``reason`` names the rule."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def _op_from_headers(headers: dict[str, str] | None) -> KvOp:
    if not headers:
        return "PUT"
    op = headers.get(_KV_OP)
    if op in ("DEL", "PURGE"):
        return op  # type: ignore[return-value]
    reason = headers.get(_MARKER_REASON)
    if reason in ("MaxAge", "Purge"):
        return "PURGE"
    if reason == "Remove":
        return "DEL"
    return "PUT"


class KvBucket:
    """One bucket reached through the JetStream API of a :class:`Connection`.

    It holds no nats-py handle of its own (the JetStream context is taken fresh from the
    connection on every call), so a reconnect never leaves it bound to a dead client.
    """

    def __init__(self, conn: Connection, bucket: str) -> None:
        self.conn = conn
        self.bucket = bucket
        self.stream = kv_stream(bucket)
        self.prefix = f"$KV.{bucket}."

    def subject(self, key: str) -> str:
        return self.prefix + key

    async def entry(self, key: str) -> KvEntry | None:
        """The latest entry for ``key`` including DEL/PURGE markers; None when never written."""
        try:
            raw = await self.conn.js.get_msg(self.stream, subject=self.subject(key), direct=False)
        except nats.js.errors.NotFoundError as exc:
            if _is_stream_missing(exc):
                raise BucketNotFound(f"KV bucket {self.bucket} does not exist") from exc
            return None
        except (nats.errors.TimeoutError, nats.errors.NoRespondersError) as exc:
            raise KvUnavailable(
                f"reading {self.bucket}/{key} failed ({type(exc).__name__}); the broker did not "
                "answer or the credential may not read this bucket"
            ) from exc
        return KvEntry(
            self.bucket,
            key,
            raw.data or b"",
            int(raw.seq or 0),
            _op_from_headers(raw.headers),
        )

    async def get(self, key: str) -> KvEntry | None:
        """The live value of ``key``, or None when missing, deleted or purged."""
        e = await self.entry(key)
        return None if e is None or e.deleted else e

    async def get_json(self, key: str) -> Any | None:
        e = await self.get(key)
        if e is None:
            return None
        try:
            return e.json()
        except ValueError:
            return None

    async def put(self, key: str, value: bytes) -> int:
        return await self._publish(key, value, None)

    async def create(self, key: str, value: bytes) -> int:
        """Create ``key``; over a DEL/PURGE marker, CAS on the marker's revision (as nats.js)."""
        try:
            return await self._publish(key, value, {_EXPECTED_LAST_SUBJECT_SEQ: "0"})
        except RevisionMismatch:
            current = await self.entry(key)
            if current is not None and current.deleted:
                try:
                    return await self.update(key, value, current.revision)
                except RevisionMismatch:
                    pass
            raise KeyExists(f"{self.bucket}/{key} already exists") from None

    async def update(self, key: str, value: bytes, last: int) -> int:
        return await self._publish(key, value, {_EXPECTED_LAST_SUBJECT_SEQ: str(last)})

    async def delete(self, key: str) -> int:
        return await self._publish(key, b"", {_KV_OP: "DEL"})

    async def purge(self, key: str) -> int:
        return await self._publish(key, b"", {_KV_OP: "PURGE", "Nats-Rollup": "sub"})

    async def info(self) -> Any:
        try:
            return await self.conn.js.stream_info(self.stream)
        except nats.js.errors.NotFoundError as exc:
            raise BucketNotFound(f"KV bucket {self.bucket} does not exist") from exc

    async def _publish(self, key: str, value: bytes, headers: dict[str, str] | None) -> int:
        try:
            ack = await self.conn.js.publish(self.subject(key), value, headers=headers)
        except nats.js.errors.APIError as exc:
            if is_revision_mismatch(exc):
                expected = (headers or {}).get(_EXPECTED_LAST_SUBJECT_SEQ)
                raise RevisionMismatch(
                    f"{self.bucket}/{key}: expected revision {expected} is not the latest"
                ) from exc
            raise KvUnavailable(f"writing {self.bucket}/{key} failed: {exc}") from exc
        except (nats.errors.TimeoutError, nats.errors.NoRespondersError) as exc:
            raise KvUnavailable(
                f"writing {self.bucket}/{key} got no PubAck ({type(exc).__name__}); the bucket "
                "may be missing or the credential may not write this key"
            ) from exc
        return int(ack.seq)

    def watch(
        self,
        on_entry: Callable[[KvEntry], None],
        *,
        on_initial: Callable[[], None] | None = None,
        keys: str = ">",
        heartbeat_s: float = 1.0,
    ) -> KvWatch:
        return KvWatch(self, on_entry, on_initial=on_initial, keys=keys, heartbeat_s=heartbeat_s)


# A CAS write whose expected revision is not the latest: 10071 (JSStreamWrongLastSequenceErrF)
# and 10164 (JSStreamWrongLastSequenceConstantErr, newer servers), as nats-py's own KV treats them.
REVISION_MISMATCH_CODES = frozenset({10071, 10164})


def is_revision_mismatch(exc: nats.js.errors.APIError) -> bool:
    return exc.err_code in REVISION_MISMATCH_CODES


def _is_stream_missing(exc: nats.js.errors.NotFoundError) -> bool:
    return getattr(exc, "err_code", None) == 10059


class KvWatch:
    """A KV watch: the latest value per key, then every update, with liveness.

    An ordered push consumer (ack none, memory, idle heartbeat) created on
    ``$JS.API.CONSUMER.CREATE.<stream>.<name>.<filter>``. A gap in consumer sequence, or a
    heartbeat naming a later consumer sequence than seen, resets it from the next stream
    sequence; :meth:`rebind` starts over from the latest values (after a reconnect or when the
    owner judges the watch stale) and signals ``on_initial`` again once they are in.
    """

    def __init__(
        self,
        bucket: KvBucket,
        on_entry: Callable[[KvEntry], None],
        *,
        on_initial: Callable[[], None] | None = None,
        keys: str = ">",
        heartbeat_s: float = 1.0,
    ) -> None:
        self.bucket = bucket
        self.on_entry = on_entry
        self.on_initial = on_initial
        self.filter = bucket.prefix + keys
        self.heartbeat_s = heartbeat_s
        self.last_activity: float = 0.0
        self.initial_done = False
        self._sub: Subscription | None = None
        self._consumer: str | None = None
        self._last_sseq = 0
        self._last_cseq = 0
        self._pending_initial = 0
        self._lock = asyncio.Lock()
        self._reset_task: asyncio.Task[None] | None = None
        self._stopped = False

    @property
    def alive(self) -> bool:
        return self._sub is not None

    async def start(self) -> None:
        await self.rebind()

    async def rebind(self) -> None:
        """Drop the current consumer and watch again from the latest value of every key."""
        async with self._lock:
            self._stopped = False
            self.initial_done = False
            await self._bind(start_seq=None)

    async def stop(self) -> None:
        self._stopped = True
        reset, self._reset_task = self._reset_task, None
        await cancel_and_wait([reset])
        await self._unsubscribe()

    async def _unsubscribe(self, *, delete: bool = True) -> None:
        sub, self._sub = self._sub, None
        consumer, self._consumer = self._consumer, None
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        if delete and consumer is not None:
            await self._delete_consumer(consumer)

    async def _delete_consumer(self, name: str) -> None:
        """Delete a consumer this watch stopped using rather than leave it for its inactive
        threshold: back-to-back one-shot readers (`check`, `status`) would otherwise pile them up
        on the presence and registry streams, where the pipeline's consumer-excess rule counts
        them. Only when the link is up and the credential may (§8.4's agent, observer and the
        operator profile may not: the consumer then lapses after the connection's
        ``watch_inactive_s``, quietly)."""
        conn = self.bucket.conn
        subject = f"$JS.API.CONSUMER.DELETE.{self.bucket.stream}.{name}"
        if not conn.is_connected or not may_publish(conn.creds, subject):
            return
        with contextlib.suppress(Exception):
            await conn.nc.request(subject, b"", timeout=DELETE_TIMEOUT_S)

    async def _bind(self, start_seq: int | None) -> None:
        await self._unsubscribe()
        nc = self.bucket.conn.nc
        inbox = nc.new_inbox()
        name = _nuid.next().decode()
        self._last_cseq = 0
        sub = await nc.subscribe(inbox, cb=self._on_msg)
        config: dict[str, Any] = {
            "name": name,
            "deliver_subject": inbox,
            "ack_policy": "none",
            "max_deliver": 1,
            "filter_subject": self.filter,
            "flow_control": True,
            "idle_heartbeat": int(self.heartbeat_s * _NS_PER_S),
            "mem_storage": True,
            "num_replicas": 1,
            "inactive_threshold": int(self.bucket.conn.watch_inactive_s * _NS_PER_S),
        }
        if start_seq is None:
            config["deliver_policy"] = "last_per_subject"
        else:
            config["deliver_policy"] = "by_start_sequence"
            config["opt_start_seq"] = start_seq
        req = {"stream_name": self.bucket.stream, "config": config}
        subject = f"$JS.API.CONSUMER.CREATE.{self.bucket.stream}.{name}.{self.filter}"
        # Route messages only after the consumer is known, so the gap check has a baseline.
        self._sub, self._consumer = sub, name
        try:
            resp = await nc.request(subject, json.dumps(req).encode(), timeout=5)
            body = json.loads(resp.data or b"{}")
        except Exception as exc:
            await self._unsubscribe(delete=False)
            raise WatchFailed(
                f"cannot watch KV bucket {self.bucket.bucket}: consumer create failed ({exc!r})"
            ) from exc
        if "error" in body:
            await self._unsubscribe(delete=False)
            err = body["error"]
            if err.get("err_code") == 10059:
                raise BucketNotFound(f"KV bucket {self.bucket.bucket} does not exist")
            raise WatchFailed(
                f"cannot watch KV bucket {self.bucket.bucket}: {err.get('description', err)}"
            )
        self.last_activity = time.monotonic()
        if start_seq is None:
            self._pending_initial = int(body.get("num_pending", 0))
            delivered = int(body.get("delivered", {}).get("consumer_seq", 0))
            if self._pending_initial == 0 and delivered == 0 and self._last_cseq == 0:
                self._mark_initial()

    def _mark_initial(self) -> None:
        if self.initial_done:
            return
        self.initial_done = True
        if self.on_initial is not None:
            self.on_initial()

    async def _on_msg(self, msg: Msg) -> None:
        if self._sub is None or msg.sid != self._sub._id:
            return
        self.last_activity = time.monotonic()
        headers = msg.headers or {}
        if headers.get("Status") == "100" or (not msg.data and "Status" in headers):
            if msg.reply:  # flow control request: answer so delivery continues
                with contextlib.suppress(Exception):
                    await self.bucket.conn.nc.publish(msg.reply, b"")
                return
            last_c = headers.get("Nats-Last-Consumer")
            if last_c is not None and int(last_c) != self._last_cseq:
                self._schedule_reset()
            return
        try:
            meta = msg.metadata
        except Exception:  # noqa: BLE001 - not a JetStream delivery; ignore
            return
        cseq, sseq = meta.sequence.consumer, meta.sequence.stream
        if cseq != self._last_cseq + 1:
            self._schedule_reset()
            return
        self._last_cseq, self._last_sseq = cseq, sseq
        entry = KvEntry(
            self.bucket.bucket,
            msg.subject[len(self.bucket.prefix) :],
            msg.data or b"",
            sseq,
            _op_from_headers(headers),
            meta.timestamp.timestamp() if meta.timestamp else None,
        )
        try:
            self.on_entry(entry)
        finally:
            if not self.initial_done and meta.num_pending == 0:
                self._mark_initial()

    def _schedule_reset(self) -> None:
        if self._stopped or (self._reset_task is not None and not self._reset_task.done()):
            return
        self._reset_task = asyncio.get_running_loop().create_task(self._reset())

    async def _reset(self) -> None:
        async with self._lock:
            if self._stopped:
                return
            start = self._last_sseq + 1 if self._last_sseq else None
            with contextlib.suppress(Exception):
                await self._bind(start_seq=start)
