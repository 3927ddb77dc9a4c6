"""The daemon's receive path (mesh/fast_parser.py, issue 16) delivers what nats-py's parser does.

Random sequences of protocol ops (MSG, HMSG with and without status lines, +OK, PING, PONG, -ERR,
INFO, and malformed lines) are serialized, cut at random byte boundaries and fed to two nats-py
clients: one with nats-py's own ``Parser``, one that swaps in the ``FastParser`` at a random cut.
Both must make the same calls in the same order (the direct handlers included, their headers
read lazily), count the same stats, leave the subscriptions in the same state, keep the same
unparsed bytes and raise the same error on a line nats-py rejects.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.protocol.parser import Parser

from cotal_tui.mesh import fast_parser
from cotal_tui.mesh.direct_sub import _HandleAtOnce
from cotal_tui.mesh.fast_parser import FastParser, LazyMsg, parse_headers
from cotal_tui.mesh.pull import status_of

DIRECT = (1, 2)  # handled as parsed
DIRECT_LIMITED = 3  # direct, but a small pending-bytes limit: big payloads take the long way
NORMAL = 4  # an ordinary queue
MAX_MSGS = 5  # auto-unsubscribes after 2 messages
UNKNOWN = 6  # no subscription
SIDS = (*DIRECT, DIRECT_LIMITED, NORMAL, MAX_MSGS, UNKNOWN)

STATUS_BLOCKS = [
    b"NATS/1.0 503\r\n\r\n",
    b"NATS/1.0 503\r\nNats-Subject: a.b\r\n\r\n",
    b"NATS/1.0 404 No Messages\r\n\r\n",
    b"NATS/1.0 408 Request Timeout\r\nNats-Pending-Messages: 5\r\nNats-Pending-Bytes: 9\r\n\r\n",
    b"NATS/1.0 409 Consumer Deleted\r\n\r\n",
    b"NATS/1.0 409 Exceeded MaxWaiting\r\nNats-Pending-Messages: 1\r\n\r\n",
    b"NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: 3\r\nNats-Last-Stream: 7\r\n\r\n",
    b"NATS/1.0 100 FlowControl Request\r\n\r\n",
    b"NATS/1.0 100\r\n\r\n",
    b"NATS/1.0\r\nStatus: 404\r\n\r\n",
    b"NATS/1.0\r\n\r\n",
    b"NATS/1.0 abc\r\n\r\n",
]

_token = st.text(alphabet="abcxyz019_-$>*", min_size=1, max_size=6)
_subject = st.lists(_token, min_size=1, max_size=4).map(".".join)
_space = st.sampled_from([" ", "  ", "\t", " \t "])
_header_name = st.text(alphabet="ABCabc-_Nats0", min_size=1, max_size=10)
_header_value = st.text(
    alphabet=st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)), max_size=12
)


@st.composite
def header_block(draw: st.DrawFn) -> bytes:
    if draw(st.booleans()):
        return draw(st.sampled_from(STATUS_BLOCKS))
    pairs = draw(st.lists(st.tuples(_header_name, _header_value), max_size=4))
    lines = b"".join(f"{k}: {v}".encode() + b"\r\n" for k, v in pairs)
    return b"NATS/1.0\r\n" + lines + b"\r\n"


@st.composite
def message(draw: st.DrawFn) -> bytes:
    subject = draw(_subject).encode()
    sid = draw(st.sampled_from(SIDS))
    reply = draw(st.one_of(st.none(), _subject)) or ""
    payload = draw(st.binary(max_size=40) | st.sampled_from([b"", b"\r\n", b"MSG x 1 0\r\n"]))
    sp = draw(_space).encode()
    args = [subject, str(sid).encode()] + ([reply.encode()] if reply else [])
    if draw(st.booleans()):
        hdr = draw(header_block())
        size = [str(len(hdr)).encode(), str(len(hdr) + len(payload)).encode()]
        return b"HMSG " + sp.join(args + size) + b"\r\n" + hdr + payload + b"\r\n"
    return b"MSG " + sp.join(args + [str(len(payload)).encode()]) + b"\r\n" + payload + b"\r\n"


_control = st.sampled_from(
    [
        b"+OK\r\n",
        b"PING\r\n",
        b"PONG\r\n",
        b"-ERR 'Unknown Protocol Operation'\r\n",
        b"-ERR 'Permissions Violation for Subscription to \"x\"'\r\n",
        b'INFO {"server_id":"s","max_payload":1048576}\r\n',
    ]
)
_malformed = st.sampled_from(
    [
        b"FOO bar\r\n",  # unknown protocol
        b"MSG a notanumber 3\r\nabc\r\n",  # malformed MSG
        b"-ERR no quotes\r\n",  # nats-py fails on the missing quoted text
        b"INFO {not json\r\n",
        b"MSG a 1\r\n",  # not enough arguments: waits for more (then unknown)
    ]
)


@st.composite
def stream(draw: st.DrawFn) -> tuple[bytes, list[int], int]:
    ops = draw(st.lists(message() | _control, min_size=1, max_size=25))
    if draw(st.integers(0, 9)) == 0:
        ops.insert(draw(st.integers(0, len(ops))), draw(_malformed))
    data = b"".join(ops)
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=8)))
    swap_at = draw(st.integers(0, len(cuts)))  # before which chunk the fast parser comes in
    return data, cuts, swap_at


@dataclass
class Recorder:
    nc: Client
    events: list[Any] = field(default_factory=list)
    subs: dict[int, Subscription] = field(default_factory=dict)
    handlers: dict[int, Any] = field(default_factory=dict)


def _record_msg(events: list[Any], sid: int, how: str, msg: Msg) -> None:
    events.append(("msg", sid, msg.subject, msg.reply, msg.data, status_of(msg), msg.headers))
    events.append(("kind", how, msg._sid, msg._ackd, msg._metadata))


class _RecordingQueue(asyncio.Queue):  # type: ignore[type-arg]
    def __init__(self, events: list[Any], sid: int) -> None:
        super().__init__()
        self._events = events
        self._sid = sid

    def put_nowait(self, item: Msg) -> None:
        _record_msg(self._events, self._sid, "queue", item)


def client() -> Recorder:
    nc = Client()
    rec = Recorder(nc)

    async def on_err(emsg: str) -> None:
        rec.events.append(("err", emsg))

    async def on_ping() -> None:
        rec.events.append(("ping",))

    async def on_reset_ping() -> None:
        rec.events.append(("reset",))
        nc._ps.reset()

    async def on_pong() -> None:
        rec.events.append(("pong",))

    async def on_info(info: dict[str, Any]) -> None:
        rec.events.append(("info", info))

    async def on_error(exc: Exception) -> None:
        rec.events.append(("error_cb", type(exc).__name__))

    nc._process_err = on_err  # type: ignore[method-assign]
    nc._process_pong = on_pong  # type: ignore[method-assign]
    nc._process_info = on_info  # type: ignore[method-assign]
    nc._error_cb = on_error  # type: ignore[assignment]

    async def ping_or_reset() -> None:  # a PING right after a marked PONG resets the parser
        await (on_reset_ping() if rec.events and rec.events[-1] == ("marker",) else on_ping())

    nc._process_ping = ping_or_reset  # type: ignore[method-assign]

    for sid in SIDS:
        if sid == UNKNOWN:
            continue
        sub = Subscription(nc, id=sid, subject=">", max_msgs=2 if sid == MAX_MSGS else 0)
        if sid in (*DIRECT, DIRECT_LIMITED):

            def handler(msg: Msg, sid: int = sid) -> None:
                _record_msg(rec.events, sid, "direct", msg)

            sub._pending_queue = _HandleAtOnce(sub, handler)
            rec.handlers[sid] = handler
            if sid == DIRECT_LIMITED:
                sub._pending_bytes_limit = 20
        else:
            sub._pending_queue = _RecordingQueue(rec.events, sid)
        nc._subs[sid] = sub
        rec.subs[sid] = sub
    return rec


async def feed(rec: Recorder, data: bytes, cuts: list[int], swap_at: int | None) -> Any:
    chunks = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    raised = None
    for i, chunk in enumerate(chunks):
        if swap_at is not None and i == swap_at:
            fast = fast_parser.install(rec.nc)
            assert isinstance(fast, FastParser)
            for sid, handler in rec.handlers.items():
                fast.register(sid, handler)
        try:
            await rec.nc._ps.parse(chunk)
        except Exception as exc:  # noqa: BLE001 - compared between the two parsers
            raised = (type(exc).__name__, str(exc))
            break
    await asyncio.sleep(0)  # let scheduled error callbacks run
    ps = rec.nc._ps
    return (
        rec.events,
        raised,
        dict(rec.nc.stats),
        {sid: (s._received, s._pending_size, sid in rec.nc._subs) for sid, s in rec.subs.items()},
        bytes(ps.buf),
        ps.state,
        ps.needed if ps.state != 1 else None,
    )


def run_both(data: bytes, cuts: list[int], swap_at: int) -> tuple[Any, Any]:
    async def go(swap: int | None) -> Any:
        rec = client()
        return await feed(rec, data, cuts, swap)

    return asyncio.run(go(None)), asyncio.run(go(swap_at))


@settings(max_examples=400, deadline=None)
@given(stream())
def test_fast_parser_delivers_what_nats_py_delivers(case: tuple[bytes, list[int], int]) -> None:
    data, cuts, swap_at = case
    ref, fast = run_both(data, cuts, swap_at)
    assert fast == ref


@settings(max_examples=150, deadline=None)
@given(st.lists(message(), min_size=1, max_size=20), st.data())
def test_resets_mid_parse_drop_the_rest_alike(msgs: list[bytes], data: st.DataObject) -> None:
    """A PING whose handler resets the parser (as a reconnect does) drops the rest of the
    buffer in both parsers."""
    where = data.draw(st.integers(0, len(msgs)))
    ops = msgs[:where] + [b"PONG\r\n", b"PING\r\n"] + msgs[where:]
    stream_ = b"".join(ops)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream_)), max_size=4)))

    async def go(swap: bool) -> Any:
        rec = client()
        real_pong = rec.nc._process_pong

        async def pong_marks() -> None:
            await real_pong()
            rec.events.append(("marker",))

        rec.nc._process_pong = pong_marks  # type: ignore[method-assign]
        return await feed(rec, stream_, cuts, 0 if swap else None)

    ref, fast = asyncio.run(go(False)), asyncio.run(go(True))
    assert ("reset",) in ref[0]
    assert fast == ref


@settings(max_examples=300, deadline=None)
@given(header_block() | st.binary(min_size=9, max_size=60).map(lambda b: b"NATS/1.0" + b))
def test_lazy_headers_are_nats_py_headers(raw: bytes) -> None:
    async def go() -> None:
        nc = Client()
        errors: list[str] = []

        async def on_error(exc: Exception) -> None:
            errors.append(type(exc).__name__)

        nc._error_cb = on_error  # type: ignore[assignment]
        try:
            want: Any = await nc._process_headers(raw)
        except Exception as exc:  # noqa: BLE001
            want = type(exc)
        try:
            got: Any = parse_headers(nc, raw)
        except Exception as exc:  # noqa: BLE001
            got = type(exc)
        assert got == want
        if not isinstance(want, type):
            lazy = LazyMsg(nc, "s", "", b"", raw, 1)
            assert lazy.status() == (want.get("Status") if want else None)
            assert lazy.headers == want

    asyncio.run(go())


def test_install_refuses_a_client_it_was_not_written_for() -> None:
    async def go() -> None:
        nc = Client()
        nc.msg_class = type("OtherMsg", (Msg,), {})  # type: ignore[assignment]
        assert fast_parser.install(nc) is None
        assert type(nc._ps) is Parser
        nc = Client()
        first = fast_parser.install(nc)
        assert isinstance(first, FastParser)
        assert fast_parser.install(nc) is first

    asyncio.run(go())


def test_a_failing_direct_handler_does_not_stop_the_parse() -> None:
    async def go() -> None:
        rec = client()
        fast = fast_parser.install(rec.nc)
        assert fast is not None
        seen: list[bytes] = []

        def bad(msg: Msg) -> None:
            seen.append(msg.data)
            raise ValueError("boom")

        fast.register(1, bad)
        await fast.parse(b"MSG a 1 2\r\nhi\r\nMSG a 1 3\r\nyou\r\nMSG b 4 1\r\nx\r\n")
        assert seen == [b"hi", b"you"]
        assert [e[1:3] for e in rec.events if e[0] == "msg"] == [(4, "b")]
        assert rec.nc.stats["in_msgs"] == 3
        assert rec.subs[1]._received == 2

    asyncio.run(go())


def test_a_bad_line_after_a_long_buffer_is_rejected_alike() -> None:
    """nats-py judges an unknown line by what is left of its buffer (under 4 KiB and holding a
    CRLF): the fast parser, trimming once per call, must judge by the same remainder."""
    msgs = b"".join(b"MSG s.%d %d 5\r\nhello\r\n" % (i, 1 + i % 5) for i in range(1000))
    data = msgs + b"FOO bar\r\n"
    assert len(data) > 3 * 4096
    ref, fast = run_both(data, [], 0)
    assert ref[1] is not None and ref[1][0] == "ProtocolError"
    assert fast == ref


@settings(max_examples=150, deadline=None)
@given(st.lists(message(), min_size=1, max_size=20), st.data())
def test_installed_while_nats_py_parses_takes_over_its_bytes(
    msgs: list[bytes], data: st.DataObject
) -> None:
    """Installed from inside nats-py's parse() (here: while it hands over a PING), the fast
    parser takes over that parser's unparsed bytes and state at the next read."""
    where = data.draw(st.integers(0, len(msgs)))
    stream_ = b"".join(msgs[:where] + [b"PING\r\n"] + msgs[where:])
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream_)), max_size=4)))

    async def go(swap: bool) -> Any:
        rec = client()

        async def ping() -> None:
            rec.events.append(("ping",))
            if swap:
                fast = fast_parser.install(rec.nc)
                assert isinstance(fast, FastParser)
                for sid, handler in rec.handlers.items():
                    fast.register(sid, handler)

        rec.nc._process_ping = ping  # type: ignore[method-assign]
        return await feed(rec, stream_, cuts, None)

    ref, fast = asyncio.run(go(False)), asyncio.run(go(True))
    assert fast == ref
