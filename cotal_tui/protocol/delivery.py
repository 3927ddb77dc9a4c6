"""Delivery-daemon decisions as pure functions and tables (§4.2, §5.2-§5.6).

The daemon (``cotal_tui.delivery``) does the I/O: it reads the ACL, the membership record and the
stream cursors fresh, then asks this module what to do. Every wire string a ``ctl.delivery``
reply can carry is produced here, so the daemon's replies match the reference's exactly.

Theory of operation:

- ``ctl.delivery`` requests: :func:`is_bound_reply` (in ``subjects``) first, then
  :func:`check_sender`, then the per-op argument checks raise :class:`DeliveryRequestError`
  (or :class:`InvalidChannel`) whose message is the reply's ``error``.
- Fan-out routes, it does not authorize: :func:`durable_fanout_targets` and
  :func:`mention_owner` / :func:`mention_allowed` choose dinbox copies.
- The trusted reader authorizes: :data:`READER_TABLE` maps (ACL state, reason, interval check)
  to an action; :func:`reader_action` adds the redelivery cap.
- Join: :func:`join_plan`, then commit, fence, catch-up (:func:`window_evicted`), activate.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal

from cotal_tui.protocol.channels import assert_valid_channel, channel_in_allow, is_concrete_channel
from cotal_tui.protocol.errors import ProtocolError
from cotal_tui.protocol.jsstr import js_trim
from cotal_tui.protocol.membership import durable_eligible, in_interval
from cotal_tui.protocol.models import (
    AclRecord,
    ControlRequest,
    CotalMessage,
    ListMembershipsResult,
    MembershipRecord,
    MembershipSummary,
    Plane3Entry,
    Plane3Reason,
    Presence,
)
from cotal_tui.protocol.names import MAX_MSGS_PER_SUBJECT, READER_MAX_REDELIVERIES
from cotal_tui.protocol.subjects import ParsedSubject, channel_path, parse_subject

OP_DURABLE_JOIN = "durableJoin"
OP_DURABLE_LEAVE = "durableLeave"
OP_LIST_MEMBERSHIPS = "listMemberships"

SENDER_MISMATCH = "sender mismatch — request rejected"
READER_NAK_DELAY_MS = 2000
RETRY_BACKOFF_CAP_MS = 30_000


class DeliveryRequestError(ProtocolError):
    """A ``ctl.delivery`` request was refused; the message is the reply's ``error`` verbatim."""


def unsupported_op(op: str) -> str:
    return f'op "{op}" not supported on the delivery control service'


def check_sender(subject: str, request: ControlRequest) -> str | None:
    """None when the ``ctl`` subject's sender token is ``request.from.id``; else the error."""
    return check_sender_id(subject, request.from_.id)


def check_sender_id(subject: str, sender_id: object) -> str | None:
    """:func:`check_sender` on a bare ``from.id`` (any decoded JSON value, or None if absent)."""
    parsed = parse_subject(subject)
    if parsed is None or parsed.kind != "ctl" or parsed.sender != sender_id:
        return SENDER_MISMATCH
    return None


def channel_arg(op: str, args: dict[str, Any] | None) -> str:
    """The ``channel`` argument of durableJoin/durableLeave: non-blank, valid, concrete."""
    channel = (args or {}).get("channel")
    if not isinstance(channel, str) or not js_trim(channel):
        raise DeliveryRequestError(f"{op}: channel must be a non-blank string")
    assert_valid_channel(channel)
    if not is_concrete_channel(channel):
        raise DeliveryRequestError(
            f'{op}: "{channel}" must be a concrete channel (durable membership is '
            "per-concrete-channel, not wildcard)"
        )
    return channel


def leave_generation_arg(args: dict[str, Any] | None) -> int:
    """The ``generation`` of a durableLeave: a finite number, or the fail-closed refusal."""
    generation = (args or {}).get("generation")
    finite = (
        isinstance(generation, int | float)
        and not isinstance(generation, bool)
        and math.isfinite(generation)
    )
    if not finite:
        raise DeliveryRequestError(
            f"{OP_DURABLE_LEAVE}: a finite generation is required (fail-closed stale-leave guard)"
        )
    return int(generation)  # type: ignore[arg-type]


def join_acl_check(caller: str, channel: str, acl: AclRecord | None) -> None:
    """The daemon's join gate: an ACL row must exist and cover the channel."""
    if acl is None:
        raise DeliveryRequestError(
            f"{OP_DURABLE_JOIN}: no read ACL on record for {caller} "
            "(not provisioned for durable delivery)"
        )
    if not channel_in_allow(acl.allow_subscribe, channel):
        listed = ", ".join(acl.allow_subscribe)
        raise DeliveryRequestError(f'channel "{channel}" is not within your read ACL [{listed}]')


def list_memberships_result(records: Iterable[MembershipRecord]) -> ListMembershipsResult:
    """The caller's open (non-tombstoned) memberships, activated or not."""
    return ListMembershipsResult(
        memberships=[
            MembershipSummary(
                channel=r.channel, generation=r.generation, activated=bool(r.activated)
            )
            for r in records
            if r.leave_cursor is None
        ]
    )


