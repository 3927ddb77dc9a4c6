"""The reference's JavaScript semantics on raw wire dicts: null vs absent, String(), Number().

The vectors note that a JSON ``null`` inside an object is a real JS ``null``, which the
reference treats differently from an absent key in places. These are those places.
"""

from __future__ import annotations

import math

import pytest

import cotal_tui.protocol as p
from cotal_tui.protocol.jsstr import ABSENT, js_number_str, js_string, js_to_number


def test_null_falls_through_like_absent() -> None:
    assert p.effective_replay({"replay": None}, {"replay": False}) is False
    assert p.effective_delivery_class({"deliveryClass": None}, None) == "durable"
    assert p.effective_replay_window_ms({"replayWindow": None}, None) is None
    assert p.effective_replay_window_ms({"replayWindow": None}, {"replayWindow": "1h"}) == 3_600_000


def test_false_does_not_fall_through() -> None:
    assert p.effective_replay({"replay": False}, {"replay": True}) is False


def test_a_null_default_window_is_dereferenced() -> None:
    with pytest.raises(p.JsTypeError, match=r"reading 'trim'"):
        p.effective_replay_window_ms({}, {"replayWindow": None})
    assert issubclass(p.JsTypeError, TypeError)


def test_validate_null_fields() -> None:
    with pytest.raises(p.JsTypeError, match=r"reading 'length'"):
        p.validate_channel_config({"description": None})
    with pytest.raises(p.JsTypeError, match=r"reading 'trim'"):
        p.validate_channel_defaults({"replayWindow": None})
    with pytest.raises(p.InvalidChannelConfig) as info:
        p.validate_channel_config({"deliveryClass": None})
    assert str(info.value) == 'invalid deliveryClass "null" — expected "live" or "durable"'


def test_validate_non_string_fields() -> None:
    p.validate_channel_config({"description": 12345})  # (12345).length is undefined
    with pytest.raises(p.InvalidChannelConfig, match=r"\(201 > 200 chars\)"):
        p.validate_channel_config({"description": ["x"] * 201})
    with pytest.raises(p.JsTypeError, match="s.trim is not a function"):
        p.validate_channel_config({"replayWindow": 5})
    with pytest.raises(p.InvalidChannelConfig, match='"true"'):
        p.validate_channel_config({"deliveryClass": True})


def test_effective_values_returned_as_stored() -> None:
    assert p.effective_replay({"replay": "yes"}, None) == "yes"


def test_durable_eligible_on_malformed_dicts() -> None:
    base = {"channel": "c", "owner": "o", "state": "durable-active", "generation": 1}
    assert p.durable_eligible({**base, "joinCursor": None}, 1)  # null compares as 0
    assert not p.durable_eligible({**base, "joinCursor": None}, 0)
    assert p.durable_eligible(base, 5)  # missing joinCursor: NaN, never <=
    assert not p.durable_eligible({**base, "joinCursor": 1, "leaveCursor": None}, 2)
    assert p.durable_eligible({**base, "joinCursor": 1, "leaveCursor": "3"}, 3)


def test_resolve_peer_matches_ids_exactly_and_quotes_the_raw_target() -> None:
    def pres(pid: str, name: str) -> dict[str, object]:
        return {"card": {"id": pid, "name": name, "kind": "agent"}, "status": "idle", "ts": 1}

    peers = [pres("ID1", "x"), pres("ID2", "x")]
    assert p.resolve_peer(peers, " ID1 ") is None  # ids are not trimmed; names are
    with pytest.raises(p.AmbiguousPeerError) as info:
        p.resolve_peer(peers, " X ")
    assert str(info.value).startswith('" X " is ambiguous — 2 peers share that name: ')
    assert p.resolve_peer(peers, "x", self_id="ID1") is peers[1]
    with pytest.raises(p.AmbiguousPeerError):
        p.resolve_peer(peers, "x", self_id="")  # an empty self id excludes nobody


