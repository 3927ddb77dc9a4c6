"""The figures a stage process sends its parent survive the pipe and add up (stage_wire.py)."""

from __future__ import annotations

from cotal_tui.delivery.daemon_context import Counters
from cotal_tui.delivery.stage_wire import (
    counters_from_wire,
    counters_wire,
    decode,
    encode,
    merge_counters,
)


def test_counters_round_trip_through_a_line() -> None:
    c = Counters(fanned_out=7, transferred=3, dead_letter_reasons={"schema": 2})
    line = encode({"t": "status", "counters": counters_wire(c)})
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    msg = decode(line)
    assert msg is not None
    assert counters_from_wire(msg["counters"]) == c


def test_merge_sums_every_field_and_every_reason() -> None:
    fanout = Counters(fanned_out=10, naked=1, dead_lettered=2, dead_letter_reasons={"a": 2})
    reader = Counters(transferred=9, deferred=1, dead_lettered=1, dead_letter_reasons={"a": 1})
    parent = Counters(joins=3, leaves=1)
    total = merge_counters([parent, fanout, reader])
    assert total == Counters(
        fanned_out=10,
        transferred=9,
        deferred=1,
        naked=1,
        dead_lettered=3,
        joins=3,
        leaves=1,
        dead_letter_reasons={"a": 3},
    )
    assert fanout.dead_letter_reasons == {"a": 2}  # the parts are not changed


def test_bad_lines_and_values_are_ignored() -> None:
    assert decode(b"not json\n") is None
    assert decode(b"[1, 2]\n") is None
    c = counters_from_wire({"fanned_out": "x", "transferred": True, "joins": 4, "nope": 1})
    assert c == Counters(joins=4)
    assert counters_from_wire(None) == Counters()
