"""Read the delivery pipeline's progress figures from the broker (``protocol.pipeline``).

Everything is read as the caller's credential allows (PROTOCOL §8.4), and a figure it cannot
read is recorded as unknown with the reason, never guessed:

- the ``fanout`` consumer's info (``CONSUMER.INFO.CHAT_<s>.fanout``: observer, admin, manager,
  delivery; not an agent) and the timestamp of the first message past its ack floor: a
  ``STREAM.MSG.GET`` (manager, delivery) or else a one-message ephemeral consumer started at
  that sequence (observer, admin: their CHAT consumer grants);
- the ``reader`` consumer's info and the first INBOX entry past its ack floor (manager and
  delivery only: nobody else may read INBOX entries, which carry direct messages). The
  project's ``operator`` profile reads the reader's info and INBOX's STREAM.INFO only
  (:func:`_reader_by_info`): a backlog whose ack floor moved within the stall threshold is
  moving; one whose floor and newest entry are both older than it is stalled (the oldest is at
  least as old as the newest); anything else is unknown, never guessed;
- the dead-letter store's state and its latest records (manager, delivery, observer, admin);
- the consumer counts of the presence and channel-registry KV streams (every profile).

A denied request is a timeout on the wire (§10.9), so the probe does not ask what the
credential's profile (the name in its JWT, as this project and the reference mint them) cannot
do.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from cotal_tui.mesh.connection import Connection
from cotal_tui.mesh.jsapi import (
    API,
    STREAM_NOT_FOUND,
    JsApiError,
    JsApiUnavailable,
    api_request,
    consumer_info,
    delete_consumer,
    stream_info,
)
from cotal_tui.protocol.dead_letter import dead_letter_stream, reason_of_subject
from cotal_tui.protocol.names import (
    channel_bucket,
    chat_stream,
    fanout_durable,
    inbox_stream,
    presence_bucket,
    reader_durable,
)
from cotal_tui.protocol.pipeline import (
    LATEST_DEAD_LETTERS,
    NO_DEAD_LETTER_STORE,
    STALL_AFTER_MS,
    Backlog,
    DeadLetterSummary,
    PipelineFigures,
)
from cotal_tui.protocol.subjects import space_prefix
from cotal_tui.protocol.untrusted import Decoded, decode_untrusted

T = TypeVar("T")
PROBE_TIMEOUT_S = 2.0
MSG_NOT_FOUND = 10037

# What each profile may read (PROTOCOL §8.4 plus the project's dead-letter grants).
_READS: dict[str, frozenset[str]] = {
    "agent": frozenset({"consumers"}),
    "observer": frozenset({"fanout", "fanout-by-consumer", "dead", "consumers"}),
    "admin": frozenset({"fanout", "fanout-by-consumer", "dead", "consumers"}),
    "operator": frozenset({"fanout", "reader-by-info", "dead", "consumers"}),
}
_ALL = frozenset({"fanout", "reader", "dead", "consumers"})


def creds_profile(creds: str | None) -> str | None:
    """The profile name in a creds file's user JWT (None: open mode or unreadable)."""
    if not creds:
        return None
    try:
        text = Path(creds).read_text(encoding="utf-8")
        jwt = text.split("-----BEGIN NATS USER JWT-----", 1)[1].split("------END", 1)[0].strip()
        payload = jwt.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        name = claims.get("name")
        return name if isinstance(name, str) else None
    except (OSError, IndexError, ValueError):
        return None


def _now_ms() -> int:
    return int(time.time() * 1000)


async def read_pipeline(
    conn: Connection, space: str, *, creds: str | None = None, now_ms: int | None = None
) -> PipelineFigures:
    """Every figure this credential can read, the others as unknown with the reason."""
    profile = creds_profile(creds)
    can = _READS.get(profile or "", _ALL)
    now = _now_ms() if now_ms is None else now_ms
    unknown: dict[str, str] = {}
    who = f"the {profile} credential" if profile else "this credential"

    async def guarded(name: str, call: Callable[[], Awaitable[T]]) -> T | None:
        try:
            return await call()
        except (TimeoutError, JsApiError, JsApiUnavailable, OSError) as exc:
            unknown[name] = str(exc)
            return None

    fanout: Backlog | None = None
    if "fanout" in can:
        by_consumer = "fanout-by-consumer" in can
        fanout = await guarded("fanout", lambda: _fanout(conn, space, now, by_consumer))
    else:
        unknown["fanout"] = f"{who} may not read the fanout consumer on {chat_stream(space)}"
    reader: Backlog | None = None
    if "reader-by-info" in can:
        reader = await guarded("reader", lambda: _reader_by_info(conn, space, now))
    elif "reader" in can:
        reader = await guarded("reader", lambda: _reader(conn, space, now))
    else:
        unknown["reader"] = f"{who} may not read {inbox_stream(space)} (only delivery and manager)"
    dead: DeadLetterSummary | None = None
    if "dead" in can:
        dead = await guarded("deadLetters", lambda: _dead(conn, space, now))
    else:
        unknown["deadLetters"] = f"{who} may not read {dead_letter_stream(space)}"
    consumers = await guarded("consumers", lambda: _consumers(conn, space))
    return PipelineFigures(fanout, reader, dead, consumers, unknown)


