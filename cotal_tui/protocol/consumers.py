"""JetStream consumer configs, stream specs and KV bucket specs as plain data (§2.1, §2.2, §3.1).

Consumer configs are dicts in the JetStream API's JSON shape (snake_case keys, nanosecond
durations, string enums) exactly as the reference sends them; ``nats.js.api.ConsumerConfig
.from_response(cfg)`` style builders or a raw ``$JS.API`` request can use them directly. Stream
and bucket specs are frozen dataclasses the provisioning code turns into nats-py configs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from cotal_tui.protocol.names import (
    ACK_WAIT_MS,
    DINBOX_MAX_ACK_PENDING,
    LEASE_TTL_MS,
    MAX_MSGS_PER_SUBJECT,
    PLANE3_DEDUP_WINDOW_MS,
    PRESENCE_TTL_MS,
    acl_bucket,
    channel_bucket,
    chat_stream,
    delivery_bucket,
    dlv_durable,
    dlv_stream,
    dm_durable,
    dm_stream,
    fanout_durable,
    inbox_stream,
    kv_stream,
    members_bucket,
    presence_bucket,
    reader_durable,
    task_durable,
    task_stream,
)
from cotal_tui.protocol.subjects import (
    anycast_subject,
    chat_wildcard,
    dlv_subject,
    space_prefix,
    unicast_subject,
)

NS_PER_MS = 1_000_000


def ms_to_ns(ms: int | float | None, default_ms: int = ACK_WAIT_MS) -> int:
    """``nanos(ms ?? default)``: JetStream durations are nanoseconds on the wire."""
    value = (default_ms if ms is None else ms) * NS_PER_MS
    return int(value) if float(value).is_integer() else value  # type: ignore[return-value]


def dm_durable_config(
    space: str,
    id: str,  # noqa: A002 - the reference's parameter name
    *,
    ack_wait_ms: int | None = ACK_WAIT_MS,
    inactive_threshold_ms: int | None = None,
) -> dict[str, Any]:
    """``dm_<id>`` on DM: every unicast to ``id``. ``inactive_threshold`` only when truthy."""
    return _lane_config(
        dm_durable(id), unicast_subject(space, id, "*"), ack_wait_ms, inactive_threshold_ms
    )


def dlv_durable_config(
    space: str,
    owner: str,
    *,
    ack_wait_ms: int | None = ACK_WAIT_MS,
    inactive_threshold_ms: int | None = None,
) -> dict[str, Any]:
    """``dlv_<owner>`` on DLV: the post-auth Plane-3 lane; pre-created by the provisioner."""
    return _lane_config(
        dlv_durable(owner), dlv_subject(space, owner), ack_wait_ms, inactive_threshold_ms
    )


def _lane_config(
    durable: str, filter_subject: str, ack_wait_ms: int | None, inactive_threshold_ms: int | None
) -> dict[str, Any]:
    """A personal lane (DM, DLV): explicit ack, deliver all, ``inactive_threshold`` if truthy."""
    cfg: dict[str, Any] = {
        "durable_name": durable,
        "filter_subject": filter_subject,
        "ack_policy": "explicit",
        "ack_wait": ms_to_ns(ack_wait_ms),
        "deliver_policy": "all",
    }
    if inactive_threshold_ms:
        cfg["inactive_threshold"] = ms_to_ns(inactive_threshold_ms)
    return cfg


def task_durable_config(
    space: str, role: str, *, ack_wait_ms: int | None = ACK_WAIT_MS
) -> dict[str, Any]:
    """``svc_<role>`` on TASK, shared by every instance of a role; server-default deliver policy."""
    return {
        "durable_name": task_durable(role),
        "filter_subject": anycast_subject(space, role, "*"),
        "ack_policy": "explicit",
        "ack_wait": ms_to_ns(ack_wait_ms),
    }


def inbox_reader_config(
    space: str,
    *,
    ack_wait_ms: int | None = ACK_WAIT_MS,
    shard: int | None = 0,
    shards: int | None = 1,
) -> dict[str, Any]:
    """The daemon's trusted ``reader`` on INBOX (all dinbox subjects)."""
    return {
        "durable_name": reader_durable(shard, shards),
        "filter_subject": f"{space_prefix(space)}.dinbox.>",
        "ack_policy": "explicit",
        "ack_wait": ms_to_ns(ack_wait_ms),
        "deliver_policy": "all",
        "max_ack_pending": DINBOX_MAX_ACK_PENDING,
    }