def test_join_link_edge_cases() -> None:
    assert p.parse_join_link("cotal://h/s?channel=,").channels == ()
    assert p.parse_join_link("cotal://h/s?channel=,").to_dict()["channels"] == []
    with pytest.raises(p.InvalidUrl):
        p.parse_join_link("cotal:// h/s")
    assert p.parse_join_link("cotal://h/s \n").space == "s"
    assert p.parse_join_link("cotal://h/./a/../s").space == "s"
    assert p.parse_join_link("cotal://0x7f.1/s").servers == "nats://127.0.0.1:4222"
    assert p.format_join_link("h", "s", port=4222.0) == "cotal://h:4222/s"


def test_sharded_names_treat_none_as_default() -> None:
    assert p.fanout_durable(None, None) == "fanout"
    assert p.reader_durable(None, 2) == "reader_0"
    assert p.inbox_reader_config("main", ack_wait_ms=None)["ack_wait"] == 60_000_000_000
    cfg = p.dlv_durable_config("main", "U1", inactive_threshold_ms=600_000)
    assert cfg["inactive_threshold"] == 600_000_000_000


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "null"),
        (ABSENT, "undefined"),
        (True, "true"),
        (5, "5"),
        (5.0, "5"),
        (1.5, "1.5"),
        ([1, None, "a"], "1,,a"),
        ({"a": 1}, "[object Object]"),
        (1e21, "1e+21"),
        (-0.0, "0"),
    ],
)
def test_js_string(value: object, text: str) -> None:
    assert js_string(value) == text


def test_js_number_conversions() -> None:
    assert js_number_str(1e-7) == "1e-7"
    assert js_to_number(" 12 ") == 12
    assert js_to_number("") == 0
    assert math.isnan(js_to_number("1_000"))
    assert math.isnan(js_to_number("inf"))
    assert js_to_number("-Infinity") == -math.inf


def test_partition_with_fractional_modulus_keeps_js_remainder() -> None:
    h = p.partition(2**32, "general")
    assert p.partition(2.5, "general") == h % 2.5


@pytest.mark.parametrize(
    ("link", "expected"),
    [
        # Found by differential fuzzing against Node 20's URL (the reference's runtime).
        ("cotal://ß/s", {"servers": "nats://xn--zca:4222", "space": "s", "tls": False}),
        ("cotal://h/s\ud800", {"servers": "nats://h:4222", "space": "s\ufffd", "tls": False}),
        (
            "cotal://h/s?channel=a,b%E0%A4",
            {"servers": "nats://h:4222", "space": "s", "channels": ["a", "b\ufffd"], "tls": False},
        ),
        ("cotal://h/s??channel=a", {"servers": "nats://h:4222", "space": "s", "tls": False}),
        (
            "cotal://[::FFFF:1.2.3.4]/s",
            {"servers": "nats://[::ffff:102:304]:4222", "space": "s", "tls": False},
        ),
        ("cotal://256/s", {"servers": "nats://0.0.1.0:4222", "space": "s", "tls": False}),
    ],
)
def test_join_link_whatwg_details(link: str, expected: dict[str, object]) -> None:
    assert p.parse_join_link(link).to_dict() == expected


def test_join_link_refuses_bad_punycode_label() -> None:
    with pytest.raises(p.InvalidUrl):
        p.parse_join_link("cotal://xn--zca&x/s")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        # Checked against Node 20's String(n).
        (2**60, "1152921504606847000"),
        (9007199254740993, "9007199254740992"),
        (1e20, "100000000000000000000"),
        (1e-6, "0.000001"),
        (5e-324, "5e-324"),
        (1.2345678901234568e20, "123456789012345680000"),
    ],
)
def test_js_number_str_matches_node(value: float, text: str) -> None:
    assert js_number_str(value) == text


def test_js_number_prefixes() -> None:
    assert js_to_number("0x1A") == 26
    assert js_to_number("0b11") == 3
    assert math.isnan(js_to_number("0x"))


def test_decode_uri_component_keeps_undecoded_text() -> None:
    assert p.decode_uri_component("%2Fa\udfff") == "/a\udfff"
    with pytest.raises(p.UriMalformed):
        p.decode_uri_component("%C3%A9%C3")


def test_encode_uri_component_refuses_lone_surrogate() -> None:
    assert p.encode_uri_component("a b/é") == "a%20b%2F%C3%A9"
    with pytest.raises(p.UriMalformed):
        p.encode_uri_component("\ud800")
