"""Members, ACL and lease registries against a real server: the CAS rules and named errors."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from cotal_tui.delivery.acl import commit_acl, read_acl
from cotal_tui.delivery.members import (
    activate_member,
    commit_member,
    delete_member,
    list_members,
    read_member,
    tombstone_member,
)
from cotal_tui.mesh.connection import Connection
from cotal_tui.mesh.kv import KvBucket
from cotal_tui.mesh.lease import (
    LeaseHeld,
    LeaseLost,
    acquire_lease,
    lease_verdict,
    mark_lease_ready,
    read_lease,
    release_lease,
    renew_lease,
)
from cotal_tui.protocol.errors import StaleMembershipWrite
from cotal_tui.protocol.models import MembershipRecord
from cotal_tui.protocol.names import acl_bucket, delivery_bucket, members_bucket


@pytest.fixture
async def conn(open_space) -> AsyncIterator[Connection]:
    c = Connection(open_space.url, "registry-test", "registry-test")
    await c.connect()
    try:
        yield c
    finally:
        await c.close()


def rec(gen: int, join: int = 5, owner: str = "U1", channel: str = "review") -> MembershipRecord:
    return MembershipRecord(
        channel=channel,
        owner=owner,
        state="durable-active",
        join_cursor=join,
        generation=gen,
        activated=False,
        writer_identity="D",
        updated_at=1,
    )


async def test_commit_refuses_older_generation_and_tombstone_guards(open_space, conn):
    kv = KvBucket(conn, members_bucket(open_space.space))
    assert await read_member(kv, "review", "U1") is None
    first = await commit_member(kv, rec(2))
    assert first.record.generation == 2
    with pytest.raises(StaleMembershipWrite, match="generation 1 < current 2"):
        await commit_member(kv, rec(1))
    same = await commit_member(kv, rec(2, join=6))  # equal generation is allowed
    assert same.revision > first.revision

    # a stale leave (generation 1) must not close generation 2
    with pytest.raises(StaleMembershipWrite):
        await tombstone_member(kv, "review", "U1", 10, "D", expected_generation=1)
    closed = await tombstone_member(kv, "review", "U1", 10, "D", expected_generation=2)
    assert closed is not None and closed.record.leave_cursor == 10
    assert closed.record.state == "live-confirmed"
    again = await tombstone_member(kv, "review", "U1", 12, "D", expected_generation=2)
    assert again is not None and again.record.leave_cursor == 10  # earlier cursor stands
    raw = (await kv.get("review/U1")).json()  # type: ignore[union-attr]
    assert raw["leaveCursor"] == 10 and raw["generation"] == 2 and "null" not in str(raw)
    assert await tombstone_member(kv, "review", "U9", 10, "D") is None


async def test_activate_refuses_superseded_and_lists_exactly(open_space, conn):
    kv = KvBucket(conn, members_bucket(open_space.space))
    await commit_member(kv, rec(1, join=3))
    await commit_member(kv, rec(1, join=3, owner="U2"))
    await commit_member(kv, rec(1, join=3, channel="review2"))
    assert await activate_member(kv, "review", "U1", 2, 3) is None  # wrong generation
    assert await activate_member(kv, "review", "U1", 1, 4) is None  # wrong cursor
    act = await activate_member(kv, "review", "U1", 1, 3)
    assert act is not None and act.record.activated is True
    assert (await activate_member(kv, "review", "U1", 1, 3)).revision == act.revision  # type: ignore[union-attr]
    await tombstone_member(kv, "review", "U2", 9, "D")
    assert await activate_member(kv, "review", "U2", 1, 3) is None  # tombstoned

    listed = await list_members(kv, channel="review")
    assert sorted(e.record.owner for e in listed) == ["U1", "U2"]  # exact match, not review2
    assert [e.record.channel for e in await list_members(kv, owner="U1")] == [
        "review",
        "review2",
    ]
    await delete_member(kv, "review", "U2")
    assert await read_member(kv, "review", "U2") is None
    assert sorted(e.record.owner for e in await list_members(kv, channel="review")) == ["U1"]
    # a create over the purge marker works (rejoin after GC)
    assert (await commit_member(kv, rec(1, owner="U2"))).record.owner == "U2"


async def test_acl_unknown_vs_empty_and_revision_counts(open_space, conn):
    kv = KvBucket(conn, acl_bucket(open_space.space))
    assert await read_acl(kv, "U1") is None
    await kv.put("U1", b'{"revision":1,"updatedAt":1}')  # no allowSubscribe array: unknown
    assert await read_acl(kv, "U1") is None
    first = await commit_acl(kv, "U1", ["review", "team.>"])
    assert first.revision == 1  # the unreadable previous value counts as revision 0
    empty = await commit_acl(kv, "U1", [])
    got = await read_acl(kv, "U1")
    assert got is not None and got.allow_subscribe == () and got.revision == empty.revision
    assert empty.revision == first.revision + 1


async def test_lease_lifecycle_refuses_second_holder(open_space, conn):
    kv = KvBucket(conn, delivery_bucket(open_space.space))
    held = await acquire_lease(kv, "D1")
    assert held.info.ready is False
    with pytest.raises(LeaseHeld) as refused:
        await acquire_lease(kv, "D2")
    assert refused.value.holder == "D1" and refused.value.age_s < 5
    assert "D1" in str(refused.value) and "Not binding" in str(refused.value)
    ready = await mark_lease_ready(kv, "D1", held.revision)
    assert (await read_lease(kv)).info.ready is True  # type: ignore[union-attr]
    renewed = await renew_lease(kv, "D1", ready.revision)
    with pytest.raises(LeaseLost):
        await renew_lease(kv, "D1", ready.revision)  # stale revision: lost
    assert await release_lease(kv, "D2", renewed.revision) is False  # not the holder
    assert await release_lease(kv, "D1", renewed.revision) is True
    assert await read_lease(kv) is None
    successor = await acquire_lease(kv, "D2")  # over the DEL marker, at once
    assert successor.info.holder == "D2"


def test_lease_verdict_table():
    assert lease_verdict("unreachable").verdict == "unreachable"
    assert lease_verdict("refused").verdict == "refused"
    assert lease_verdict("absent").verdict == "no-lease"
    # stale only past the 30 s TTL (one table with the console; PROTOCOL §3.6)
    assert lease_verdict("present", ready=True, age_ms=31_000).verdict == "stale"
    assert lease_verdict("present", ready=False, age_ms=100).verdict == "not-ready"
    v = lease_verdict("present", ready=True, age_ms=100, responder="no-responders")
    assert v.verdict == "no-responder" and not v.green
    assert lease_verdict("present", ready=True, responder="timeout").verdict == "no-responder"
    ok = lease_verdict("present", ready=True, responder="answered", holder="D")
    assert ok.verdict == "serving" and ok.green and ok.holder == "D"
    unknown = lease_verdict("present", ready=True, responder="unknown")
    assert unknown.verdict == "unverified" and not unknown.green  # never "serving" unproven
    assert unknown.responder_text == "unknown (cannot probe with this credential)"
