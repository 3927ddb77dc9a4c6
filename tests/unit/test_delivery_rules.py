"""Daemon decisions (§4.2, §5.3-§5.5): request checks, fan-out targets, reader table, join plan."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import cotal_tui.protocol as p

U1 = "UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NFCNDD"
U2 = "UBJ4HBCXQ3T7UVNMSZ3JRJ5WLBFKUXUCAXW2F2SVLKVAZQT6FNJL7YMO"
RECORDS = json.loads((Path(__file__).parent.parent / "vectors" / "records.json").read_text())


def _member(**kw: object) -> p.MembershipRecord:
    base: dict[str, object] = dict(
        channel="review",
        owner=U1,
        state="durable-active",
        join_cursor=10,
        generation=1,
        activated=True,
        writer_identity="UD",
        updated_at=1,
    )
    base.update(kw)
    return p.MembershipRecord(**base)  # type: ignore[arg-type]


def _acl(*allow: str) -> p.AclRecord:
    return p.AclRecord(allow_subscribe=list(allow), revision=1, updated_at=1)


def _entry(
    reason: str = "durable-channel", seq: int = 11, channel: str = "review"
) -> p.Plane3Entry:
    body = json.loads(RECORDS["dinbox.durableChannel"]["body"])
    body.update(reason=reason, seq=seq, channel=channel)
    return p.Plane3Entry.from_wire(body)


# --- ctl.delivery request checks -------------------------------------------------------------
def test_reply_strings_match_the_recorded_replies() -> None:
    refused = json.loads(RECORDS["ctl.delivery.reply.durableJoin.refusedOutOfAcl"]["body"])
    with pytest.raises(p.DeliveryRequestError) as info:
        p.join_acl_check(U1, "secret", _acl("general", "review", "lounge", "team.>"))
    assert str(info.value) == refused["error"]
    unsupported = json.loads(RECORDS["ctl.delivery.reply.unsupportedOp"]["body"])
    assert p.unsupported_op("frobnicate") == unsupported["error"]


def test_join_acl_check_passes_and_refuses_unknown() -> None:
    p.join_acl_check(U1, "team.x", _acl("team.>"))
    with pytest.raises(p.DeliveryRequestError, match="no read ACL on record for " + U1):
        p.join_acl_check(U1, "review", None)


@pytest.mark.parametrize("args", [None, {}, {"channel": "  "}, {"channel": 3}])
def test_channel_arg_must_be_non_blank(args: dict[str, object] | None) -> None:
    with pytest.raises(p.DeliveryRequestError) as info:
        p.channel_arg(p.OP_DURABLE_JOIN, args)
    assert str(info.value) == "durableJoin: channel must be a non-blank string"


def test_channel_arg_refuses_invalid_and_wildcard() -> None:
    with pytest.raises(p.InvalidChannel, match="empty segment"):
        p.channel_arg(p.OP_DURABLE_LEAVE, {"channel": "a..b"})
    with pytest.raises(p.DeliveryRequestError) as info:
        p.channel_arg(p.OP_DURABLE_LEAVE, {"channel": "team.>"})
    assert str(info.value) == (
        'durableLeave: "team.>" must be a concrete channel (durable membership is '
        "per-concrete-channel, not wildcard)"
    )
    assert p.channel_arg(p.OP_DURABLE_JOIN, {"channel": "team.backend"}) == "team.backend"


@pytest.mark.parametrize("generation", [None, "1", True, float("nan"), float("inf")])
def test_leave_generation_must_be_finite(generation: object) -> None:
    with pytest.raises(p.DeliveryRequestError, match="finite generation is required"):
        p.leave_generation_arg({"channel": "review", "generation": generation})
    assert p.leave_generation_arg({"generation": 3}) == 3


def test_sender_check_uses_the_subject() -> None:
    req = p.ControlRequest.from_json(RECORDS["ctl.delivery.request.durableJoin"]["body"])
    subject = RECORDS["ctl.delivery.request.durableJoin"]["subject"]
    assert p.check_sender(subject, req) is None
    assert p.check_sender(p.delivery_request_subject("main", U2), req) == p.SENDER_MISMATCH
    assert p.check_sender(RECORDS["ctl.delivery.request.durableJoin"]["reply"], req) is not None


def test_list_memberships_hides_tombstones() -> None:
    result = p.list_memberships_result(
        [_member(channel="a", activated=False), _member(channel="b", leave_cursor=3)]
    )
    assert result.to_wire() == {
        "memberships": [{"channel": "a", "generation": 1, "activated": False}]
    }
    empty = json.loads(RECORDS["ctl.delivery.reply.listMemberships.afterLeave"]["body"])["data"]
    assert p.list_memberships_result([_member(leave_cursor=3)]).to_wire() == empty


# --- fan-out -------------------------------------------------------------------------------------
def test_durable_targets_skip_sender_and_out_of_interval() -> None:
    members = [
        _member(owner=U1, join_cursor=10),
        _member(owner=U2, join_cursor=12),
        _member(owner="UC", join_cursor=5, leave_cursor=9, state="live-confirmed"),
        _member(owner="UD", join_cursor=5, activated=False),
    ]
    targets = p.durable_fanout_targets(members, sender_id=U1, seq=11)
    assert [m.owner for m in targets] == ["UD"]


def test_mention_owner_needs_exactly_one_match() -> None:
    def pres(pid: str, name: str, status: str = "idle") -> p.Presence:
        return p.Presence(card=p.AgentCard(id=pid, name=name, kind="agent"), status=status, ts=1)  # type: ignore[arg-type]

    roster = [pres("A", "Bob", "offline"), pres("B", "carol"), pres("C", "Carol")]
    assert p.mention_owner(roster, "bob") == "A"  # offline ghosts count
    assert p.mention_owner(roster, "carol") is None  # two matches: no copy
    assert p.mention_owner(roster, "dave") is None


def test_mention_allowed_needs_acl_cover() -> None:
    assert p.mention_allowed(U2, U1, _acl("lounge"), "lounge")
    assert not p.mention_allowed(U1, U1, _acl("lounge"), "lounge")
    assert not p.mention_allowed(U2, U1, None, "lounge")
    assert not p.mention_allowed(U2, U1, _acl("review"), "lounge")


def test_plane3_entry_matches_recorded_live_mention() -> None:
    rec = RECORDS["dinbox.liveMention"]
    msg = p.CotalMessage.from_json(RECORDS["chat.liveMention"]["body"])
    entry = p.plane3_entry(msg, "lounge", 5, "live-mention", 0)
    assert entry.to_json().decode() == rec["body"]


# --- reader ---------------------------------------------------------------------------
def test_reader_table_is_total() -> None:
    for state in ("unknown", "denied", "allowed"):
        for reason in ("durable-channel", "live-mention"):
            checks = [True, False] if (state, reason) == ("allowed", "durable-channel") else [None]
            for check in checks:
                assert (state, reason, check) in p.READER_TABLE


def test_reader_defers_unknown_owner_then_gives_up() -> None:
    assert p.reader_action(_entry(), None, _member(), 1) is p.ReaderAction.DEFER
    assert p.reader_action(_entry(), None, _member(), 9) is p.ReaderAction.DEFER
    assert p.reader_action(_entry(), None, _member(), 10) is p.ReaderAction.GIVE_UP


def test_reader_drops_revoked_and_out_of_interval() -> None:
    assert p.reader_action(_entry(), _acl("general"), _member(), 1) is p.ReaderAction.DROP
    assert (
        p.reader_action(_entry(), _acl(), _member(), 1) is p.ReaderAction.DROP
    )  # [] reads nothing
    assert p.reader_action(_entry(seq=10), _acl("review"), _member(), 1) is p.ReaderAction.DROP
    assert p.reader_action(_entry(), _acl("review"), None, 1) is p.ReaderAction.DROP


def test_reader_transfers_pre_leave_entry_and_mentions() -> None:
    tomb = _member(leave_cursor=12, state="live-confirmed")
    assert p.reader_action(_entry(seq=12), _acl("review"), tomb, 1) is p.ReaderAction.TRANSFER
    assert p.reader_action(_entry(seq=13), _acl("review"), tomb, 1) is p.ReaderAction.DROP
    mention = _entry(reason="live-mention", channel="lounge")
    assert p.reader_action(mention, _acl("lounge"), None, 1) is p.ReaderAction.TRANSFER


def test_reader_ignores_entry_generation() -> None:
    newer = _member(generation=5, join_cursor=10)
    assert p.reader_action(_entry(seq=11), _acl("review"), newer, 1) is p.ReaderAction.TRANSFER


def test_transfer_failure_retries_until_cap() -> None:
    assert p.transfer_failed_action(1) is p.ReaderAction.DEFER
    assert p.transfer_failed_action(p.READER_MAX_REDELIVERIES) is p.ReaderAction.GIVE_UP


# --- join plan ------------------------------------------------------------------------
def test_join_plan_fresh_and_rejoin_after_tombstone() -> None:
    assert p.join_plan(None, 42) == p.JoinPlan(
        done=False, commit=True, join_cursor=42, generation=1
    )
    tomb = _member(generation=3, leave_cursor=20, state="live-confirmed")
    assert p.join_plan(tomb, 50) == p.JoinPlan(
        done=False, commit=True, join_cursor=50, generation=4
    )


def test_join_plan_open_record_is_kept() -> None:
    pending = _member(activated=False, join_cursor=7, generation=2)
    assert p.join_plan(pending, 99) == p.JoinPlan(
        done=False, commit=False, join_cursor=7, generation=2
    )
    active = _member(activated=True, join_cursor=7, generation=2)
    assert p.join_plan(active, 99).done


def test_new_membership_matches_recorded_pending_record() -> None:
    rec = RECORDS["members.pending"]
    body = json.loads(rec["body"])
    plan = p.join_plan(None, body["joinCursor"])
    made = p.new_membership(
        body["channel"], body["owner"], plan, body["writerIdentity"], body["updatedAt"]
    )
    assert made.to_json().decode() == rec["body"]


def test_fence_and_eviction() -> None:
    assert p.activation_fence(10, None) == 10
    assert p.activation_fence(10, 12) == 12
    assert not p.window_evicted([999, 3], 500, 10)
    assert not p.window_evicted([1000], 11, 10)
    assert p.window_evicted([1000], 12, 10)
    assert not p.window_evicted([], None, 10)


def test_catchup_copy_filter() -> None:
    msg = p.CotalMessage.from_json(RECORDS["chat.text"]["body"])
    subject = RECORDS["chat.text"]["subject"]
    assert p.catchup_copy_wanted(subject, msg, owner=U1)
    assert not p.catchup_copy_wanted(subject, msg, owner=msg.from_.id)
    assert not p.catchup_copy_wanted(subject, None, owner=U1)
    assert not p.catchup_copy_wanted(p.chat_subject("main", U2, "review"), msg, owner=U1)


def test_retry_backoff() -> None:
    assert [p.retry_backoff_ms(a) for a in range(8)] == [
        1000,
        2000,
        4000,
        8000,
        16000,
        30000,
        30000,
        30000,
    ]
    assert p.retry_backoff_ms(10_000) == 30000


@pytest.mark.parametrize(
    ("subject", "sender", "channel", "verdict"),
    [
        ("cotal.s.chat.UA.dur", "UA", "dur", "routable"),
        ("cotal.s.chat.UA.team.backend", "UA", "team.backend", "routable"),
        ("cotal.s.chat.UA.team.backend", "UA", " team . backend ", "routable"),  # same path (§1.2)
        ("cotal.s.chat.UA.dur", "UA", "exec", "channel-mismatch"),
        ("cotal.s.chat.UA.dur", "UA", None, "channel-mismatch"),
        ("cotal.s.chat.UA.dur", "UA", "a.>.b", "channel-mismatch"),
        ("cotal.s.chat.UA.dur", "UB", "dur", "spoofed-sender"),
        ("cotal.s.inst.UB.UA", "UA", None, "not-chat"),
    ],
)
def test_chat_origin_trusts_the_subject(subject, sender, channel, verdict) -> None:
    from cotal_tui.protocol.delivery import chat_origin

    assert chat_origin(subject, sender, channel) == verdict
