"""The trusted reader's per-copy shortcuts (issue 16) give exactly what the long way gives.

- ``decode_entry`` (one regex match for the usual shape) equals ``decode_entry_slow`` (the
  rfind/tail-regex/decoding-rule path it replaced) on any bytes, hostile ones included;
- ``entry_action`` (the delivery count read only when a deferral could become a give-up)
  equals ``gate_action_in_state`` fed the delivery count, for every state, reason and interval;
- ``dlv_items`` (the owner-and-generation end of the Nats-Msg-Id memoized) equals the items
  built per copy with ``plane3_msg_id`` and ``js_string``.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from nats.aio.msg import Msg

from cotal_tui.delivery.members import MemberEntry
from cotal_tui.delivery.reader import (
    DlvTargets,
    Entry,
    decode_entry,
    decode_entry_slow,
    dlv_items,
    entry_action,
)
from cotal_tui.mesh.ack_subject import deliveries
from cotal_tui.protocol.delivery import gate_action_in_state
from cotal_tui.protocol.jsstr import ABSENT, js_string
from cotal_tui.protocol.models import MembershipRecord
from cotal_tui.protocol.names import READER_MAX_REDELIVERIES, plane3_msg_id
from cotal_tui.protocol.subjects import dlv_subject


def _msg(data: bytes = b"", reply: str = "") -> Msg:
    return Msg(_client=None, subject="cotal.s.dinbox.o", reply=reply, data=data)  # type: ignore[arg-type]


# Pieces an entry is made of, plain and hostile: quotes, escapes, control bytes, a second
# `,"channel":` inside the message, bad UTF-8, numbers JSON does not write that way.
_PIECES = [
    b'{"msg":',
    b'{"id":"',
    b"m-1",
    b'"',
    b"\\",
    b'\\"',
    b"}",
    b"{",
    b',"channel":',
    b'"c"',
    b'"c\\u0068"',
    b'","seq":',
    b',"seq":',
    b"5",
    b"05",
    b"5.0",
    b"-1",
    b'"durable-channel"',
    b',"reason":',
    b',"generation":',
    b"3",
    b"\xff",
    b"\x00",
    b"\n",
    b" ",
    b"\xc3\xa9",
    b'{"x":[1,2]}',
]


def _plain(msg_id: bytes, body: bytes, channel: bytes, seq: int, reason: bytes, gen: int) -> bytes:
    return (
        b'{"msg":{"id":"'
        + msg_id
        + b'"'
        + body
        + b'},"channel":"'
        + channel
        + b'","seq":'
        + str(seq).encode()
        + b',"reason":"'
        + reason
        + b'","generation":'
        + str(gen).encode()
        + b"}"
    )


def _assert_fast_is_slow(m: Any) -> None:
    """The fast decode gives what the slow one gives, or fails where it fails."""
    try:
        slow: Any = decode_entry_slow(m, "o")
    except UnicodeDecodeError:  # the slow path's own (pre-existing) failure, kept as it was
        try:
            decode_entry(m, "o")
        except UnicodeDecodeError:
            return
        raise AssertionError("the fast path decoded what the slow path could not") from None
    assert decode_entry(m, "o") == slow


@given(st.lists(st.sampled_from(_PIECES), max_size=24).map(b"".join))
def test_decode_entry_is_the_slow_path_on_any_pieces(data: bytes) -> None:
    _assert_fast_is_slow(_msg(data))


_TEXTY = st.binary(max_size=12) | st.sampled_from([b"", b"m", b',"channel":"x"', b"\xc3\xa9"])


@given(
    msg_id=_TEXTY,
    body=_TEXTY,
    channel=_TEXTY,
    seq=st.integers(min_value=-1, max_value=2**60),
    reason=_TEXTY,
    gen=st.integers(min_value=-(2**60), max_value=2**60),
)
def test_decode_entry_is_the_slow_path_on_near_plain_entries(
    msg_id: bytes, body: bytes, channel: bytes, seq: int, reason: bytes, gen: int
) -> None:
    _assert_fast_is_slow(_msg(_plain(msg_id, body, channel, seq, reason, gen)))


def test_a_plain_entry_takes_the_fast_shape() -> None:
    data = _plain(b"m-1", b',"channel":"c","x":1', b"c", 7, b"durable-channel", 2)
    e = decode_entry(_msg(data), "o")
    assert isinstance(e, Entry)
    assert (e.raw, e.msg_id, e.channel, e.seq, e.reason, e.generation) == (
        b'{"id":"m-1","channel":"c","x":1}',
        "m-1",
        "c",
        7,
        "durable-channel",
        2,
    )


def _record(join: int, leave: int | None) -> MembershipRecord:
    return MembershipRecord(
        channel="c",
        owner="o",
        state="durable-active",
        join_cursor=join,
        generation=1,
        writer_identity="w",
        updated_at=0,
        leave_cursor=leave,
    )


def _reply(delivered: int) -> str:
    return f"$JS.ACK.INBOX_s.reader.{delivered}.1234.99.1700000000000000000.7"


@given(
    state=st.sampled_from(["unknown", "denied", "allowed"]),
    reason=st.sampled_from(["durable-channel", "live-mention", "other", ""]),
    member=st.none()
    | st.builds(
        _record,
        st.integers(min_value=0, max_value=20),
        st.none() | st.integers(min_value=0, max_value=20),
    ),
    seq=st.integers(min_value=0, max_value=20),
    delivered=st.integers(min_value=1, max_value=READER_MAX_REDELIVERIES + 2),
    reply=st.booleans(),
)
def test_entry_action_is_gate_action_in_state(
    state: Any,
    reason: str,
    member: MembershipRecord | None,
    seq: int,
    delivered: int,
    reply: bool,
) -> None:
    m = _msg(reply=_reply(delivered) if reply else "")
    e = Entry(m, "o", b"{}", "m", "c", seq, reason, 1)
    entry = MemberEntry(member, 1) if member is not None else None
    kind = "durable-channel" if reason == "durable-channel" else "live-mention"
    want = gate_action_in_state(state, kind, member, seq, deliveries(m))  # type: ignore[arg-type]
    assert entry_action(state, e, entry) == want


_GENERATIONS = st.integers(min_value=-(2**60), max_value=2**60) | st.sampled_from(
    [True, False, None, ABSENT, 1.5, 2.0, "7", [1, 2], {"a": 1}]
)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["UA", "UB", "U-c"]),
            st.text(max_size=6) | st.integers() | st.none(),
            _GENERATIONS,
        ),
        max_size=12,
    )
)
def test_dlv_items_are_the_per_copy_items(copies: list[tuple[str, Any, Any]]) -> None:
    targets: DlvTargets = {}
    transfers = [Entry(_msg(), owner, b"{}", mid, "c", 1, "r", gen) for owner, mid, gen in copies]
    want = [
        (
            dlv_subject("s", e.owner),
            e.raw,
            plane3_msg_id(
                e.msg_id, e.owner, js_string(ABSENT if e.generation is None else e.generation)
            ),
        )
        for e in transfers
    ]
    subject = lambda owner: dlv_subject("s", owner)  # noqa: E731
    assert dlv_items(transfers, subject, targets) == want
    assert dlv_items(transfers, subject, targets) == want  # from the memo this time
