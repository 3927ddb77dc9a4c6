"""What the delivery daemon's parts share: connection, buckets, index, roster, counters.

The fan-out writer, the trusted reader and the ``ctl.delivery`` service each take this context;
it does the fresh registry reads in per-batch groups (one read per distinct key, issued after
the batch was received, so a write that happened before an entry was read is always seen) and
the pipelined JetStream publishes (many in flight, PubAcks gathered).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from cotal_tui.mesh.acl import AclEntry, read_acl
from cotal_tui.mesh.connection import Connection
from cotal_tui.mesh.kv import KvBucket
from cotal_tui.mesh.member_index import MembershipIndex
from cotal_tui.mesh.members import MemberEntry, read_member
from cotal_tui.protocol.channel_config import effective_delivery_class
from cotal_tui.protocol.names import (
    CHANNEL_DEFAULTS_KEY,
    acl_bucket,
    channel_bucket,
    chat_stream,
    delivery_bucket,
    dlv_stream,
    inbox_stream,
    members_bucket,
)
from cotal_tui.protocol.subjects import space_prefix


@dataclass
class Counters:
    fanned_out: int = 0
    transferred: int = 0
    deferred: int = 0
    dropped: int = 0
    dead_lettered: int = 0
    naked: int = 0
    joins: int = 0
    leaves: int = 0


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

    def __post_init__(self) -> None:
        self.members = KvBucket(self.conn, members_bucket(self.space))
        self.acls = KvBucket(self.conn, acl_bucket(self.space))
        self.channels = KvBucket(self.conn, channel_bucket(self.space))
        self.lease = KvBucket(self.conn, delivery_bucket(self.space))
        self.prefix = space_prefix(self.space)
        self.chat_stream = chat_stream(self.space)
        self.inbox_stream = inbox_stream(self.space)
        self.dlv_stream = dlv_stream(self.space)

    # -- fresh registry reads, one per distinct key ------------------------------------------

    async def delivery_classes(self, channels: Iterable[str]) -> dict[str, str | Exception]:
        chans = list(dict.fromkeys(channels))
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
                out[ch] = effective_delivery_class(_mapping(cfg), _mapping(defaults))
        return out

    async def acls_fresh(self, owners: Iterable[str]) -> dict[str, AclEntry | None | Exception]:
        keys = list(dict.fromkeys(owners))
        reads = await asyncio.gather(
            *(read_acl(self.acls, o) for o in keys), return_exceptions=True
        )
        return {
            o: (_as_exc(r) if isinstance(r, BaseException) else r)
            for o, r in zip(keys, reads, strict=True)
        }

    async def members_fresh(
        self, keys: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], MemberEntry | None | Exception]:
        wanted = list(dict.fromkeys(keys))
        reads = await asyncio.gather(
            *(read_member(self.members, ch, o) for ch, o in wanted), return_exceptions=True
        )
        return {
            k: (_as_exc(r) if isinstance(r, BaseException) else r)
            for k, r in zip(wanted, reads, strict=True)
        }

    # -- pipelined publishes ------------------------------------------------------------------

    async def publish_many(self, items: list[tuple[str, bytes, str]]) -> list[bool]:
        """Publish every ``(subject, payload, Nats-Msg-Id)`` with PubAcks in flight together."""
        if not items:
            return []
        js = self.conn.js
        futures: list[asyncio.Future[Any] | None] = []
        for subject, payload, msg_id in items:
            try:
                fut = await js.publish_async(
                    subject,
                    payload,
                    headers={"Nats-Msg-Id": msg_id},
                    wait_stall=self.publish_timeout_s,
                )
            except Exception as exc:  # noqa: BLE001 - counted as a failed publish
                self.on_error(exc)
                fut = None
            futures.append(fut)
        live = [f for f in futures if f is not None]
        if live:
            _done, pending = await asyncio.wait(live, timeout=self.publish_timeout_s)
            for f in pending:
                f.cancel()
        results = []
        first_error: BaseException | None = None
        for f in futures:
            ok = f is not None and f.done() and not f.cancelled() and f.exception() is None
            if f is not None and f.done() and not f.cancelled() and f.exception() is not None:
                first_error = first_error or f.exception()
            results.append(ok)
        if first_error is not None:
            self.on_error(_as_exc(first_error))
        return results


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
