"""Space provisioning against a real nats-server: every field of every stream and bucket."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError
from space_checks import assert_space_streams, expected_streams
from spaces import SpaceHandle, unique_space

from cotal_tui.mesh.connection import Connection
from cotal_tui.mesh.space import ensure_open_space
from cotal_tui.server.provision import (
    ReplicaMismatch,
    SpaceConfigConflict,
    inspect_space,
    provision_space,
)
from cotal_tui.server.seed import ChannelSeedError
from cotal_tui.server.specs import space_streams


async def test_provision_creates_every_stream_and_bucket_as_the_protocol_says(nc: Client) -> None:
    space = unique_space()
    report = await provision_space(nc, space)
    assert sorted(report.created) == sorted(expected_streams(space))
    assert report.existing == []
    await assert_space_streams(nc, space)
    # The buckets work as KV buckets for a plain client.
    js = nc.jetstream()
    for bucket in ("presence", "channels", "members", "acl", "delivery"):
        kv = await js.key_value(f"cotal_{bucket}_{space}")
        await kv.put("probe", b"{}")
        assert (await kv.get("probe")).value == b"{}"


async def test_open_mode_lazy_creation_builds_the_same_streams(open_space: SpaceHandle) -> None:
    """One builder: what an open-mode endpoint creates is what provisioning checks for."""
    space = unique_space()
    conn = Connection(open_space.url, "lazy", "lazy-creator")
    await conn.connect()
    try:
        await ensure_open_space(conn, space, presence_ttl_ms=6000)
        missing, matching, conflicts = await inspect_space(conn.nc, space)
    finally:
        await conn.close()
    assert conflicts == {}
    # Not lazily made by an endpoint: members, ACL, lease, and the daemon's dead-letter store.
    assert sorted(s.bucket or s.name for s in missing) == sorted(
        [*(f"cotal_{b}_{space}" for b in ("members", "acl", "delivery")), f"COTALTUI_DEAD_{space}"]
    )
    assert len(matching) == 7  # CHAT, DM, TASK, INBOX, DLV, presence, channels


async def test_space_names_are_tokenized(nc: Client) -> None:
    await provision_space(nc, "prod.eu")
    await assert_space_streams(nc, "prod_eu")


async def test_provision_is_idempotent(open_space: SpaceHandle, nc: Client) -> None:
    report = await provision_space(nc, open_space.space)
    assert report.created == []
    assert sorted(report.existing) == sorted(expected_streams(open_space.space))
    await assert_space_streams(nc, open_space.space)


async def test_conflicting_config_is_reported_field_by_field_and_nothing_changes(
    nc: Client,
) -> None:
    space = unique_space()
    js = nc.jetstream()
    # A CHAT stream someone made by hand: no per-subject cap, new-discard, 1h max age.
    await js.add_stream(
        StreamConfig(
            name=f"CHAT_{space}",
            subjects=[f"cotal.{space}.chat.>"],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            discard=DiscardPolicy.NEW,
            max_age=3600,
        )
    )
    # And a presence bucket with a 60 s TTL instead of 6 s.
    await js.create_key_value(bucket=f"cotal_presence_{space}", ttl=60)
    with pytest.raises(SpaceConfigConflict) as caught:
        await provision_space(nc, space)
    err = caught.value
    assert set(err.conflicts) == {f"stream CHAT_{space}", f"bucket cotal_presence_{space}"}
    chat = {name: (want, got) for name, want, got in err.conflicts[f"stream CHAT_{space}"]}
    assert chat == {
        "max_msgs_per_subject": (1000, -1),
        "max_age": (0.0, 3600.0),
        "discard": ("old", "new"),
        "allow_direct": (True, False),
    }
    presence = {n: (w, g) for n, w, g in err.conflicts[f"bucket cotal_presence_{space}"]}
    assert presence["max_age"] == (6.0, 60.0)
    message = str(err)
    assert f"stream CHAT_{space}: max_msgs_per_subject is -1, expected 1000" in message
    assert "nothing was changed" in message
    # Nothing was created or altered.
    with pytest.raises(NotFoundError):
        await js.stream_info(f"DM_{space}")
    assert (await js.stream_info(f"CHAT_{space}")).config.max_msgs_per_subject == -1


async def test_replica_count_is_applied_and_checked(nc: Client) -> None:
    space = unique_space()
    await provision_space(nc, space, replicas=1)
    # Asking for R3 on an existing R1 space is not a config diff: it says how to migrate, and
    # changes nothing.
    with pytest.raises(ReplicaMismatch) as caught:
        await provision_space(nc, space, replicas=3)
    assert caught.value.found == {s.name: 1 for s in space_streams(space)}
    message = str(caught.value)
    assert f"space {space!r} already exists at R1 (11 streams)" in message
    assert "nothing was changed" in message
    assert "nats stream edit $s --replicas 3" in message
    assert "config conflict" not in message and "expected" not in message
    assert (await nc.jetstream().stream_info(f"CHAT_{space}")).config.num_replicas == 1
    # Without a replica count, an existing space keeps (and reports) its own.
    again = await provision_space(nc, space, replicas=None)
    assert again.replicas == 1 and len(again.existing) == 11 and not again.created


# --- channel seed ----------------------------------------------------------------------------


async def _channels(nc: Client, space: str) -> dict[str, dict[str, Any]]:
    kv = await nc.jetstream().key_value(f"cotal_channels_{space}")
    try:
        keys = await kv.keys()
    except Exception:  # noqa: BLE001 - nats-py raises NoKeysError on an empty bucket
        return {}
    return {k: json.loads((await kv.get(k)).value) for k in keys}


def _write(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "channels.json"
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


async def test_seed_writes_defaults_and_channels(nc: Client, tmp_path: Path) -> None:
    space = unique_space()
    seed = {
        "defaults": {"deliveryClass": "live", "replayWindow": "24h"},
        "channels": {
            "general": {"description": "everyone", "deliveryClass": "durable"},
            "team.backend": {"replay": False, "unknownField": 1},
        },
    }
    report = await provision_space(nc, space, channels_seed=_write(tmp_path, seed))
    assert sorted(report.channels_written) == ["=defaults", "general", "team.backend"]
    assert await _channels(nc, space) == {
        "=defaults": {"deliveryClass": "live", "replayWindow": "24h"},
        "general": {"description": "everyone", "deliveryClass": "durable"},
        "team.backend": {"replay": False},
    }
    # Re-applying the same seed writes nothing; an edit merges over the stored value.
    again = await provision_space(nc, space, channels_seed=seed)
    assert again.channels_written == []
    edit = {"channels": {"general": {"instructions": "be nice"}}}
    edited = await provision_space(nc, space, channels_seed=edit)
    assert edited.channels_written == ["general"]
    assert (await _channels(nc, space))["general"] == {
        "description": "everyone",
        "deliveryClass": "durable",
        "instructions": "be nice",
    }


@pytest.mark.parametrize(
    ("seed", "named"),
    [
        ({"channels": {"ok": {}, "bad..name": {}}}, 'channel "bad..name"'),
        ({"channels": {"review.>": {}}}, 'channel "review.>"'),
        ({"channels": {"ok": {}, "x": {"deliveryClass": "Live"}}}, 'channel "x"'),
        ({"channels": {"x": {"replayWindow": "24"}}}, "invalid duration"),
        ({"channels": {"x": {"description": "d" * 201}}}, "too long (201 > 200"),
        ({"defaults": {"deliveryClass": "x"}, "channels": {"ok": {}}}, '"defaults"'),
        ({"channels": ["general"]}, '"channels" must be an object'),
        ({"channels": {"x": 3}}, 'channel "x": the config must be an object'),
        ({"channel": {}}, "unknown top-level key"),
        ("{not json", "not valid JSON"),
    ],
)
async def test_bad_seed_is_refused_whole_and_nothing_is_written(
    nc: Client, tmp_path: Path, seed: Any, named: str
) -> None:
    space = unique_space()
    with pytest.raises(ChannelSeedError) as caught:
        await provision_space(nc, space, channels_seed=_write(tmp_path, seed))
    assert named in str(caught.value)
    # Refused before anything was created: not even the streams.
    with pytest.raises(NotFoundError):
        await nc.jetstream().stream_info(f"CHAT_{space}")


async def test_bad_seed_on_a_provisioned_space_writes_nothing(
    open_space: SpaceHandle, nc: Client
) -> None:
    bad = {"channels": {"a": {"description": "fine"}, "b": {"deliveryClass": "nope"}}}
    with pytest.raises(ChannelSeedError, match='channel "b"'):
        await provision_space(nc, open_space.space, channels_seed=bad)
    assert await _channels(nc, open_space.space) == {}
