"""Channel-config, membership, name and health rules (§3.3, §3.4, §3.2, §5.9)."""

from __future__ import annotations

import itertools

import pytest

import cotal_tui.protocol as p

U1 = "UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NFCNDD"


def _member(**kw: object) -> p.MembershipRecord:
    base: dict[str, object] = dict(
        channel="review",
        owner=U1,
        state="durable-active",
        join_cursor=10,
        generation=2,
        writer_identity="UD",
        updated_at=1,
    )
    base.update(kw)
    return p.MembershipRecord(**base)  # type: ignore[arg-type]


# --- channel config ----------------------------------------------------------------------
def test_duration_precision_follows_js_doubles() -> None:
    assert p.parse_duration("9007199254740993s") == 9007199254740992000
    assert p.parse_duration("99999999999999999999d") == 8.64e27


def test_duration_refuses_non_ascii_digits_and_trailing_newline_only_after_trim() -> None:
    with pytest.raises(p.InvalidDuration):
        p.parse_duration("٣h")  # Arabic-Indic digit: JS \d is ASCII-only
    assert p.parse_duration("24h\n") == 86_400_000  # trim removes it first


def test_effective_values_fall_back_in_order() -> None:
    defaults = p.ChannelDefaults(replay=False, replay_window="1h", delivery_class="live")
    assert p.effective_replay(None, defaults) is False
    assert p.effective_replay(p.ChannelConfig(replay=True), defaults) is True
    assert p.effective_replay_window_ms(None, None) is None
    assert p.effective_replay_window_ms(p.ChannelConfig(), defaults) == 3_600_000
    assert p.effective_delivery_class(None, None) == "durable"
    assert p.effective_delivery_class({}, defaults) == "live"


def test_merge_validates_and_refuses_long_text() -> None:
    with pytest.raises(p.InvalidChannelConfig, match="201 > 200"):
        p.merge_channel_config({"replay": True}, {"description": "x" * 201})
    merged = p.merge_channel_config(p.ChannelConfig(replay=True), p.ChannelConfig(description="d"))
    assert merged.to_wire() == {"replay": True, "description": "d"}
    with pytest.raises(p.InvalidChannelConfig, match="deliveryClass"):
        p.validate_channel_config({"deliveryClass": "Live"})


# --- membership ------------------------------------------------------------------------------
def test_eligibility_interval() -> None:
    rec = _member(join_cursor=10)
    assert [s for s in range(8, 13) if p.durable_eligible(rec, s)] == [11, 12]
    tomb = _member(join_cursor=10, leave_cursor=12, state="live-confirmed")
    assert [s for s in range(8, 15) if p.durable_eligible(tomb, s)] == [11, 12]


def test_stale_commit_refused_equal_allowed() -> None:
    current = _member(generation=3)
    with pytest.raises(p.StaleMembershipWrite) as info:
        p.commit_action(current, _member(generation=2))
    assert str(info.value) == f"stale membership write for review/{U1}: generation 2 < current 3"
    assert p.commit_action(current, _member(generation=3)) is p.CommitAction.UPDATE
    assert p.commit_action(None, _member()) is p.CommitAction.CREATE


def test_tombstone_decisions() -> None:
    assert p.tombstone_action(None, 5) is p.TombstoneAction.NOOP
    with pytest.raises(p.StaleMembershipWrite):
        p.tombstone_action(_member(generation=2), 5, expected_generation=1)
    tomb = _member(leave_cursor=5)
    assert p.tombstone_action(tomb, 7) is p.TombstoneAction.NOOP
    assert p.tombstone_action(tomb, 4) is p.TombstoneAction.WRITE
    written = p.tombstoned(_member(activated=True), 20, "UW", 99)
    assert (written.state, written.leave_cursor, written.generation, written.activated) == (
        "live-confirmed",
        20,
        2,
        True,
    )


def test_activation_guard() -> None:
    rec = _member(generation=2, join_cursor=10)
    assert p.can_activate(rec, 2, 10)
    assert not p.can_activate(rec, 3, 10)
    assert not p.can_activate(rec, 2, 11)
    assert not p.can_activate(_member(leave_cursor=12), 2, 10)
    assert not p.can_activate(None, 2, 10)


# --- names ------------------------------------------------------------------------------------
def test_name_errors_quote_like_json_stringify() -> None:
    with pytest.raises(p.InvalidName) as info:
        p.assert_valid_name("a\nb")
    assert str(info.value) == 'invalid name "a\\nb": must be a single line'


