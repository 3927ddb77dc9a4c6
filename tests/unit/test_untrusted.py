"""The one rule for untrusted bytes (protocol/untrusted.py): a table of inputs → outcomes, and a
fuzz test that every input whatsoever gets a verdict and no exception."""

from __future__ import annotations

import json
import math
import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cotal_tui.protocol import models as m
from cotal_tui.protocol.untrusted import (
    MAX_DEPTH,
    MAX_WIRE_BYTES,
    REFUSAL_REASONS,
    Decoded,
    Refused,
    decode_untrusted,
    nesting_depth,
)


def _deep_message(levels: int) -> bytes:
    """The issue's poison: a valid-looking CotalMessage whose data part nests ``levels`` deep."""
    head = (
        b'{"id":"d1","ts":1,"space":"s","from":{"id":"a","name":"a"},"channel":"dur",'
        b'"parts":[{"kind":"data","data":'
    )
    return head + b"[" * levels + b"]" * levels + b"}]}"


TABLE: list[tuple[str, bytes, str | None]] = [
    ("object", b'{"a":1}', None),
    (
        "nested within bound",
        b'{"a":' + b"[" * (MAX_DEPTH - 1) + b"]" * (MAX_DEPTH - 1) + b"}",
        None,
    ),
    ("brackets inside strings do not count", b'{"a":"' + b"[" * 5000 + b'"}', None),
    ("escaped quote keeps the string open", b'{"a":"\\"[[[[[[' + b"[" * 200 + b'"}', None),
    ("3,000-deep data part", _deep_message(3000), "too-deep"),
    ("one level over the bound", b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), "too-deep"),
    ("deep objects", b'{"a":' * 2000 + b"1" + b"}" * 2000, "too-deep"),
    ("unterminated deep", b"[" * 5000, "too-deep"),
    ("NaN", b'{"a":NaN}', "non-finite-number"),
    ("Infinity", b'{"a":Infinity}', "non-finite-number"),
    ("-Infinity", b'{"a":-Infinity}', "non-finite-number"),
    ("not JSON", b"{nope", "not-json"),
    ("empty", b"", "not-json"),
    ("trailing garbage", b'{"a":1} x', "not-json"),
    ("huge integer literal", b'{"a":' + b"9" * 5000 + b"}", "not-json"),
    ("invalid UTF-8", b'{"a":"\xff"}', "not-utf8"),
    ("array at the top", b"[1,2]", "not-an-object"),
    ("string at the top", b'"x"', "not-an-object"),
    ("null at the top", b"null", "not-an-object"),
    ("over the size bound", b'{"a":"' + b"x" * MAX_WIRE_BYTES + b'"}', "oversized"),
]


@pytest.mark.parametrize(
    ("raw", "reason"), [(r, w) for _n, r, w in TABLE], ids=[n for n, *_ in TABLE]
)
def test_decoding_rule_table(raw: bytes, reason: str | None) -> None:
    outcome = decode_untrusted(raw)
    if reason is None:
        assert isinstance(outcome, Decoded), outcome
        assert outcome.value == json.loads(raw)
    else:
        assert isinstance(outcome, Refused), outcome
        assert outcome.reason == reason
        assert outcome.detail and "\n" not in outcome.detail


def test_size_is_checked_before_anything_else() -> None:
    # An oversized body is refused as oversized even when it is also deep and not UTF-8.
    raw = b"\xff" + b"[" * 100
    assert decode_untrusted(raw, max_bytes=50) == Refused(
        "oversized", "101 bytes, more than the 50-byte bound"
    )


def test_depth_scan_matches_the_parser_on_valid_json() -> None:
    for value in ([], {}, [[[]]], {"a": [{"b": "[[["}]}, "x", 1, [{"k": '\\"['}]):
        raw = json.dumps(value).encode()
        assert nesting_depth(raw) == _depth(value), raw


def test_refusal_reasons_are_the_named_set() -> None:
    seen = {w for _n, _r, w in TABLE if w is not None}
    assert seen <= set(REFUSAL_REASONS)
    assert set(REFUSAL_REASONS) - seen == {"invalid-record"}  # the model-level reason


def test_wire_models_use_the_rule_and_name_the_reason() -> None:
    with pytest.raises(m.RecordError) as caught:
        m.CotalMessage.from_json(_deep_message(3000))
    assert caught.value.reason == "too-deep"
    refused = m.CotalMessage.decode(_deep_message(3000))
    assert isinstance(refused, Refused) and refused.reason == "too-deep"
    bad_schema = m.CotalMessage.decode(b'{"id":1}')
    assert isinstance(bad_schema, Refused) and bad_schema.reason == "invalid-record"
    nan = m.CotalMessage.decode(b'{"id":"x","ts":NaN}')
    assert isinstance(nan, Refused) and nan.reason == "non-finite-number"
    ok = m.CotalMessage.decode(_deep_message(10))
    assert isinstance(ok, Decoded) and isinstance(ok.value, m.CotalMessage)


def _depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    return 0


# --- fuzz ------------------------------------------------------------------------------------

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=30,
)


def _mutations(raw: bytes) -> st.SearchStrategy[bytes]:
    return st.sampled_from([raw, raw[:-1], raw + b"]", b"[" + raw, raw.replace(b'"', b"")])


def _check_verdict(raw: bytes) -> None:
    outcome = decode_untrusted(raw, max_bytes=4096, max_depth=8)
    assert isinstance(outcome, Decoded | Refused)
    if isinstance(outcome, Refused):
        assert outcome.reason in REFUSAL_REASONS
        return
    assert isinstance(outcome.value, dict)
    assert _depth(outcome.value) <= 8
    assert _finite(outcome.value)


def _finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    return True


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=600))
def test_fuzz_any_bytes_get_a_verdict(raw: bytes) -> None:
    _check_verdict(raw)


@settings(max_examples=400, deadline=None)
@given(_json_values.map(lambda v: json.dumps(v).encode()).flatmap(_mutations))
def test_fuzz_json_like_bytes_get_a_verdict(raw: bytes) -> None:
    _check_verdict(raw)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=3 * sys.getrecursionlimit()), st.sampled_from("[{"))
def test_fuzz_any_depth_is_refused_or_decoded_never_raised(levels: int, opener: str) -> None:
    closer = "]" if opener == "[" else "}"
    inner = (opener + ('"k":' if opener == "{" else "")) * levels + "1" + closer * levels
    outcome = decode_untrusted(('{"a":' + inner + "}").encode(), want_object=True)
    if levels + 1 > MAX_DEPTH:
        assert isinstance(outcome, Refused) and outcome.reason == "too-deep"
    else:
        assert isinstance(outcome, Decoded)