# --- fan-out (§5.3) ---------------------------------------------------------------------------
def genuine_chat(subject: str, sender_id: object) -> ParsedSubject | None:
    """The parsed ``chat`` subject when its sender token is the body's ``from.id``.

    None for a subject that is not a chat subject or a spoofed sender: fan-out acks and skips
    those, and activation catch-up copies none of them.
    """
    parsed = parse_subject(subject)
    if parsed is None or parsed.kind != "chat" or parsed.sender != sender_id:
        return None
    return parsed


ChatOrigin = Literal["routable", "not-chat", "spoofed-sender", "channel-mismatch"]


def chat_origin(subject: str, sender_id: object, body_channel: object) -> ChatOrigin:
    """Trust the subject, not the body (issue 10): may the daemon route this CHAT message?

    ``not-chat``: the subject is not a chat subject (acked and skipped, as the reference does);
    ``spoofed-sender``: ``from.id`` is not the subject's sender token; ``channel-mismatch``: the
    body's ``channel`` is not the channel of the subject (a DLV copy carries only the body, so
    the body would otherwise label it). The last two are dead-lettered.
    """
    parsed = parse_subject(subject)
    if parsed is None or parsed.kind != "chat":
        return "not-chat"
    if parsed.sender != sender_id:
        return "spoofed-sender"
    if body_channel == parsed.rest:
        return "routable"
    # The subject carries channelPath(channel) (§1.2: trimmed, tokenized segments); a body whose
    # channel maps to the same path names the same channel.
    try:
        same = isinstance(body_channel, str) and channel_path(body_channel) == parsed.rest
    except ProtocolError:
        same = False
    return "routable" if same else "channel-mismatch"


def durable_fanout_targets(
    members: Iterable[MembershipRecord], sender_id: str, seq: int
) -> list[MembershipRecord]:
    """Members that get a ``durable-channel`` copy: not the sender, ``seq`` in their interval.

    ``activated`` is not checked: a pending join routes at once, so catch-up loses nothing.
    """
    return [
        m
        for m in members
        if durable_copy_wanted(m.owner, sender_id, m.join_cursor, m.leave_cursor, seq)
    ]


def durable_copy_wanted(
    owner: str, sender_id: str, join_cursor: int, leave_cursor: int | None, seq: int
) -> bool:
    """One member's ``durable-channel`` copy: never the sender's own, only inside its interval."""
    return owner != sender_id and in_interval(seq, join_cursor, leave_cursor)


def mention_owner(roster: Iterable[Presence], name: str) -> str | None:
    """The owner a mention names: exactly one case-insensitive ``card.name`` match, any status."""
    folded = name.lower()
    matches = [p.card.id for p in roster if p.card.name.lower() == folded]
    return matches[0] if len(matches) == 1 else None


def mention_allowed(owner: str, sender_id: str, acl: AclRecord | None, channel: str) -> bool:
    """A ``live-mention`` copy needs a known ACL covering the channel; never to the sender."""
    return owner != sender_id and acl is not None and channel_in_allow(acl.allow_subscribe, channel)


def plane3_entry(
    msg: CotalMessage, channel: str, seq: int, reason: Plane3Reason, generation: int
) -> Plane3Entry:
    """A dinbox entry; ``generation`` is 0 for a live mention."""
    return Plane3Entry(msg=msg, channel=channel, seq=seq, reason=reason, generation=generation)


# --- trusted reader (§5.4) --------------------------------------------------------------------
class ReaderAction(Enum):
    DROP = "ack-drop"  # ack without transfer: revoked, out of interval, or unparseable
    DEFER = "nak-delay"  # nak(READER_NAK_DELAY_MS): the owner's ACL is not known yet
    GIVE_UP = "term"  # term: deferred or failed READER_MAX_REDELIVERIES times
    TRANSFER = "transfer"  # publish entry.msg to dlv.<owner>, then ack


AclState = Literal["unknown", "denied", "allowed"]

# (ACL state, reason, interval check) -> action. The interval check is None when it does not
# apply (live mentions, or an ACL that already decided).
READER_TABLE: dict[tuple[AclState, Plane3Reason, bool | None], ReaderAction] = {
    ("unknown", "durable-channel", None): ReaderAction.DEFER,
    ("unknown", "live-mention", None): ReaderAction.DEFER,
    ("denied", "durable-channel", None): ReaderAction.DROP,
    ("denied", "live-mention", None): ReaderAction.DROP,
    ("allowed", "live-mention", None): ReaderAction.TRANSFER,
    ("allowed", "durable-channel", True): ReaderAction.TRANSFER,
    ("allowed", "durable-channel", False): ReaderAction.DROP,
}


def acl_state(acl: AclRecord | None, channel: str) -> AclState:
    if acl is None:
        return "unknown"
    return "allowed" if channel_in_allow(acl.allow_subscribe, channel) else "denied"