def test_ambiguous_peer_lists_candidates() -> None:
    def pres(pid: str, status: str) -> p.Presence:
        card = p.AgentCard(id=pid, name="carol", kind="agent")
        return p.Presence(card=card, status=status, ts=1)  # type: ignore[arg-type]

    peers = [pres("A", "idle"), pres("B", "working"), pres("C", "offline")]
    with pytest.raises(p.AmbiguousPeerError) as info:
        p.resolve_peer(peers, "Carol")
    assert [c.card.id for c in info.value.candidates] == ["A", "B"]  # type: ignore[attr-defined]
    assert p.resolve_peer(peers, "carol", self_id="A") is peers[1]
    assert p.resolve_peer(peers, "C") is peers[2]


# --- delivery health --------------------------------------------------------------------------
def test_health_table_covers_every_combination() -> None:
    verdicts = {}
    for known, joined, cls, lease, member in itertools.product(
        (True, False), (True, False), ("durable", "live"), (True, False), (True, False)
    ):
        verdicts[(known, joined, cls, lease, member)] = p.delivery_health(
            known, joined, cls, lease, member
        )
    active = [k for k, v in verdicts.items() if v == "active"]
    assert active == [(True, True, "durable", True, True)]
    degraded = {k for k, v in verdicts.items() if v == "degraded"}
    assert degraded == {
        (True, True, "durable", lease, member)
        for lease, member in itertools.product((True, False), repeat=2)
        if not (lease and member)
    }
    assert all(v is None for k, v in verdicts.items() if not (k[0] and k[1] and k[2] == "durable"))


def test_channel_line_wording() -> None:
    assert (
        p.channel_line("review", "Code review", joined=True, health="active")
        == "● #review — Code review (subscribed, replay on) · durable backstop active"
    )
    line = p.channel_line(
        "lounge", "Chat", joined=False, mode="quiet", durable_unclosed=True, health=None
    )
    assert line == (
        "○ #lounge — Chat (not subscribed, replay on) · quiet · durable cleanup pending "
        "(§7 backstop may still deliver — retrying)"
    )
    degraded = p.channel_line("r", "d", joined=True, health="degraded")
    assert degraded.endswith(
        "· durable backstop unavailable — live messages still arrive; offline replay is at "
        "risk after backlog cap"
    )


def test_join_reply_wording() -> None:
    assert p.join_reply_text("g", "already") == "Already on #g."
    assert p.join_reply_text("g", "live") == "Joined #g (live)."
    assert p.join_reply_text("g", "live-only", reason="no lease") == (
        "Joined #g (LIVE only — no lease; messages sent while you're offline won't be replayed)"
    )
    assert p.join_reply_text("g", "durable", detail="gen 2").startswith(
        "Joined #g (durable backstop active — gen 2"
    )


# --- specs -------------------------------------------------------------------------------------
def test_stream_and_bucket_specs() -> None:
    streams = {s.name: s for s in p.stream_specs("prod.eu")}
    assert set(streams) == {
        "CHAT_prod_eu",
        "DM_prod_eu",
        "TASK_prod_eu",
        "INBOX_prod_eu",
        "DLV_prod_eu",
    }
    chat = streams["CHAT_prod_eu"]
    assert (chat.subjects, chat.max_msgs_per_subject, chat.discard, chat.allow_direct) == (
        ("cotal.prod_eu.chat.>",),
        1000,
        "old",
        True,
    )
    assert streams["TASK_prod_eu"].retention == "workqueue"
    assert streams["INBOX_prod_eu"].duplicate_window_ms == p.PLANE3_DEDUP_WINDOW_MS
    assert streams["DM_prod_eu"].duplicate_window_ms is None
    buckets = {b.bucket: b for b in p.bucket_specs("main")}
    assert buckets["cotal_presence_main"].ttl_ms == p.PRESENCE_TTL_MS
    assert buckets["cotal_delivery_main"].ttl_ms == p.LEASE_TTL_MS
    assert buckets["cotal_members_main"].ttl_ms is None
    spec = buckets["cotal_delivery_main"].stream_spec()
    assert (spec.name, spec.subjects, spec.max_age_ms, spec.discard, spec.max_msgs_per_subject) == (
        "KV_cotal_delivery_main",
        ("$KV.cotal_delivery_main.>",),
        30_000,
        "new",
        1,
    )