def fanout_durable_config(
    space: str,
    *,
    ack_wait_ms: int | None = ACK_WAIT_MS,
    shard: int | None = 0,
    shards: int | None = 1,
) -> dict[str, Any]:
    """The daemon's ``fanout`` on CHAT; deliver policy New at creation, then resumes its cursor."""
    return {
        "durable_name": fanout_durable(shard, shards),
        "filter_subject": chat_wildcard(space),
        "ack_policy": "explicit",
        "ack_wait": ms_to_ns(ack_wait_ms),
        "deliver_policy": "new",
    }


Retention = Literal["limits", "workqueue"]
Discard = Literal["old", "new"]


@dataclass(frozen=True)
class StreamSpec:
    """One stream as Cotal creates it. ``None`` means "leave the server default"."""

    name: str
    subjects: tuple[str, ...]
    retention: Retention = "limits"
    storage: Literal["file"] = "file"
    max_msgs_per_subject: int | None = None
    discard: Discard | None = None
    duplicate_window_ms: int | None = None
    allow_direct: bool | None = None
    max_age_ms: int | None = None
    allow_rollup_hdrs: bool | None = None
    num_replicas: int = 1
    max_msgs: int | None = None
    max_bytes: int | None = None


@dataclass(frozen=True)
class BucketSpec:
    """One KV bucket (@nats-io/kv 3.4 ``Kvm.create`` defaults); ``ttl_ms`` becomes ``max_age``."""

    bucket: str
    ttl_ms: int | None = None
    history: int = 1
    storage: Literal["file"] = "file"
    num_replicas: int = 1
    discard: Discard = "new"
    allow_rollup_hdrs: bool = True
    allow_direct: bool = True

    @property
    def stream(self) -> str:
        return kv_stream(self.bucket)

    @property
    def subjects(self) -> tuple[str, ...]:
        return (f"$KV.{self.bucket}.>",)

    def stream_spec(self) -> StreamSpec:
        """The bucket as the stream the server stores it in."""
        return StreamSpec(
            name=self.stream,
            subjects=self.subjects,
            retention="limits",
            max_msgs_per_subject=self.history,
            discard=self.discard,
            allow_direct=self.allow_direct,
            allow_rollup_hdrs=self.allow_rollup_hdrs,
            max_age_ms=self.ttl_ms,
            num_replicas=self.num_replicas,
        )


def stream_specs(space: str) -> list[StreamSpec]:
    """The five streams of a space, created at ``cotal up`` (auth) or lazily (open)."""
    prefix = space_prefix(space)
    return [
        StreamSpec(
            name=chat_stream(space),
            subjects=(f"{prefix}.chat.>",),
            max_msgs_per_subject=MAX_MSGS_PER_SUBJECT,
            discard="old",
            allow_direct=True,
        ),
        StreamSpec(name=dm_stream(space), subjects=(f"{prefix}.inst.>",)),
        StreamSpec(name=task_stream(space), subjects=(f"{prefix}.svc.>",), retention="workqueue"),
        StreamSpec(
            name=inbox_stream(space),
            subjects=(f"{prefix}.dinbox.>",),
            max_msgs_per_subject=MAX_MSGS_PER_SUBJECT,
            discard="old",
            duplicate_window_ms=PLANE3_DEDUP_WINDOW_MS,
        ),
        StreamSpec(
            name=dlv_stream(space),
            subjects=(f"{prefix}.dlv.>",),
            max_msgs_per_subject=MAX_MSGS_PER_SUBJECT,
            discard="old",
            duplicate_window_ms=PLANE3_DEDUP_WINDOW_MS,
        ),
    ]


def bucket_specs(space: str, *, presence_ttl_ms: int = PRESENCE_TTL_MS) -> list[BucketSpec]:
    """The five KV buckets of a space: presence, channels, members, acl, delivery (lease)."""
    return [
        BucketSpec(presence_bucket(space), ttl_ms=presence_ttl_ms),
        BucketSpec(channel_bucket(space)),
        BucketSpec(members_bucket(space)),
        BucketSpec(acl_bucket(space)),
        BucketSpec(delivery_bucket(space), ttl_ms=LEASE_TTL_MS),
    ]
