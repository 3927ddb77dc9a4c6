"""nats-py's protocol parser, cheaper per message, with synchronous delivery to direct handlers.

nats-py's :class:`~nats.protocol.parser.Parser` deletes every message from the front of its
buffer as it parses it (a copy of the rest of the buffer each time) and awaits
``Client._process_msg`` per message, which parses the header block into a dict and builds a
``Msg`` before the subscription's queue sees it. For the delivery daemon (an INBOX entry and two
PubAcks per copy) that was the largest share of its busy time in a profile.

:class:`FastParser` parses the same protocol with the same regular expressions, walking an
offset over the buffer and trimming it once per ``parse()`` call. Every op is handed to the
client exactly as nats-py's parser hands it (``_process_msg``, ``_process_err``,
``_process_ping``, ``_process_pong``, ``_process_info``), except messages for sids registered
with :meth:`FastParser.register` (the subscriptions of :func:`~cotal_tui.mesh.direct_sub.
subscribe_direct`): those are counted as ``_process_msg`` counts them and handed to their handler
at once as a :class:`LazyMsg`, whose headers are parsed only when read. A message that needs
anything ``_process_msg`` does beyond that (a JetStream subscription, an old-style request, a
``max_msgs`` limit, a pending-bytes limit it would cross) takes the ordinary path. Where nats-py
would let an exception out of ``_process_msg`` and so end its read loop (a subject that is not
UTF-8, a header block too short to read), a direct message's error stays with that message: it
is logged, or raised to the handler that reads the headers.

:func:`install` swaps it in for a client's parser only when the client is the nats-py this was
written against (same parser class, regular expressions, ``Msg`` fields, no ``fast_mail_parser``);
otherwise it returns None and the client keeps its parser.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
from collections.abc import Callable
from typing import Any

import nats.aio.client as nats_client
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import ProtocolError
from nats.js.api import Header
from nats.protocol import parser as nats_parser
from nats.protocol.parser import (
    AWAITING_CONTROL_LINE,
    AWAITING_MSG_PAYLOAD,
    MAX_CONTROL_LINE_SIZE,
    Parser,
)

log = logging.getLogger(__name__)

Handler = Callable[[Msg], None]

_CRLF = b"\r\n"
_M = ord("M")
_H = ord("H")
_SPACE = 32
_HDR_LINE_SIZE = len(b"NATS/1.0")
_STATUS_LEN = 3
_STATUS = Header.STATUS.value
_DESCRIPTION = Header.DESCRIPTION
_MSG_FIELDS = ("_client", "subject", "reply", "data", "headers", "_metadata", "_ackd", "_sid")


def _unanchored(pattern: re.Pattern[bytes]) -> re.Pattern[bytes] | None:
    """nats-py's pattern without its leading ``\\A``: ``match(buf, pos)`` anchors it at pos."""
    if not pattern.pattern.startswith(b"\\A"):
        return None
    return re.compile(pattern.pattern[2:], pattern.flags)


_PATTERNS = {
    name: _unanchored(getattr(nats_parser, name, re.compile(b"")))
    for name in ("MSG_RE", "HMSG_RE", "OK_RE", "ERR_RE", "PING_RE", "PONG_RE", "INFO_RE")
}
_MSG = _PATTERNS["MSG_RE"]
_HMSG = _PATTERNS["HMSG_RE"]
_OK = _PATTERNS["OK_RE"]
_ERR = _PATTERNS["ERR_RE"]
_PING = _PATTERNS["PING_RE"]
_PONG = _PATTERNS["PONG_RE"]
_INFO = _PATTERNS["INFO_RE"]


def parse_headers(nc: Any, raw: bytes | None) -> dict[str, str] | None:
    """``Client._process_headers`` of nats-py 2.16 (without ``fast_mail_parser``), synchronous:
    a failure of the header-line parser goes to the client's error callback in a task."""
    if not raw:
        return None
    hdr: dict[str, str] | None = None
    raw_headers = raw[_HDR_LINE_SIZE:]
    if raw_headers[0] == _SPACE:  # inline status: NATS/1.0 503\r\n\r\n
        line = raw[_HDR_LINE_SIZE + 1 :]
        status = line[:_STATUS_LEN]
        desc = line[_STATUS_LEN + 1 : len(line) - 4]
        stripped_status = status.strip().decode()
        hdr = {}
        if stripped_status.isdigit():
            hdr[_STATUS] = stripped_status
        i = raw_headers.find(_CRLF)
        raw_headers = raw_headers[i + 2 :]
        if len(desc) > 0:
            i = desc.find(_CRLF)
            if i > 0:
                hdr[_DESCRIPTION] = desc[:i].decode()
                hdr.update(nc._parse_header_lines(desc[i + 2 :]))
            else:
                hdr[_DESCRIPTION] = desc.decode()
    if not len(raw_headers) > 2:
        return hdr
    try:
        parsed = nc._parse_header_lines(raw[_HDR_LINE_SIZE + 2 :])
        if hdr:
            hdr.update(parsed)
        else:
            hdr = parsed
    except Exception as exc:  # noqa: BLE001 - as nats-py: reported, the headers so far kept
        _report(nc, exc)
        return hdr
    return hdr or None


