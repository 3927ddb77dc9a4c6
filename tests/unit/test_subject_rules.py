"""Per-rule edges of the subject grammar and channel predicates (PROTOCOL.md §1)."""

from __future__ import annotations

import pytest

import cotal_tui.protocol as p

U1 = "UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NFCNDD"


def test_subtree_wildcard_does_not_match_its_parent() -> None:
    assert not p.subject_matches("review.>", "review")
    assert p.subject_matches("review.>", "review.a")
    assert not p.channel_in_allow(["review.>"], "review")


def test_collapse_keeps_parent_and_subtree_apart() -> None:
    assert p.collapse_filter_subjects(["review", "review.>"]) == ["review", "review.>"]


def test_full_wildcard_only_last() -> None:
    assert p.assert_valid_channel("team.>") == "team.>"
    with pytest.raises(p.InvalidChannel, match="only valid as the last segment"):
        p.assert_valid_channel("team.>.x")
    with pytest.raises(p.InvalidChannel, match="only valid as the last segment"):
        p.chat_subject("main", U1, ">.x")


@pytest.mark.parametrize("channel", ["", ".", "a.", ".a", "a..b"])
def test_empty_segments_refused(channel: str) -> None:
    with pytest.raises(p.InvalidChannel, match="empty segment"):
        p.assert_valid_channel(channel)


def test_invalid_channel_is_a_value_error() -> None:
    assert issubclass(p.InvalidChannel, ValueError)


@pytest.mark.parametrize(
    ("raw", "tok"),
    [("prod.eu", "prod_eu"), ("prod_eu", "prod_eu"), ("café", "caf_"), ("cafè", "caf_")],
)
def test_token_is_lossy(raw: str, tok: str) -> None:
    assert p.token(raw) == tok


def test_token_collisions_are_real() -> None:
    """Two distinct spaces share a wire token: why a token is never decoded back."""
    assert p.token("prod.eu") == p.token("prod_eu") == p.token("prod eu")


def test_astral_character_is_two_code_units() -> None:
    assert p.token("a\U0001f642") == "a__"


def test_route_token_keeps_only_an_exact_star() -> None:
    assert p.route_token("*") == "*"
    assert p.route_token(" * ") == "_"
    assert p.route_token(">") == "_"


def test_mentions_normalized_and_omitted_when_empty() -> None:
    assert p.normalize_mentions(["Bob", " CAROL ", "bob", ""]) == ["bob", "carol"]
    assert p.normalize_mentions(["", "  "]) is None
    assert p.normalize_mentions([]) is None
    assert p.normalize_mentions(None) is None


def test_js_trim_set_differs_from_python_strip() -> None:
    assert p.token("\ufeffx\ufeff") == "x"  # JS trims U+FEFF, Python's strip() does not
    assert p.token("\x1cx") == "_x"  # Python's strip() would drop U+001C, JS keeps it


def test_defaults_key_never_collides_with_a_channel_key() -> None:
    assert "=" not in p.token(p.CHANNEL_DEFAULTS_KEY)
    with pytest.raises(p.InvalidChannel):
        p.assert_valid_channel(p.CHANNEL_DEFAULTS_KEY)


def test_parse_subject_classes() -> None:
    assert p.parse_subject(p.chat_subject("main", U1, "team.backend")) == p.ParsedSubject(
        "chat", U1, "team.backend"
    )
    assert p.parse_subject(p.unicast_subject("main", "T", U1)) == ("inst", U1, "T")
    assert p.parse_subject(p.anycast_subject("main", "reviewer", U1)) == ("svc", U1, "reviewer")
    assert p.parse_subject(p.delivery_request_subject("main", U1)) == ("ctl", U1, "delivery")
    assert p.parse_subject(p.delivery_reply_subject("main", U1, "uuid")) is None
    assert p.parse_subject(p.dinbox_subject("main", U1)) is None
    assert p.parse_subject(p.dlv_subject("main", U1)) is None


def test_delivery_of_maps_planes() -> None:
    assert p.delivery_of(p.chat_subject("s", U1, "g")) == "chat"
    assert p.delivery_of(p.unicast_subject("s", "t", U1)) == "unicast"
    assert p.delivery_of(p.anycast_subject("s", "r", U1)) == "anycast"
    assert p.delivery_of(p.control_service_subject("s", "manager", U1)) is None


def test_dinbox_owner_needs_exactly_four_tokens() -> None:
    assert p.parse_dinbox_owner(p.dinbox_subject("main", U1)) == U1
    assert p.parse_dinbox_owner(p.dinbox_subject("main", U1) + ".x") is None
    assert p.parse_dinbox_owner(p.dlv_subject("main", U1)) is None


def test_bound_reply_guard() -> None:
    request = p.delivery_request_subject("main", U1)
    assert p.is_bound_reply(request, p.delivery_reply_subject("main", U1, "abc"))
    assert not p.is_bound_reply(request, None)
    assert not p.is_bound_reply(request, "_INBOX.x")
    other = p.delivery_reply_subject("main", "UOTHER", "abc")
    assert not p.is_bound_reply(request, other)


def test_member_key_round_trip_and_rejects() -> None:
    key = p.member_key("team.backend", U1)
    assert p.parse_member_key(key) == ("team.backend", U1)
    assert p.parse_member_key("=defaults") is None
    assert p.parse_member_key("a/") is None


def test_catchup_and_plane3_names() -> None:
    assert p.catchup_durable(U1, 3) == f"cu_{U1}_3"
    assert p.plane3_msg_id("m1", U1, 0) == f"m1:{U1}:0"
    assert p.fanout_durable() == p.FANOUT_DURABLE
    assert p.reader_durable() == p.INBOX_READER_DURABLE


def test_partition_is_zero_for_one_shard() -> None:
    assert p.partition(1, "anything") == 0
    assert 0 <= p.partition(7, "anything") < 7
