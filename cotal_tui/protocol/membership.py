"""Durable membership rules (§3.4) that need no KV: eligibility and the commit decision.

The KV side (read, CAS commit, tombstone, activate) lives in ``cotal_tui.delivery``; it asks these
functions what to do, so every rule is checkable here without a server.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any

from cotal_tui.protocol.errors import StaleMembershipWrite
from cotal_tui.protocol.jsstr import ABSENT, js_to_number
from cotal_tui.protocol.models import MembershipRecord


def durable_eligible(rec: MembershipRecord | Mapping[str, Any], seq: int) -> bool:
    """``joinCursor < seq`` and (no ``leaveCursor`` or ``seq <= leaveCursor``).

    Ignores ``state`` and ``activated``: activation is a report, not a delivery gate. On a raw
    dict the reference's JavaScript comparisons apply (a ``null`` cursor compares as 0, a
    missing ``joinCursor`` as NaN), so a malformed record is judged the way the reference would.
    """
    if isinstance(rec, MembershipRecord):
        return in_interval(seq, rec.join_cursor, rec.leave_cursor)
    join_cursor = js_to_number(rec.get("joinCursor", ABSENT))
    if seq <= join_cursor:  # NaN compares false, as in JS
        return False
    leave_cursor = rec.get("leaveCursor", ABSENT)
    return leave_cursor is ABSENT or not seq > js_to_number(leave_cursor)


def in_interval(seq: int, join_cursor: int, leave_cursor: int | None) -> bool:
    """``joinCursor < seq <= leaveCursor`` (no upper bound while open): the membership interval,
    on bare cursors (the daemon's routing index keeps only these)."""
    return join_cursor < seq and (leave_cursor is None or seq <= leave_cursor)


class CommitAction(Enum):
    """What one ``commitMember`` attempt does after re-reading the key."""

    CREATE = "create"  # no record: kv.create (retry on a lost race)
    UPDATE = "update"  # kv.update at the read revision (retry on a CAS conflict)


def commit_action(current: MembershipRecord | None, nxt: MembershipRecord) -> CommitAction:
    """Raise :class:`StaleMembershipWrite` for an older generation; equal is allowed."""
    if current is None:
        return CommitAction.CREATE
    if nxt.generation < current.generation:
        raise StaleMembershipWrite(nxt.channel, nxt.owner, nxt.generation, current.generation)
    return CommitAction.UPDATE


class TombstoneAction(Enum):
    NOOP = "noop"  # nothing to do (no record, or already tombstoned at or before the cursor)
    WRITE = "write"  # commit {...current, state: live-confirmed, leaveCursor, writer, updatedAt}


def tombstone_action(
    current: MembershipRecord | None, leave_cursor: int, expected_generation: int | None = None
) -> TombstoneAction:
    """The ``tombstoneMember`` decision; a stale leave (other generation) fails closed."""
    if current is None:
        return TombstoneAction.NOOP
    if expected_generation is not None and expected_generation != current.generation:
        raise StaleMembershipWrite(
            current.channel, current.owner, expected_generation, current.generation
        )
    if current.leave_cursor is not None and current.leave_cursor <= leave_cursor:
        return TombstoneAction.NOOP
    return TombstoneAction.WRITE


def tombstoned(
    current: MembershipRecord, leave_cursor: int, writer: str, now_ms: int
) -> MembershipRecord:
    """The tombstone record: generation and ``activated`` kept, ``leaveCursor`` appended."""
    return current.model_copy(
        update={
            "state": "live-confirmed",
            "leave_cursor": leave_cursor,
            "writer_identity": writer,
            "updated_at": now_ms,
        }
    )


def can_activate(
    current: MembershipRecord | None, expected_generation: int, expected_join_cursor: int
) -> bool:
    """``activateMember`` refuses a gone, re-generated, re-cursored or tombstoned record."""
    return (
        current is not None
        and current.generation == expected_generation
        and current.join_cursor == expected_join_cursor
        and current.leave_cursor is None
    )