async def _backlog(
    conn: Connection,
    stream: str,
    durable: str,
    filter_subject: str,
    now: int,
    by_consumer: bool,
) -> Backlog:
    info = await consumer_info(conn, stream, durable)
    if info is None:
        raise JsApiError(f"consumer {stream}/{durable}", None, "does not exist")
    pending = int(info.get("num_pending", 0)) + int(info.get("num_ack_pending", 0))
    if pending == 0:
        return Backlog(0)
    ack_floor = info.get("ack_floor") or {}
    floor = int(ack_floor.get("stream_seq", 0))
    moved = _parse_time(str(ack_floor.get("last_active") or ""))
    if by_consumer:
        ts = await _stored_at_by_consumer(conn, stream, filter_subject, floor + 1)
    else:
        ts = await _stored_at(conn, stream, filter_subject, floor + 1)
    return Backlog(
        pending,
        None if ts is None else max(0, now - ts),
        None if moved is None else max(0, now - moved),
    )


async def _fanout(conn: Connection, space: str, now: int, by_consumer: bool) -> Backlog:
    prefix = space_prefix(space)
    return await _backlog(
        conn, chat_stream(space), fanout_durable(), f"{prefix}.chat.>", now, by_consumer
    )


async def _reader(conn: Connection, space: str, now: int) -> Backlog:
    prefix = space_prefix(space)
    return await _backlog(
        conn, inbox_stream(space), reader_durable(), f"{prefix}.dinbox.>", now, False
    )


def reader_backlog_by_info(
    pending: int, floor_idle_ms: int | None, newest_age_ms: int | None
) -> Backlog | None:
    """The reader's backlog judged without reading an entry; None when it cannot be judged.

    Nothing pending is none; an ack floor that moved within the stall threshold is moving (the
    oldest's age unread); a floor idle past it while INBOX's *newest* entry is older than it too
    is stalled (every pending entry is at least that old: ``oldest_ms`` is that lower bound)."""
    if pending == 0:
        return Backlog(0)
    if floor_idle_ms is not None and floor_idle_ms <= STALL_AFTER_MS:
        return Backlog(pending, None, floor_idle_ms)
    if newest_age_ms is not None and newest_age_ms > STALL_AFTER_MS:  # floor idle or never set
        return Backlog(pending, newest_age_ms, floor_idle_ms)
    return None


async def _reader_by_info(conn: Connection, space: str, now: int) -> Backlog:
    """The reader's backlog from CONSUMER.INFO and INBOX's STREAM.INFO alone (the operator may
    not read INBOX entries). Every entry pending is at least as old as INBOX's newest, so a
    floor idle past the threshold with the newest past it too is a stall (``oldest_ms`` is then
    that lower bound); a floor that moved within it is moving (the oldest's age unread)."""
    stream = inbox_stream(space)
    info = await consumer_info(conn, stream, reader_durable())
    if info is None:
        raise JsApiError(f"consumer {stream}/{reader_durable()}", None, "does not exist")
    pending = int(info.get("num_pending", 0)) + int(info.get("num_ack_pending", 0))
    moved = _parse_time(str((info.get("ack_floor") or {}).get("last_active") or ""))
    idle = None if moved is None else max(0, now - moved)
    backlog = reader_backlog_by_info(pending, idle, None)
    if backlog is None:
        state = (await stream_info(conn, stream)).get("state") or {}
        newest = _parse_time(str(state.get("last_ts") or ""))
        at_least = None if newest is None else max(0, now - newest)
        backlog = reader_backlog_by_info(pending, idle, at_least)
    if backlog is not None:
        return backlog
    raise JsApiError(
        f"reader on {stream}",
        None,
        f"{pending} pending and its ack floor idle, but how old the oldest is cannot be read "
        "with this credential (INBOX entries carry direct messages)",
    )


