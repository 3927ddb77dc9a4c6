"""Hypothesis properties of the subject grammar, tokens, names and join links."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

import cotal_tui.protocol as p

SAFE = re.compile(r"[A-Za-z0-9_-]+")
segment = st.from_regex(r"\A[A-Za-z0-9_-]{1,12}\Z")
concrete_channel = st.lists(segment, min_size=1, max_size=5).map(".".join)
valid_channel = st.tuples(
    st.lists(st.one_of(segment, st.just("*")), min_size=1, max_size=5),
    st.booleans(),
).map(lambda t: ".".join(t[0] + ([">"] if t[1] else [])))


@given(st.text())
def test_token_is_a_valid_subject_token(s: str) -> None:
    out = p.token(s)
    assert SAFE.fullmatch(out)
    assert "=" not in out and "." not in out


@given(st.text())
def test_token_is_idempotent(s: str) -> None:
    assert p.token(p.token(s)) == p.token(s)


@given(st.text(), st.text(), valid_channel)
def test_valid_channel_round_trips_through_chat_subject(
    space: str, sender: str, channel: str
) -> None:
    assert p.assert_valid_channel(channel) == channel
    parsed = p.parse_subject(p.chat_subject(space, sender, channel))
    assert parsed is not None
    assert parsed.kind == "chat"
    assert parsed.sender == p.route_token(sender)
    assert parsed.rest == channel


@given(concrete_channel)
def test_concrete_channel_matches_itself_and_its_live_pattern(channel: str) -> None:
    assert p.is_concrete_channel(channel)
    assert p.subject_matches(channel, channel)
    assert p.channel_in_allow([channel], channel)
    assert not p.subject_matches(channel + ".>", channel)
    live = p.chat_subject("s", "*", channel)
    assert p.subject_matches(live, p.chat_subject("s", "UABC", channel))


@given(st.lists(valid_channel, max_size=6))
def test_collapse_result_has_no_entry_subsumed_by_another(subjects: list[str]) -> None:
    out = p.collapse_filter_subjects(subjects)
    assert len(set(out)) == len(out)
    for s in out:
        assert s in subjects
        assert not any(o != s and p.subject_matches(o, s) for o in out)


@given(st.lists(st.text(max_size=8), max_size=8))
def test_normalize_mentions_idempotent_and_never_empty(mentions: list[str]) -> None:
    out = p.normalize_mentions(mentions)
    assert out is None or (out and p.normalize_mentions(out) == out)


@given(st.integers(min_value=0, max_value=10**6), st.sampled_from("smhd"))
def test_parse_duration_units(n: int, unit: str) -> None:
    factor = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}[unit]
    assert p.parse_duration(f" {n}{unit} ") == n * factor


@given(st.integers(min_value=2, max_value=2**32), st.text(max_size=20))
def test_partition_in_range(n: int, key: str) -> None:
    assert 0 <= p.partition(n, key) < n


@given(
    st.from_regex(r"\A[a-z][a-z0-9-]{0,10}(\.[a-z][a-z0-9-]{0,10}){0,2}\Z"),
    st.text(min_size=1, max_size=12).filter(lambda s: s not in (".", "..")),
    st.one_of(st.none(), st.integers(min_value=1, max_value=65535)),
    st.one_of(st.none(), st.text(min_size=1, max_size=12)),
    st.booleans(),
    st.one_of(st.none(), st.lists(concrete_channel, min_size=1, max_size=3)),
)
def test_join_link_round_trip(
    host: str,
    space: str,
    port: int | None,
    token: str | None,
    tls: bool,
    channels: list[str] | None,
) -> None:
    try:
        space.encode("utf-8")
        (token or "").encode("utf-8")
    except UnicodeEncodeError:
        return  # lone surrogates cannot be percent-encoded (URIError in the reference too)
    link = p.format_join_link(host, space, port=port, token=token, tls=tls, channels=channels)
    parsed = p.parse_join_link(link)
    default = 443 if tls else 80
    expected_port = port if port and port != default else p.DEFAULT_PORT
    assert parsed.servers == f"nats://{host}:{expected_port}"
    assert parsed.space == space
    assert parsed.tls is tls
    assert parsed.token == token
    assert parsed.channels == (tuple(channels) if channels else None)
