"""The daemon's hot-path shortcuts (issue 16) give exactly what the long way gives.

- ``ack_subject``: the delivery count and stream sequence read off the ack subject equal what
  nats-py's ``Msg.metadata`` parses (v1 and v2 forms);
- ``fanout.entry_head + entry_tail`` is byte for byte ``entry_payload``;
- the reader's anchored-regex read of an entry's tail decodes to the same entry as the decoding
  rule, and whatever the regex does not take still goes through the rule (refusals included).
"""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st
from nats.aio.msg import Msg

from cotal_tui.delivery.daemon_context import entry_payload
from cotal_tui.delivery.fanout import entry_head, entry_tail
from cotal_tui.delivery.reader import Entry, _entry, decode_entry
from cotal_tui.mesh.ack_subject import ack_numbers, deliveries, stream_seq
from cotal_tui.protocol.untrusted import Decoded, Refused, decode_untrusted

V1 = "$JS.ACK.INBOX_s.reader.3.1234.99.1700000000000000000.7"
V2 = "$JS.ACK.hub.ACCHASH.INBOX_s.reader.2.555.12.1700000000000000000.0.tok"
V2_SHORT = "$JS.ACK.hub.ACCHASH.INBOX_s.reader.5.77.12.1700000000000000000.0"


def _msg(data: bytes = b"", reply: str = "", subject: str = "x") -> Msg:
    return Msg(_client=None, subject=subject, reply=reply, data=data)  # type: ignore[arg-type]


def test_ack_subject_numbers_match_nats_py_metadata() -> None:
    for reply in (V1, V2, V2_SHORT):
        m = _msg(reply=reply)
        meta = Msg.Metadata._from_reply(reply)
        assert ack_numbers(m) == (meta.num_delivered, meta.sequence.stream)
        assert deliveries(m) == meta.num_delivered
        assert stream_seq(m) == meta.sequence.stream


def test_ack_subject_without_metadata() -> None:
    for reply in ("", "_INBOX.abc", "$JS.ACK.too.short"):
        m = _msg(reply=reply)
        assert ack_numbers(m) is None
        assert deliveries(m) == 1
        assert stream_seq(m) == 0


@given(
    channel=st.text(min_size=1, max_size=20),
    seq=st.integers(min_value=0, max_value=2**53),
    reason=st.sampled_from(["durable-channel", "live-mention"]),
    generation=st.integers(min_value=0, max_value=2**40),
)
def test_entry_head_and_tail_are_entry_payload(
    channel: str, seq: int, reason: str, generation: int
) -> None:
    raw = b'{"id":"m1","channel":"x"}'
    built = entry_head(raw, channel, seq) + entry_tail(reason, generation)
    assert built == entry_payload(raw, channel, seq, reason, generation)


def _slow(m: Msg, owner: str) -> Entry | Refused:
    """The decoding rule over the whole tail, as before the regex (the reference's path)."""
    data = m.data
    cut = data.rfind(b',"channel":')
    raw = data[len(b'{"msg":') : cut]
    tail = decode_untrusted(b"{" + data[cut + 1 :])
    assert isinstance(tail, Decoded)
    return _entry(m, owner, tail.value, raw, json.loads(raw)["id"])


@given(
    channel=st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12),
    seq=st.integers(min_value=0, max_value=2**53),
    reason=st.sampled_from(["durable-channel", "live-mention", "other"]),
    generation=st.integers(min_value=-5, max_value=2**40),
)
def test_fast_tail_reads_what_the_rule_reads(
    channel: str, seq: int, reason: str, generation: int
) -> None:
    raw = b'{"id":"m-1","channel":"c","parts":[]}'
    data = entry_head(raw, channel, seq) + entry_tail(reason, generation)
    m = _msg(data, subject="cotal.s.dinbox.o")
    fast = decode_entry(m, "o")
    assert isinstance(fast, Entry)
    assert fast == _slow(m, "o")