def _report(nc: Any, exc: Exception) -> None:
    try:
        asyncio.get_running_loop().create_task(nc._error_cb(exc))
    except Exception:  # noqa: BLE001 - no loop or no callback: logged instead
        log.warning("nats message headers unreadable: %s", exc)


class LazyMsg(Msg):
    """A ``Msg`` whose ``headers`` dict is built from the raw header block on first read."""

    def __init__(
        self, client: Any, subject: str, reply: str, data: bytes, raw: bytes | None, sid: int
    ) -> None:
        self._client = client
        self.subject = subject
        self.reply = reply
        self.data = data
        self._raw_headers = raw
        self._headers: dict[str, str] | None = None
        self._metadata = None
        self._ackd = False
        self._sid = sid

    @property  # type: ignore[override]
    def headers(self) -> dict[str, str] | None:
        raw = self._raw_headers
        if raw is not None:
            self._headers = parse_headers(self._client, raw)
            self._raw_headers = None
        return self._headers

    @headers.setter
    def headers(self, value: dict[str, str] | None) -> None:
        self._raw_headers = None
        self._headers = value

    def status(self) -> str | None:
        """``headers.get("Status")`` (None without headers), without building the dict when the
        block cannot hold a status (no inline status, no ``Status`` line)."""
        raw = self._raw_headers
        if (
            raw is not None
            and len(raw) > _HDR_LINE_SIZE
            and raw[_HDR_LINE_SIZE] != _SPACE
            and b"Status" not in raw
        ):
            return None
        headers = self.headers
        return headers.get(_STATUS) if headers else None


def header_status(msg: Msg) -> str | None:
    """The ``Status`` header of ``msg`` (None without one), cheaply for a :class:`LazyMsg`."""
    if type(msg) is LazyMsg:
        return msg.status()
    headers = msg.headers
    return headers.get(_STATUS) if headers else None


def _supported(nc: Any) -> bool:
    if any(p is None for p in _PATTERNS.values()):
        return False
    if getattr(nats_client, "parse_email", None) is not None:
        return False
    if getattr(nc, "msg_class", None) is not Msg:
        return False
    if tuple(f.name for f in dataclasses.fields(Msg)) != _MSG_FIELDS:
        return False
    needed = ("_process_msg", "_process_err", "_process_ping", "_process_pong", "_process_info")
    needed += ("_subs", "stats", "_error_cb", "_parse_header_lines")
    if not all(hasattr(nc, name) for name in needed):
        return False
    ps = getattr(nc, "_ps", None)
    return all(hasattr(ps, a) for a in ("buf", "state", "needed", "header_needed", "msg_arg"))


def install(nc: Client) -> FastParser | None:
    """Give ``nc`` a :class:`FastParser` (or return the one it has); None if this nats-py is not
    the one it was written against (the client keeps its own parser)."""
    ps = getattr(nc, "_ps", None)
    if isinstance(ps, FastParser):
        return ps
    if type(ps) is not Parser or not _supported(nc):
        return None
    fast = FastParser(nc, previous=ps)
    nc._ps = fast
    return fast


