"""The control plane: plain core request/reply on ``ctl.<service>.<sender>`` (§4.2, §5.2, §10.4).

:func:`serve_control` runs the server side with the sender check and, for services that reply
on a bound lane (``ctl.delivery``), the boundReply guard first. :func:`request_named_reply` is
the non-multiplexed request the delivery client needs: it subscribes to the reply subject the
caller chose, publishes, and turns a ``503`` status into :class:`NoResponders` (distinct from
:class:`RequestTimeout`).
"""

from __future__ import annotations

import contextlib
import inspect
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import nats.errors
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from cotal_tui.mesh.connection import Connection
from cotal_tui.protocol.delivery import SENDER_MISMATCH, check_sender
from cotal_tui.protocol.errors import RecordError
from cotal_tui.protocol.models import ControlReply, ControlRequest, EndpointRef
from cotal_tui.protocol.subjects import control_service_subject, is_bound_reply


class ControlError(Exception):
    """Base of control-plane failures."""


class NoResponders(ControlError):
    """Nobody serves the subject: the broker answered 503 at once."""


class RequestTimeout(ControlError):
    """A responder may exist but no reply came in time (or the reply was dropped by a guard)."""


class ControlRefused(ControlError):
    """The service replied ``ok: false``; the message is the service's error string."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


class UnboundReplyDropped(ControlError):
    """A request whose reply subject is outside the requester's own lane; dropped silently."""


@dataclass(frozen=True)
class ControlCall:
    """What a handler receives: the parsed request and the authenticated subject sender."""

    request: ControlRequest
    sender: str
    subject: str


ControlHandler = Callable[[ControlCall], Any | Awaitable[Any]]


class ControlServer:
    def __init__(self, sub: Subscription, subject: str) -> None:
        self._sub = sub
        self.subject = subject

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await self._sub.unsubscribe()


async def serve_control(
    conn: Connection,
    space: str,
    service: str,
    handler: ControlHandler,
    *,
    bound_reply: bool = False,
    queue: str = "",
    on_error: Callable[[Exception], None] | None = None,
) -> ControlServer:
    """Subscribe ``cotal.<space>.ctl.<service>.*`` and answer each request with a ControlReply.

    Order per request: boundReply guard (when asked), decode, sender check, handler. A handler
    result becomes ``{ok: true, data}``; an exception becomes ``{ok: false, error: str(exc)}``.
    """
    nc = conn.nc
    subject = control_service_subject(space, service, "*")

    async def on_msg(msg: Msg) -> None:
        if bound_reply and not is_bound_reply(msg.subject, msg.reply):
            if on_error is not None:
                on_error(
                    UnboundReplyDropped(
                        f"dropped a {service} request on {msg.subject}: reply subject "
                        f"{msg.reply!r} is not under {msg.subject}.reply."
                    )
                )
            return
        if not msg.reply:
            return
        reply = await _answer(msg, handler)
        with contextlib.suppress(Exception):
            await nc.publish(msg.reply, reply.to_json())

    sub = await nc.subscribe(subject, queue=queue, cb=on_msg)
    await nc.flush()  # the server knows the subscription before anyone is told it serves
    return ControlServer(sub, subject)


async def _answer(msg: Msg, handler: ControlHandler) -> ControlReply:
    try:
        req = ControlRequest.from_json(msg.data)
    except RecordError as exc:
        return ControlReply.failure(str(exc))
    mismatch = check_sender(msg.subject, req)
    if mismatch is not None:
        return ControlReply.failure(mismatch)
    try:
        result = handler(ControlCall(req, req.from_.id, msg.subject))
        if inspect.isawaitable(result):
            result = await result
    except Exception as exc:  # noqa: BLE001 - the error text is the reply
        return ControlReply.failure(str(exc) or type(exc).__name__)
    if isinstance(result, ControlReply):
        return result
    return ControlReply.success(result)


def _is_no_responders(msg: Msg) -> bool:
    return not msg.data and (msg.headers or {}).get("Status") == "503"


async def request_named_reply(
    conn: Connection, subject: str, payload: bytes, reply_subject: str, timeout: float
) -> Msg:
    """Request with an explicit reply subject (nats.js ``noMux``); 503 → :class:`NoResponders`."""
    nc = conn.nc
    sub = await nc.subscribe(reply_subject, max_msgs=1)
    try:
        await nc.publish(subject, payload, reply=reply_subject)
        try:
            msg = await sub.next_msg(timeout=timeout)
        except (nats.errors.TimeoutError, TimeoutError) as exc:
            raise RequestTimeout(
                f"no reply on {reply_subject} within {timeout:g}s to the request on {subject}"
            ) from exc
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
    if _is_no_responders(msg):
        raise NoResponders(f"no responders on {subject}: nothing serves it right now")
    return msg


def _reply_of(data: bytes, subject: str) -> ControlReply:
    try:
        return ControlReply.from_json(data)
    except RecordError as exc:
        raise ControlError(f"undecodable reply to {subject}: {exc}") from exc


async def request_control(
    conn: Connection,
    space: str,
    service: str,
    sender: EndpointRef,
    op: str,
    args: dict[str, Any] | None = None,
    *,
    timeout: float = 5.0,
) -> ControlReply:
    """A manager-tier request: muxed ``_INBOX`` reply. Returns the reply, ok or not."""
    subject = control_service_subject(space, service, sender.id)
    req = ControlRequest.model_validate({"op": op, "args": args, "from": sender})
    try:
        msg = await conn.nc.request(subject, req.to_json(), timeout=timeout)
    except nats.errors.NoRespondersError as exc:
        raise NoResponders(f"no responders on {subject}: nothing serves {service}") from exc
    except (nats.errors.TimeoutError, TimeoutError) as exc:
        raise RequestTimeout(f"no reply from {service} on {subject} within {timeout:g}s") from exc
    return _reply_of(msg.data, subject)


async def request_bound(
    conn: Connection,
    space: str,
    service: str,
    sender: EndpointRef,
    op: str,
    args: dict[str, Any] | None = None,
    *,
    timeout: float = 5.0,
) -> ControlReply:
    """A request on the requester's bound reply lane ``<subject>.reply.<uuid>`` (ctl.delivery)."""
    subject = control_service_subject(space, service, sender.id)
    reply = f"{subject}.reply.{uuid.uuid4()}"
    body = {"op": op, "args": args if args is not None else {}, "from": sender}
    req = ControlRequest.model_validate(body)
    msg = await request_named_reply(conn, subject, req.to_json(), reply, timeout)
    return _reply_of(msg.data, subject)


__all__ = [
    "SENDER_MISMATCH",
    "ControlCall",
    "ControlError",
    "ControlRefused",
    "ControlServer",
    "NoResponders",
    "RequestTimeout",
    "UnboundReplyDropped",
    "request_bound",
    "request_control",
    "request_named_reply",
    "serve_control",
]