def test_tails_the_regex_does_not_take_still_follow_the_rule() -> None:
    head = b'{"msg":{"id":"m-1"}'
    cases = {
        # escapes and other layouts: decoded by the rule, same entry as a plain tail would give
        b',"channel":"c\\u0068","seq":5,"reason":"durable-channel","generation":1}': "ch",
        b',"channel":"c", "seq":5,"reason":"durable-channel","generation":1}': "c",
        b',"channel":"c","seq":5.0,"reason":"durable-channel","generation":1}': "c",
    }
    for tail, channel in cases.items():
        e = decode_entry(_msg(head + tail), "o")
        assert isinstance(e, Entry), tail
        assert (e.channel, e.seq, e.generation) == (channel, 5, 1)
    # a tail the rule refuses is refused (no seq) or falls back to the full decode
    bad = decode_entry(_msg(head + b',"channel":"c","reason":"x","generation":1}'), "o")
    assert isinstance(bad, Refused)
    assert bad.reason == "invalid-record"
    bad_utf8 = decode_entry(
        _msg(head + b',"channel":"\xff","seq":1,"reason":"x","generation":1}'), "o"
    )
    assert isinstance(bad_utf8, Refused)


@given(st.text(max_size=30))
def test_header_value_is_what_publish_writes(value: str) -> None:
    """nats-py's publish(): ``v.strip().translate(CR/LF → space)``, always; ours only when the
    value needs it, with the same result."""
    from nats.aio.client import _HEADER_VALUE_NEWLINES

    from cotal_tui.mesh.batch_send import header_value

    assert header_value(value) == value.strip().translate(_HEADER_VALUE_NEWLINES).encode()


# Every character str.isspace() calls whitespace, and some it does not (U+200B, U+FEFF).
_SPACEY = st.text(
    alphabet=st.sampled_from(
        [chr(c) for c in range(0x110000) if chr(c).isspace()] + ["a", ":", "\u200b", "\ufeff"]
    ),
    max_size=8,
)


@given(st.tuples(_SPACEY, st.text(max_size=12), _SPACEY).map("".join))
def test_header_value_at_whitespace_edges(value: str) -> None:
    """Whitespace and line breaks at either end or inside, of every kind str.strip() knows."""
    from nats.aio.client import _HEADER_VALUE_NEWLINES

    from cotal_tui.mesh.batch_send import header_value

    assert header_value(value) == value.strip().translate(_HEADER_VALUE_NEWLINES).encode()


@given(
    subject=st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=20),
    prefix=st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20),
    token=st.integers(min_value=0, max_value=2**63),
    msg_id=st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30),
    payload=st.binary(max_size=64),
)
def test_hpub_from_bytes_is_hpub_with_msg_id(
    subject: str, prefix: str, token: int, msg_id: str, payload: bytes
) -> None:
    """The batch path's command (memoized subject bytes, integer token, cleaned id) is byte for
    byte the command ``publish()`` would send."""
    from cotal_tui.mesh.batch_send import header_value, hpub_encoded, hpub_with_msg_id

    fast = hpub_encoded(subject.encode(), prefix.encode(), token, header_value(msg_id), payload)
    assert fast == hpub_with_msg_id(subject, prefix + str(token), msg_id, payload)


class _RecordingClient:
    """What send_commands touches of a connected nats-py client, recording the chunks."""

    is_closed = False
    is_draining_pubs = False
    is_connected = True
    _flush_queue = None

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.stats = {"out_msgs": 0}

    async def _send_command(self, cmd: bytes) -> None:
        self.chunks.append(cmd)


@given(st.lists(st.integers(min_value=1, max_value=200_000), max_size=12), st.booleans())
def test_send_commands_hands_over_the_chunks_of_chunks(sizes: list[int], known: bool) -> None:
    """With or without the caller's total, the client gets exactly _chunks(commands)."""
    import asyncio

    from cotal_tui.mesh.batch_send import _chunks, send_commands

    commands = [bytes([65 + i % 26]) * n for i, n in enumerate(sizes)]
    nc = _RecordingClient()
    size = sum(sizes) if known else None
    asyncio.run(send_commands(nc, commands, messages=len(commands), size=size))  # type: ignore[arg-type]
    assert nc.chunks == list(_chunks(commands))