def reader_action(
    entry: Plane3Entry,
    acl: AclRecord | None,
    member: MembershipRecord | None,
    delivery_count: int,
) -> ReaderAction:
    """What the reader does with a decoded dinbox entry for its owner.

    ``member`` is the fresh record at ``<entry.channel>/<owner>`` (None when missing); the
    entry's generation is deliberately not compared with it. ``delivery_count`` is 1 first.
    """
    return gate_action(acl, entry.channel, entry.reason, member, entry.seq, delivery_count)


def gate_action(
    acl: AclRecord | None,
    channel: str,
    reason: Plane3Reason,
    member: MembershipRecord | None,
    seq: int,
    delivery_count: int,
) -> ReaderAction:
    """:func:`reader_action` on an entry's fields (the daemon slices them out of the raw bytes)."""
    return gate_action_in_state(acl_state(acl, channel), reason, member, seq, delivery_count)


def gate_action_in_state(
    state: AclState,
    reason: Plane3Reason,
    member: MembershipRecord | None,
    seq: int,
    delivery_count: int,
) -> ReaderAction:
    """:func:`gate_action` with the owner's :func:`acl_state` for the channel already known
    (the reader works it out once per owner and channel in a batch)."""
    checked: bool | None = None
    if state == "allowed" and reason == "durable-channel":
        checked = member is not None and durable_eligible(member, seq)
    action = READER_TABLE[(state, reason, checked)]
    if action is ReaderAction.DEFER and delivery_count >= READER_MAX_REDELIVERIES:
        return ReaderAction.GIVE_UP
    return action


def transfer_failed_action(delivery_count: int) -> ReaderAction:
    """After a failed DLV publish: retry with a delay, or give up at the redelivery cap."""
    if delivery_count >= READER_MAX_REDELIVERIES:
        return ReaderAction.GIVE_UP
    return ReaderAction.DEFER


# --- durable join and activation (§5.5) -------------------------------------------------------
@dataclass(frozen=True)
class JoinPlan:
    """``done``: already open and activated (idempotent retry). ``commit``: write a new record."""

    done: bool
    commit: bool
    join_cursor: int
    generation: int


def is_open(rec: MembershipRecord | None) -> bool:
    return rec is not None and rec.state == "durable-active" and rec.leave_cursor is None


def join_plan(existing: MembershipRecord | None, chat_last_seq: int) -> JoinPlan:
    """Keep an open record's cursor and generation; otherwise a fresh generation at ``last_seq``."""
    if existing is not None and is_open(existing):
        return JoinPlan(
            done=bool(existing.activated),
            commit=False,
            join_cursor=existing.join_cursor,
            generation=existing.generation,
        )
    generation = (existing.generation if existing is not None else 0) + 1
    return JoinPlan(done=False, commit=True, join_cursor=chat_last_seq, generation=generation)


def new_membership(
    channel: str, owner: str, plan: JoinPlan, writer: str, now_ms: int
) -> MembershipRecord:
    """The record a join commits: routes at once (pure-interval eligibility), not yet activated."""
    return MembershipRecord(
        channel=channel,
        owner=owner,
        state="durable-active",
        join_cursor=plan.join_cursor,
        generation=plan.generation,
        activated=False,
        writer_identity=writer,
        updated_at=now_ms,
    )


def activation_fence(chat_last_seq: int, fanout_delivered_stream_seq: int | None) -> int:
    """Catch-up copies up to here; fan-out covers everything after it."""
    return max(chat_last_seq, fanout_delivered_stream_seq or 0)


def window_evicted(
    per_sender_counts: Sequence[int], oldest_retained_seq: int | None, join_cursor: int
) -> bool:
    """True when retention may have evicted part of ``(join_cursor, fence]`` on the channel.

    Only a sender subject at the ``MAX_MSGS_PER_SUBJECT`` cap can have lost messages; then the
    window is evicted if the oldest retained message on the channel is past ``join_cursor + 1``.
    """
    if not at_retention_cap(per_sender_counts):
        return False
    return oldest_retained_seq is not None and oldest_retained_seq > join_cursor + 1


def at_retention_cap(per_sender_counts: Iterable[int]) -> bool:
    """Whether any sender subject of the channel is at ``MAX_MSGS_PER_SUBJECT`` (discard old):
    only then can retention have evicted anything, and the oldest retained seq is worth reading."""
    return max(per_sender_counts, default=0) >= MAX_MSGS_PER_SUBJECT


def catchup_copy_wanted(subject: str, msg: CotalMessage | None, owner: str) -> bool:
    """Catch-up skips undecodable messages, spoofed senders, and the owner's own messages."""
    return msg is not None and catchup_sender_wanted(subject, msg.from_.id, owner)


def catchup_sender_wanted(subject: str, sender_id: object, owner: str) -> bool:
    """:func:`catchup_copy_wanted` on a bare ``from.id`` (the daemon decodes JSON, no model)."""
    return genuine_chat(subject, sender_id) is not None and sender_id != owner


def retry_backoff_ms(attempt: int) -> int:
    """Agent-side retry sleep: 1 s, 2 s, 4 s, … capped at 30 s (boot join, refused leave)."""
    return min(RETRY_BACKOFF_CAP_MS, 1000 * 2 ** min(attempt, 15))
