"""Cotal messages in and out: building, publishing with PubAck, receive rules, dedupe (§2.3, §4.1).

Every publish goes through JetStream and waits for its PubAck with ``Nats-Msg-Id = msg.id``.
Receive rules are pure functions (:func:`check_pumped`, :func:`check_live_chat`,
:func:`check_dlv`) that say what to do with a delivery: ``emit``, ``ack`` (own echo), ``term``
(undecodable or spoofed on a durable path) or ``drop`` (live path: there is nothing to ack).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import nats.errors
import nats.js.errors

from cotal_tui.mesh.connection import Connection
from cotal_tui.protocol.errors import RecordError
from cotal_tui.protocol.models import CotalMessage, EndpointRef
from cotal_tui.protocol.names import DEDUP_ID_SET_SIZE
from cotal_tui.protocol.subjects import parse_subject

MessageKind = Literal["channel", "dm", "anycast"]
Verdict = Literal["emit", "ack", "term", "drop"]

_KIND_OF_SUBJECT: dict[str, MessageKind] = {"chat": "channel", "inst": "dm", "svc": "anycast"}


class PublishFailed(Exception):
    """A publish got no PubAck: the message was not stored, and the caller should retry or tell."""


class SpoofedSender(Exception):
    """A delivery's ``from.id`` does not match the sender token of its subject; it was dropped."""


class UndecodableMessage(Exception):
    pass


def new_message(
    space: str,
    sender: EndpointRef,
    *,
    text: str | None = None,
    parts: list[dict[str, Any]] | None = None,
    channel: str | None = None,
    to: str | None = None,
    to_service: str | None = None,
    mentions: list[str] | None = None,
    reply_to: str | None = None,
    context_id: str | None = None,
) -> CotalMessage:
    body: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "ts": int(time.time() * 1000),
        "space": space,
        "from": sender.to_wire(),
        "channel": channel,
        "to": to,
        "toService": to_service,
        "mentions": mentions,
        "parts": parts if parts is not None else [{"kind": "text", "text": text or ""}],
        "replyTo": reply_to,
        "contextId": context_id,
    }
    return CotalMessage.from_wire({k: v for k, v in body.items() if v is not None})


async def publish_message(conn: Connection, subject: str, msg: CotalMessage) -> int:
    """JetStream publish that waits for the PubAck; returns the stream sequence."""
    try:
        ack = await conn.js.publish(subject, msg.to_json(), headers={"Nats-Msg-Id": msg.id})
    except (nats.errors.TimeoutError, nats.errors.NoRespondersError) as exc:
        raise PublishFailed(
            f"message {msg.id} to {subject} got no PubAck ({type(exc).__name__}): no stream "
            "captured it, or the credential may not publish there; it was not delivered"
        ) from exc
    except nats.js.errors.APIError as exc:
        raise PublishFailed(f"message {msg.id} to {subject} was refused: {exc}") from exc
    return int(ack.seq)


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    message: CotalMessage | None = None
    kind: MessageKind | None = None
    channel: str | None = None
    error: Exception | None = None


def _decode(data: bytes) -> CotalMessage | None:
    try:
        return CotalMessage.from_json(data)
    except RecordError:
        return None


def check_pumped(subject: str, data: bytes, own_id: str) -> Decision:
    """DM and TASK pump rules: undecodable → term; spoofed → term + error; own echo → ack."""
    msg = _decode(data)
    if msg is None:
        return Decision("term", error=UndecodableMessage(f"undecodable message on {subject}"))
    parsed = parse_subject(subject)
    if parsed is None or parsed.sender != msg.from_.id:
        return Decision(
            "term",
            error=SpoofedSender(
                f"message {msg.id} on {subject} claims sender {msg.from_.id!r}; terminated"
            ),
        )
    if msg.from_.id == own_id:
        return Decision("ack", msg)
    kind = _KIND_OF_SUBJECT.get(parsed.kind)
    channel = parsed.rest if parsed.kind == "chat" else None
    return Decision("emit", msg, kind, channel)


def check_live_chat(subject: str, data: bytes, own_id: str) -> Decision:
    """Live core chat: decode errors, spoofed senders and own echoes are dropped (no ack)."""
    msg = _decode(data)
    if msg is None:
        return Decision("drop", error=UndecodableMessage(f"undecodable message on {subject}"))
    parsed = parse_subject(subject)
    if parsed is None or parsed.kind != "chat" or parsed.sender != msg.from_.id:
        return Decision(
            "drop",
            error=SpoofedSender(
                f"message {msg.id} on {subject} claims sender {msg.from_.id!r}; dropped"
            ),
        )
    if msg.from_.id == own_id:
        return Decision("drop", msg)
    return Decision("emit", msg, "channel", parsed.rest)


def check_dlv(subject: str, data: bytes, own_id: str) -> Decision:
    """DLV is written only by the daemon: no sender check; undecodable → term; own echo → ack."""
    msg = _decode(data)
    if msg is None:
        return Decision("term", error=UndecodableMessage(f"undecodable message on {subject}"))
    if msg.from_.id == own_id:
        return Decision("ack", msg)
    return Decision("emit", msg, "channel", msg.channel)


Ack = Callable[[], Awaitable[None]]


async def _noop() -> None:
    return None


@dataclass
class Inbound:
    """A message as the application sees it. ``ack``/``nak`` do nothing for non-durable copies."""

    message: CotalMessage
    kind: MessageKind
    subject: str
    historical: bool = False
    durable: bool = False
    channel: str | None = None
    seq: int | None = None
    backlog: bool = False
    """A ``dlv_`` copy that was already waiting when the endpoint started (sent while offline)."""
    _ack: Ack = field(default=_noop, repr=False)
    _nak: Ack = field(default=_noop, repr=False)
    acked: bool = False

    @property
    def id(self) -> str:
        return self.message.id

    async def ack(self) -> None:
        if not self.acked:
            self.acked = True
            await self._ack()

    async def nak(self) -> None:
        if not self.acked:
            await self._nak()


class SeenIds:
    """Ids already handled: two rotating sets, so memory stays bounded (the reference's 2×4096)."""

    def __init__(self, size: int = DEDUP_ID_SET_SIZE) -> None:
        self.size = size
        self._current: set[str] = set()
        self._previous: set[str] = set()

    def __contains__(self, msg_id: object) -> bool:
        return msg_id in self._current or msg_id in self._previous

    def add(self, msg_id: str) -> None:
        if msg_id in self:
            return
        if len(self._current) >= self.size:
            self._previous, self._current = self._current, set()
        self._current.add(msg_id)