def _parse_time(text: str) -> int | None:
    """An RFC 3339 time with nanoseconds (the server's) as epoch ms."""
    from datetime import datetime

    try:
        head, _, frac = text.rstrip("Z").partition(".")
        base = datetime.fromisoformat(head + "+00:00")
    except ValueError:
        return None
    ms = int((frac + "000")[:3]) if frac else 0
    return int(base.timestamp() * 1000) + ms


async def _stored_at(conn: Connection, stream: str, subject: str, seq: int) -> int | None:
    """When the first message at or after ``seq`` was stored (epoch ms); None if none is."""
    try:
        reply = await api_request(
            conn,
            f"{API}.STREAM.MSG.GET.{stream}",
            {"seq": seq, "next_by_subj": subject},
            what=f"message {seq} of {stream}",
            timeout=PROBE_TIMEOUT_S,
        )
    except JsApiError as exc:
        if exc.code == MSG_NOT_FOUND:
            return None
        raise
    return _parse_time(str((reply.get("message") or {}).get("time", "")))


async def _stored_at_by_consumer(
    conn: Connection, stream: str, subject: str, seq: int
) -> int | None:
    """Like :func:`_stored_at`, through a one-message ephemeral consumer (observer grants)."""
    name = f"progress_{uuid.uuid4().hex[:12]}"
    config = {
        "name": name,
        "deliver_policy": "by_start_sequence",
        "opt_start_seq": seq,
        "ack_policy": "none",
        "filter_subject": subject,
        "mem_storage": True,
        "num_replicas": 1,
        "inactive_threshold": 5_000_000_000,
    }
    await api_request(
        conn,
        f"{API}.CONSUMER.CREATE.{stream}",
        {"stream_name": stream, "config": config},
        what=f"progress probe on {stream}",
        timeout=PROBE_TIMEOUT_S,
    )
    nc = conn.nc
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox, max_msgs=1)
    try:
        await nc.publish(
            f"{API}.CONSUMER.MSG.NEXT.{stream}.{name}",
            json.dumps({"batch": 1, "no_wait": True}).encode(),
            reply=inbox,
        )
        msg = await sub.next_msg(timeout=PROBE_TIMEOUT_S)
        if not msg.data and (msg.headers or {}).get("Status"):
            return None
        return int(msg.metadata.timestamp.timestamp() * 1000)
    finally:
        try:
            await sub.unsubscribe()
        finally:
            try:
                await delete_consumer(conn, stream, name)
            except (JsApiError, JsApiUnavailable):
                pass  # its inactive_threshold removes it


async def _dead(conn: Connection, space: str, now: int) -> DeadLetterSummary:
    stream = dead_letter_stream(space)
    try:
        info = await stream_info(conn, stream, subjects_filter=">")
    except JsApiError as exc:
        if exc.code == STREAM_NOT_FOUND:
            return NO_DEAD_LETTER_STORE  # a space our `up` did not provision (the reference's)
        raise
    state = info.get("state") or {}
    last, first = int(state.get("last_seq", 0)), int(state.get("first_seq", 0))
    reasons: dict[str, int] = {}
    for subject, n in (state.get("subjects") or {}).items():
        reason = reason_of_subject(subject)
        reasons[reason] = reasons.get(reason, 0) + int(n)
    latest: list[dict[str, Any]] = []
    seq = last
    while seq >= max(first, 1) and len(latest) < LATEST_DEAD_LETTERS and state.get("messages"):
        try:
            reply = await api_request(
                conn,
                f"{API}.STREAM.MSG.GET.{stream}",
                {"seq": seq},
                what=f"dead letter {seq}",
                timeout=PROBE_TIMEOUT_S,
            )
        except JsApiError:
            seq -= 1
            continue
        raw = base64.b64decode((reply.get("message") or {}).get("data") or b"")
        outcome = decode_untrusted(raw)
        if isinstance(outcome, Decoded):
            latest.append(outcome.value)
        seq -= 1
    newest = latest[0].get("ts") if latest else None
    age = max(0, now - newest) if isinstance(newest, int) else None
    return DeadLetterSummary(last, reasons, latest, age)


async def _consumers(conn: Connection, space: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for bucket in (presence_bucket(space), channel_bucket(space)):
        stream = f"KV_{bucket}"
        info = await stream_info(conn, stream)
        out[stream] = int((info.get("state") or {}).get("consumer_count", 0))
    return out
