"""`provision_agent` and the ACL row's CAS write (PROTOCOL §3.5) on an open-mode space."""

from __future__ import annotations

import asyncio

import pytest
from nats.aio.client import Client
from spaces import SpaceHandle

from cotal_tui.protocol.errors import InvalidChannel
from cotal_tui.server.agents import commit_acl_row, provision_agent, read_acl_row

ID = "UAGENT7777777777777777777777777777777777777777777777777"


async def test_acl_row_is_created_then_cas_updated(open_space: SpaceHandle, nc: Client) -> None:
    s = open_space.space
    assert await commit_acl_row(nc, s, ID, ["general"]) == 1
    assert await commit_acl_row(nc, s, ID, ["general", "review.>"]) == 2
    row = await read_acl_row(nc, s, ID)
    assert row is not None
    assert list(row) == ["allowSubscribe", "revision", "updatedAt"]
    assert row["allowSubscribe"] == ["general", "review.>"] and row["revision"] == 2
    # An empty list is a real "reads nothing", written as [] (never omitted).
    assert await commit_acl_row(nc, s, ID, []) == 3
    assert (await read_acl_row(nc, s, ID)) is not None
    assert (await read_acl_row(nc, s, ID))["allowSubscribe"] == []  # type: ignore[index]


async def test_acl_row_over_a_delete_marker_and_an_undecodable_value(
    open_space: SpaceHandle, nc: Client
) -> None:
    s = open_space.space
    kv = await nc.jetstream().key_value(f"cotal_acl_{s}")
    await commit_acl_row(nc, s, ID, ["a"])
    await kv.delete(ID)
    assert await commit_acl_row(nc, s, ID, ["b"]) == 1
    await kv.put(ID, b"not json")
    assert await commit_acl_row(nc, s, ID, ["c"]) == 1
    row = await read_acl_row(nc, s, ID)
    assert row is not None and row["allowSubscribe"] == ["c"]


async def test_concurrent_acl_commits_each_get_their_own_revision(
    open_space: SpaceHandle, nc: Client
) -> None:
    s = open_space.space
    revisions = await asyncio.gather(*(commit_acl_row(nc, s, ID, [f"c{i}"]) for i in range(4)))
    assert sorted(revisions) == [1, 2, 3, 4]
    row = await read_acl_row(nc, s, ID)
    assert row is not None and row["revision"] == 4


async def test_provision_agent_in_open_mode_creates_its_durables(
    open_space: SpaceHandle, nc: Client
) -> None:
    s = open_space.space
    done = await provision_agent(nc, s, ID, role="builder", allow_subscribe=["general"])
    assert done.durables == {
        f"DM_{s}": f"dm_{ID}",
        f"TASK_{s}": "svc_builder",
        f"DLV_{s}": f"dlv_{ID}",
    }
    js = nc.jetstream()
    for stream, durable, filt, policy in (
        (f"DM_{s}", f"dm_{ID}", f"cotal.{s}.inst.{ID}.*", "all"),
        (f"TASK_{s}", "svc_builder", f"cotal.{s}.svc.builder.*", "all"),
        (f"DLV_{s}", f"dlv_{ID}", f"cotal.{s}.dlv.{ID}", "all"),
    ):
        info = await js.consumer_info(stream, durable)
        assert info.config.durable_name == durable
        assert info.config.filter_subject == filt
        assert str(getattr(info.config.ack_policy, "value", info.config.ack_policy)) == "explicit"
        assert (
            str(getattr(info.config.deliver_policy, "value", info.config.deliver_policy)) == policy
        )
        assert info.config.ack_wait == 60.0
    # Idempotent: provisioning again keeps the durables and bumps the ACL row.
    again = await provision_agent(nc, s, ID, role="builder", allow_subscribe=["general"])
    assert again.acl_revision == 2
    # No ACL row when durable membership is off (the direct foreground spawn).
    other = "UOTHER" + "2" * 50
    skipped = await provision_agent(nc, s, other, durable_membership=False)
    assert skipped.acl_revision is None and await read_acl_row(nc, s, other) is None


async def test_provision_agent_refuses_bad_channels_before_writing(
    open_space: SpaceHandle, nc: Client
) -> None:
    s = open_space.space
    with pytest.raises(InvalidChannel, match='"x"'):
        await provision_agent(nc, s, ID, subscribe=["x"], allow_subscribe=["general"])
    assert await nc.jetstream().consumers_info(f"DM_{s}") == []
    assert await read_acl_row(nc, s, ID) is None
