"""Open-mode lazy creation of a space's streams and the presence/channels buckets (§2.1, §6.2).

In auth mode agents never create anything (they are denied STREAM.CREATE); this is only called
by an endpoint connected without creds. An existing stream is left as it is.
"""

from __future__ import annotations

import nats.js.errors
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig

from cotal_tui.mesh.connection import Connection
from cotal_tui.protocol.consumers import StreamSpec, bucket_specs, stream_specs
from cotal_tui.protocol.names import channel_bucket, presence_bucket

_STREAM_NAME_IN_USE = 10058


def stream_config(spec: StreamSpec) -> StreamConfig:
    cfg = StreamConfig(
        name=spec.name,
        subjects=list(spec.subjects),
        retention=RetentionPolicy(spec.retention),
        storage=StorageType.FILE,
        num_replicas=spec.num_replicas,
    )
    if spec.max_msgs_per_subject is not None:
        cfg.max_msgs_per_subject = spec.max_msgs_per_subject
    if spec.discard is not None:
        cfg.discard = DiscardPolicy(spec.discard)
    if spec.duplicate_window_ms is not None:
        cfg.duplicate_window = spec.duplicate_window_ms / 1000
    if spec.allow_direct is not None:
        cfg.allow_direct = spec.allow_direct
    if spec.allow_rollup_hdrs is not None:
        cfg.allow_rollup_hdrs = spec.allow_rollup_hdrs
    if spec.max_age_ms is not None:
        cfg.max_age = spec.max_age_ms / 1000
        cfg.duplicate_window = min(cfg.duplicate_window or 120.0, spec.max_age_ms / 1000)
    return cfg


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
