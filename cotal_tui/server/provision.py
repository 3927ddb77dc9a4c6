"""Provision a space: its five streams, five KV buckets, the daemon's dead-letter store (the
project's own, see `protocol.dead_letter`), and the channel-registry seed.

`provision_space` is idempotent. It first inspects all eleven streams; if any exists with a
configuration other than the protocol's, it raises `SpaceConfigConflict` naming every differing
field of every stream, and changes nothing. Only then does it create the missing ones and apply
the channel seed (validated whole before anything is written).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nats.aio.client import Client
from nats.js.api import StreamConfig
from nats.js.errors import BadRequestError, NotFoundError

from cotal_tui.server.seed import ChannelSeed, apply_channel_seed, load_channel_seed
from cotal_tui.server.specs import SpaceStream, config_differences, space_streams

STREAM_NAME_IN_USE = 10058


class ProvisionError(RuntimeError):
    """A space could not be provisioned."""


class SpaceConfigConflict(ProvisionError):
    """Streams or buckets exist with another configuration; nothing was changed.

    `conflicts` maps each stream (or bucket) label to its `(field, wanted, found)` differences.
    """

    def __init__(self, space: str, conflicts: dict[str, list[tuple[str, Any, Any]]]) -> None:
        self.space = space
        self.conflicts = conflicts
        lines = [
            f"space {space!r}: existing streams differ from the Cotal 0.6.0 configuration; "
            "nothing was changed. Delete them (or use another space) to re-provision:"
        ]
        for label, diffs in conflicts.items():
            for name, wanted, found in diffs:
                lines.append(f"  {label}: {name} is {found!r}, expected {wanted!r}")
        super().__init__("\n".join(lines))


class ReplicaMismatch(ProvisionError):
    """The space exists with another replica count than asked for; nothing was changed.

    `found` maps each stream name to its replica count. The message says how to migrate: NATS
    scales a stream's replicas in place (a stream update), so no data has to move by hand.
    """

    def __init__(self, space: str, wanted: int, found: dict[str, int]) -> None:
        self.space = space
        self.wanted = wanted
        self.found = found
        counts = sorted(set(found.values()))
        have = " and ".join(f"R{n}" for n in counts)
        names = " ".join(found)
        super().__init__(
            f"space {space!r} already exists at {have} ({len(found)} streams); --replicas "
            f"{wanted} would change it and nothing was changed. To keep it as it is, run `up` "
            f"without --replicas (or with --replicas {counts[0]}). To migrate, scale every "
            f"stream in place with the nats CLI (the cluster must have {wanted} nodes): "
            f"`for s in {names}; do nats stream edit $s --replicas {wanted} -f; done` "
            "(messages and consumers are kept), then run `up` again"
        )


@dataclass
class ProvisionReport:
    """What `provision_space` did: streams created, streams already right, channel keys written,
    and the replica count the space's streams have (`replicas`)."""

    space: str
    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    channels_written: list[str] = field(default_factory=list)
    replicas: int = 1


async def _existing_config(nc: Client, name: str) -> StreamConfig | None:
    js = nc.jetstream()
    try:
        info = await js.stream_info(name)
    except NotFoundError:
        return None
    return info.config


async def existing_replicas(nc: Client, space: str) -> dict[str, int]:
    """The replica count of each of the space's streams that exists (empty: a new space)."""
    found: dict[str, int] = {}
    for stream in space_streams(space):
        have = await _existing_config(nc, stream.name)
        if have is not None:
            found[stream.name] = have.num_replicas or 1
    return found


async def inspect_space(
    nc: Client, space: str, *, replicas: int = 1
) -> tuple[list[SpaceStream], list[SpaceStream], dict[str, list[tuple[str, Any, Any]]]]:
    """Split the space's streams into (missing, matching, conflicts) without changing anything."""
    missing: list[SpaceStream] = []
    matching: list[SpaceStream] = []
    conflicts: dict[str, list[tuple[str, Any, Any]]] = {}
    for stream in space_streams(space, replicas):
        have = await _existing_config(nc, stream.name)
        if have is None:
            missing.append(stream)
            continue
        diffs = config_differences(stream, have)
        if diffs:
            conflicts[stream.label] = diffs
        else:
            matching.append(stream)
    return missing, matching, conflicts


async def provision_space(
    nc: Client,
    space: str,
    *,
    replicas: int | None = 1,
    channels_seed: ChannelSeed | str | Path | dict[str, Any] | None = None,
) -> ProvisionReport:
    """Create the space's streams and buckets as PROTOCOL §2.1/§3.1 say, then seed channels.

    `replicas` None takes the existing space's replica count (1 for a new space). An existing
    space at another count raises `ReplicaMismatch` (how to migrate) before anything is written.
    `channels_seed` is a parsed `ChannelSeed`, a path to a JSON seed file, or its decoded JSON.
    Raises `ChannelSeedError` (bad seed; nothing written) or `SpaceConfigConflict`.
    """
    seed: ChannelSeed | None
    if channels_seed is None or isinstance(channels_seed, ChannelSeed):
        seed = channels_seed
    else:
        seed = load_channel_seed(channels_seed)

    found = await existing_replicas(nc, space)
    counts = set(found.values())
    if replicas is None:
        replicas = counts.pop() if len(counts) == 1 else 1
        counts = set(found.values())
    if counts and counts != {replicas}:
        raise ReplicaMismatch(space, replicas, found)

    missing, matching, conflicts = await inspect_space(nc, space, replicas=replicas)
    if conflicts:
        raise SpaceConfigConflict(space, conflicts)

    report = ProvisionReport(space=space, existing=[s.name for s in matching], replicas=replicas)
    js = nc.jetstream()
    for stream in missing:
        try:
            await js.add_stream(stream.create_config())
        except BadRequestError as exc:
            if exc.err_code != STREAM_NAME_IN_USE:
                raise
            # Created concurrently by another provisioner: fine only if it is the same config.
            have = await _existing_config(nc, stream.name)
            diffs = config_differences(stream, have) if have else []
            if diffs:
                raise SpaceConfigConflict(space, {stream.label: diffs}) from exc
            report.existing.append(stream.name)
            continue
        report.created.append(stream.name)

    if seed is not None:
        report.channels_written = await apply_channel_seed(nc, space, seed)
    return report
