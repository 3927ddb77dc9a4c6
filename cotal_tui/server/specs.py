"""The protocol's stream and bucket specs (PROTOCOL §2.1, §3.1) as nats-py `StreamConfig`s.

The specs themselves are pure data in `cotal_tui.protocol` (`stream_specs`, `bucket_specs`);
what nats-py sends is built by `cotal_tui.mesh.space.stream_config` (shared with open-mode lazy
creation); this module adds the values an existing stream must hold to count as "the same" (the
spec's settings plus, where the reference leaves a setting to the server, the value the server
fills in). Buckets are created as plain streams with the @nats-io/kv 3.4
layout rather than through nats-py's `create_key_value`, which would add `deny_delete` and
`allow_msg_ttl`, settings the reference never sets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nats.js.api import StreamConfig

from cotal_tui.mesh.space import stream_config
from cotal_tui.protocol import StreamSpec, bucket_specs, stream_specs
from cotal_tui.protocol.dead_letter import dead_letter_stream_spec

SERVER_DEFAULT_DEDUP_WINDOW_S = 120.0

# The settings compared when a stream already exists: everything the reference decides.
COMPARED_FIELDS: tuple[str, ...] = (
    "subjects",
    "retention",
    "storage",
    "num_replicas",
    "max_msgs_per_subject",
    "max_msgs",
    "max_bytes",
    "max_age",
    "discard",
    "duplicate_window",
    "allow_direct",
    "allow_rollup_hdrs",
)


@dataclass(frozen=True)
class SpaceStream:
    """One stream of a space. `bucket` is the KV bucket name when the stream backs a bucket."""

    spec: StreamSpec
    replicas: int
    bucket: str | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def label(self) -> str:
        return f"bucket {self.bucket}" if self.bucket else f"stream {self.name}"

    def create_config(self) -> StreamConfig:
        """What is sent on create: the spec's settings only; unset ones stay server defaults."""
        return stream_config(self.spec, replicas=self.replicas)

    def expected(self) -> dict[str, Any]:
        """Every compared setting as the server reports it for a stream created from the spec."""
        spec = self.spec
        max_age = (spec.max_age_ms or 0) / 1000
        if spec.duplicate_window_ms is not None:
            dedup = spec.duplicate_window_ms / 1000
        elif max_age and max_age < SERVER_DEFAULT_DEDUP_WINDOW_S:
            dedup = max_age  # the server caps its default window at max_age
        else:
            dedup = SERVER_DEFAULT_DEDUP_WINDOW_S
        return {
            "subjects": sorted(spec.subjects),
            "retention": spec.retention,
            "storage": spec.storage,
            "num_replicas": self.replicas,
            "max_msgs_per_subject": (
                -1 if spec.max_msgs_per_subject is None else spec.max_msgs_per_subject
            ),
            "max_msgs": -1 if spec.max_msgs is None else spec.max_msgs,
            "max_bytes": -1 if spec.max_bytes is None else spec.max_bytes,
            "max_age": max_age,
            "discard": spec.discard or "old",
            "duplicate_window": dedup,
            "allow_direct": bool(spec.allow_direct),
            "allow_rollup_hdrs": bool(spec.allow_rollup_hdrs),
        }


def space_streams(space: str, replicas: int = 1) -> list[SpaceStream]:
    """The eleven streams of a space: CHAT, DM, TASK, INBOX, DLV, the five bucket streams, then
    the project's own dead-letter store (``protocol.dead_letter``; not a reference stream)."""
    streams = [SpaceStream(spec, replicas) for spec in stream_specs(space)]
    streams += [
        SpaceStream(b.stream_spec(), replicas, bucket=b.bucket) for b in bucket_specs(space)
    ]
    streams.append(SpaceStream(dead_letter_stream_spec(space), replicas))
    return streams


def observed(config: StreamConfig) -> dict[str, Any]:
    """The compared settings of an existing stream, normalized like `SpaceStream.expected`."""

    def enum(value: Any, default: str) -> str:
        return str(value.value) if hasattr(value, "value") else str(value or default)

    return {
        "subjects": sorted(config.subjects or []),
        "retention": enum(config.retention, "limits"),
        "storage": enum(config.storage, "file"),
        "num_replicas": config.num_replicas or 1,
        "max_msgs_per_subject": (
            -1 if config.max_msgs_per_subject is None else config.max_msgs_per_subject
        ),
        "max_msgs": -1 if config.max_msgs is None else config.max_msgs,
        "max_bytes": -1 if config.max_bytes is None else config.max_bytes,
        "max_age": float(config.max_age or 0.0),
        "discard": enum(config.discard, "old"),
        "duplicate_window": float(config.duplicate_window or 0.0),
        "allow_direct": bool(config.allow_direct),
        "allow_rollup_hdrs": bool(config.allow_rollup_hdrs),
    }


def config_differences(stream: SpaceStream, have: StreamConfig) -> list[tuple[str, Any, Any]]:
    """`(field, wanted, found)` for every compared setting on which `have` differs."""
    want, found = stream.expected(), observed(have)
    return [
        (name, want[name], found[name]) for name in COMPARED_FIELDS if want[name] != found[name]
    ]
