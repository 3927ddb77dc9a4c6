"""Stream configs from the protocol's specs, and open-mode lazy creation of a space (§2.1, §6.2).

:func:`stream_config` is the one place a pure :class:`~cotal_tui.protocol.consumers.StreamSpec`
becomes the nats-py ``StreamConfig`` that is sent on create; ``server/`` provisioning uses it too
(server may import mesh, never the reverse). Settings a spec leaves unset stay server defaults:
in particular a bucket's duplicate window is left to the server, which caps its 2 min default at
the bucket's ``max_age``.

In auth mode agents never create anything (they are denied STREAM.CREATE); lazy creation is only
done by an endpoint connected without creds. An existing stream is left as it is.
"""

from __future__ import annotations

import nats.js.errors
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig

from cotal_tui.mesh.connection import Connection
from cotal_tui.protocol.consumers import StreamSpec, bucket_specs, stream_specs
from cotal_tui.protocol.names import channel_bucket, presence_bucket

_STREAM_NAME_IN_USE = 10058
_RETENTION = {"limits": RetentionPolicy.LIMITS, "workqueue": RetentionPolicy.WORK_QUEUE}
_DISCARD = {"old": DiscardPolicy.OLD, "new": DiscardPolicy.NEW}


def stream_config(spec: StreamSpec, *, replicas: int | None = None) -> StreamConfig:
    """What is sent on create: the spec's settings only (``replicas`` overrides the spec's)."""
    config = StreamConfig(
        name=spec.name,
        subjects=list(spec.subjects),
        retention=_RETENTION[spec.retention],
        storage=StorageType.FILE,
        num_replicas=spec.num_replicas if replicas is None else replicas,
    )
    if spec.max_msgs_per_subject is not None:
        config.max_msgs_per_subject = spec.max_msgs_per_subject
    if spec.discard is not None:
        config.discard = _DISCARD[spec.discard]
    if spec.duplicate_window_ms is not None:
        config.duplicate_window = spec.duplicate_window_ms / 1000
    if spec.allow_direct is not None:
        config.allow_direct = spec.allow_direct
    if spec.allow_rollup_hdrs is not None:
        config.allow_rollup_hdrs = spec.allow_rollup_hdrs
    if spec.max_age_ms:
        config.max_age = spec.max_age_ms / 1000
    if spec.max_msgs is not None:
        config.max_msgs = spec.max_msgs
    if spec.max_bytes is not None:
        config.max_bytes = spec.max_bytes
    return config


async def ensure_open_space(conn: Connection, space: str, *, presence_ttl_ms: int) -> None:
    wanted = {presence_bucket(space), channel_bucket(space)}
    specs = list(stream_specs(space))
    specs += [
        b.stream_spec()
        for b in bucket_specs(space, presence_ttl_ms=presence_ttl_ms)
        if b.bucket in wanted
    ]
    js = conn.js
    for spec in specs:
        try:
            await js.stream_info(spec.name)
            continue
        except nats.js.errors.NotFoundError:
            pass
        try:
            await js.add_stream(stream_config(spec))
        except nats.js.errors.BadRequestError as exc:
            if exc.err_code != _STREAM_NAME_IN_USE:
                raise