class FastParser(Parser):
    def __init__(self, nc: Any = None, previous: Parser | None = None) -> None:
        self._previous: Parser | None = None
        super().__init__(nc)
        self.direct: dict[int, Handler] = {}
        # The parser this one replaced: its unparsed bytes and state are taken over at the next
        # parse() (the read loop may be inside its parse() right now; it finishes there first).
        self._previous = previous

    def reset(self) -> None:
        super().reset()
        previous, self._previous = self._previous, None
        if previous is not None:
            previous.reset()

    def register(self, sid: int, handler: Handler) -> None:
        """Hand messages for ``sid`` to ``handler`` as they are parsed (a sid never comes back:
        nats-py numbers subscriptions up from 1)."""
        subs = self.nc._subs
        for gone in [s for s in self.direct if s not in subs]:
            del self.direct[gone]
        self.direct[sid] = handler

    def _adopt(self, previous: Parser) -> None:
        self._previous = None
        self.buf = previous.buf
        self.state = previous.state
        self.needed = previous.needed
        self.header_needed = previous.header_needed
        self.msg_arg = dict(previous.msg_arg)
        previous.buf = bytearray()

    def _direct(self, sid: int, size: int) -> Handler | None:
        """The handler for a message of ``size`` bytes on ``sid`` when it may skip
        ``_process_msg``: nothing that function does beyond counting applies to it."""
        handler = self.direct.get(sid)
        if handler is None:
            return None
        sub = self.nc._subs.get(sid)
        if sub is None:
            del self.direct[sid]
            return None
        if sub._max_msgs > 0 or sub._jsi is not None or sub._future is not None:
            return None
        limit = sub._pending_bytes_limit
        if limit > 0 and sub._pending_size + size >= limit:
            return None  # nats-py reports a slow consumer
        return handler

    async def parse(self, data: bytes = b"") -> None:
        previous = self._previous
        if previous is not None:
            self._adopt(previous)
        buf = self.buf
        buf.extend(data)
        n = len(buf)  # nothing else changes it while this runs (a reset replaces it)
        nc = self.nc
        subs = nc._subs
        stats = nc.stats
        direct = self.direct
        msg_match = _MSG.match  # type: ignore[union-attr]
        hmsg_match = _HMSG.match  # type: ignore[union-attr]
        pos = 0
        state = self.state
        needed = self.needed
        header_needed = self.header_needed
        arg = self.msg_arg
        subject = reply = b""
        sid = 0
        if state == AWAITING_MSG_PAYLOAD:
            subject, sid, reply = arg["subject"], arg["sid"], arg["reply"]
        try:
            while True:
                if state == AWAITING_MSG_PAYLOAD:
                    end = pos + needed
                    if n - end < 2:
                        break  # wait for the rest of the payload
                    hdr: bytes | None
                    if header_needed > 0:
                        hdr = bytes(buf[pos : pos + header_needed])
                        payload = bytes(buf[pos + header_needed : end])
                        header_needed = 0
                    else:
                        hdr = None
                        payload = bytes(buf[pos:end])
                    pos = end + 2
                    state = AWAITING_CONTROL_LINE
                    if sid in direct:
                        size = len(payload)
                        handler = self._direct(sid, size)
                        if handler is not None:
                            # _process_msg's counting; the queue's pending bytes net to zero
                            stats["in_msgs"] += 1
                            stats["in_bytes"] += size
                            subs[sid]._received += 1
                            try:
                                handler(
                                    LazyMsg(nc, subject.decode(), reply.decode(), payload, hdr, sid)
                                )
                            except Exception:  # noqa: BLE001 - one bad message must not stop the read loop
                                log.exception("handling a message on %r failed", subject)
                            if self.buf is not buf:
                                return  # a handler reset the parser
                            continue
                    await nc._process_msg(sid, subject, reply, payload, hdr)
                    if self.buf is not buf:
                        return  # reset while it ran
                    continue

                if pos >= n:
                    break
                first = buf[pos]
                if first == _M:
                    msg = msg_match(buf, pos)
                    if msg:
                        try:
                            subject, sid_text, _, reply_or_none, needed_bytes = msg.groups()
                            sid = int(sid_text)
                            reply = reply_or_none if reply_or_none else b""
                            needed = int(needed_bytes)
                        except Exception:
                            raise ProtocolError("nats: malformed MSG") from None
                        pos = msg.end()
                        state = AWAITING_MSG_PAYLOAD
                        continue
                elif first == _H:
                    msg = hmsg_match(buf, pos)
                    if msg:
                        try:
                            subject, sid_text, _, reply_or_none, hsize, needed_bytes = msg.groups()
                            sid = int(sid_text)
                            reply = reply_or_none if reply_or_none else b""
                            needed = int(needed_bytes)
                            header_needed = int(hsize)
                        except Exception:
                            raise ProtocolError("nats: malformed MSG") from None
                        pos = msg.end()
                        state = AWAITING_MSG_PAYLOAD
                        continue

                ok = _OK.match(buf, pos)  # type: ignore[union-attr]
                if ok:
                    pos = ok.end()
                    continue

                err = _ERR.match(buf, pos)  # type: ignore[union-attr]
                if err:
                    emsg = err.groups()[0].decode().lower()
                    await nc._process_err(emsg)
                    if self.buf is not buf:
                        return
                    pos = err.end()
                    continue

                ping = _PING.match(buf, pos)  # type: ignore[union-attr]
                if ping:
                    pos = ping.end()
                    await nc._process_ping()
                    if self.buf is not buf:
                        return
                    continue

                pong = _PONG.match(buf, pos)  # type: ignore[union-attr]
                if pong:
                    pos = pong.end()
                    await nc._process_pong()
                    if self.buf is not buf:
                        return
                    continue

                info = _INFO.match(buf, pos)  # type: ignore[union-attr]
                if info:
                    srv_info = json.loads(info.groups()[0].decode())
                    await nc._process_info(srv_info)
                    if self.buf is not buf:
                        return
                    pos = info.end()
                    continue

                if n - pos < MAX_CONTROL_LINE_SIZE and buf.find(_CRLF, pos) >= 0:
                    raise ProtocolError("nats: unknown protocol")
                break  # a split control line: wait for more bytes
        finally:
            if self.buf is buf:  # not reset meanwhile: keep what is left and where we are
                if pos:
                    del buf[:pos]
                self.state = state
                self.needed = needed
                self.header_needed = header_needed
                if state == AWAITING_MSG_PAYLOAD:
                    arg["subject"], arg["sid"], arg["reply"] = subject, sid, reply
