"""The members registry (PROTOCOL §3.4): durable membership records with their CAS rules.

Pure decisions (eligibility, stale-generation refusal, tombstone and activation rules) live in
``cotal_tui.protocol.membership``; this module does the KV round trips around them. Reads go
through ``$JS.API.STREAM.MSG.GET`` (``KvBucket``), the verb the delivery grants allow.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from cotal_tui.mesh.kv import KeyExists, KvBucket, KvEntry, RevisionMismatch
from cotal_tui.protocol.errors import MembersCasExhausted, RecordError
from cotal_tui.protocol.membership import (
    CommitAction,
    TombstoneAction,
    can_activate,
    commit_action,
    tombstone_action,
    tombstoned,
)
from cotal_tui.protocol.models import MembershipRecord
from cotal_tui.protocol.names import MEMBERS_CAS_ATTEMPTS, member_key, parse_member_key


@dataclass(frozen=True)
class MemberEntry:
    """A membership record and the KV revision it was read at (or written as)."""

    record: MembershipRecord
    revision: int


def now_ms() -> int:
    return int(time.time() * 1000)


def decode_member(value: bytes) -> MembershipRecord | None:
    """The record, or None when the bytes are not a membership record (treated as missing)."""
    try:
        return MembershipRecord.from_json(value)
    except RecordError:
        return None


def member_entry(entry: KvEntry) -> MemberEntry | None:
    """A watched members-bucket entry as a :class:`MemberEntry` (None: not a record), the
    decoder of the delivery daemon's members cache (delivery/fresh_cache.py)."""
    record = decode_member(entry.value)
    return None if record is None else MemberEntry(record, entry.revision)


async def read_member(kv: KvBucket, channel: str, owner: str) -> MemberEntry | None:
    """The record and revision; None when missing, a DEL/PURGE marker, or undecodable.

    Tombstones (``leaveCursor`` set) are returned.
    """
    entry = await kv.get(member_key(channel, owner))
    if entry is None:
        return None
    record = decode_member(entry.value)
    return None if record is None else MemberEntry(record, entry.revision)


async def commit_member(kv: KvBucket, nxt: MembershipRecord) -> MemberEntry:
    """Write ``nxt`` by CAS, up to 5 attempts; an older generation raises StaleMembershipWrite."""
    key = member_key(nxt.channel, nxt.owner)
    for _ in range(MEMBERS_CAS_ATTEMPTS):
        current = await read_member(kv, nxt.channel, nxt.owner)
        action = commit_action(current.record if current else None, nxt)
        try:
            if action is CommitAction.CREATE:
                revision = await kv.create(key, nxt.to_json())
            else:
                assert current is not None
                revision = await kv.update(key, nxt.to_json(), current.revision)
        except (KeyExists, RevisionMismatch):
            continue
        return MemberEntry(nxt, revision)
    raise MembersCasExhausted(key)


async def tombstone_member(
    kv: KvBucket,
    channel: str,
    owner: str,
    leave_cursor: int,
    writer: str,
    expected_generation: int | None = None,
) -> MemberEntry | None:
    """Close the membership interval at ``leave_cursor`` (state ``live-confirmed``).

    No record: no-op (None). A different ``expected_generation``: StaleMembershipWrite (a stale
    leave must not close a rejoin). Already closed at or before the cursor: returns it unchanged.
    """
    current = await read_member(kv, channel, owner)
    action = tombstone_action(
        current.record if current else None, leave_cursor, expected_generation
    )
    if action is TombstoneAction.NOOP:
        return current
    assert current is not None
    return await commit_member(kv, tombstoned(current.record, leave_cursor, writer, now_ms()))


async def activate_member(
    kv: KvBucket, channel: str, owner: str, expected_generation: int, expected_join_cursor: int
) -> MemberEntry | None:
    """Set ``activated: true`` by CAS; None when superseded (gone, re-generated, tombstoned)."""
    key = member_key(channel, owner)
    for _ in range(MEMBERS_CAS_ATTEMPTS):
        current = await read_member(kv, channel, owner)
        if not can_activate(
            current.record if current else None, expected_generation, expected_join_cursor
        ):
            return None
        assert current is not None
        if current.record.activated:
            return current
        nxt = current.record.model_copy(update={"activated": True, "updated_at": now_ms()})
        try:
            revision = await kv.update(key, nxt.to_json(), current.revision)
        except RevisionMismatch:
            continue
        return MemberEntry(nxt, revision)
    return None


async def delete_member(kv: KvBucket, channel: str, owner: str) -> None:
    """Purge the key (garbage collection only; a tombstone is the way to end a membership)."""
    await kv.purge(member_key(channel, owner))


async def member_keys(kv: KvBucket) -> list[str]:
    """Every key with a stored value or marker, from STREAM.INFO: no consumer is created.

    (``kv.keys()`` in the clients creates an ordered consumer per call that outlives the call;
    a per-message scan that way exhausts the server's consumer limit.)
    """
    info = await kv.conn.js.stream_info(kv.stream, subjects_filter=f"{kv.prefix}>")
    subjects = info.state.subjects or {}
    return sorted(s[len(kv.prefix) :] for s in subjects)


async def list_members(
    kv: KvBucket, *, channel: str | None = None, owner: str | None = None
) -> list[MemberEntry]:
    """Every record (tombstones included), filtered by exact channel / owner string."""
    out: list[MemberEntry] = []
    for key in await member_keys(kv):
        parsed = parse_member_key(key)
        if parsed is None:
            continue
        if channel is not None and parsed.channel != channel:
            continue
        if owner is not None and parsed.owner != owner:
            continue
        entry = await read_member(kv, parsed.channel, parsed.owner)
        if entry is not None:
            out.append(entry)
    return out
