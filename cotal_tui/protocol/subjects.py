"""Subject grammar of a Cotal space (PROTOCOL.md §1.1-§1.4).

Every subject is ``cotal.<space>.<plane>.…``. Tokens are sanitized with :func:`token`, a lossy
rewrite that is never decoded back; the sender, target, role, service and owner slots go through
:func:`route_token`, which lets ``*`` through so subscribe and allow rules can use it.
:func:`parse_subject` is the single parser; the message class always comes from the subject.
"""

from __future__ import annotations

import re
from typing import Literal, NamedTuple

from cotal_tui.protocol.errors import InvalidChannel
from cotal_tui.protocol.jsstr import js_trim

ROOT = "cotal"

# Control service names (the `<service>` token of ctl.<service>.<sender>).
CONTROL_PRIVILEGED = "manager"
CONTROL_SELF_SERVICE = "self"
CONTROL_ADMIN = "admin"
CONTROL_DELIVERY = "delivery"

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")

SubjectKind = Literal["chat", "inst", "svc", "ctl"]
DeliveryKind = Literal["chat", "unicast", "anycast"]


def token(s: str) -> str:
    """Trim, then map every UTF-16 code unit outside ``[A-Za-z0-9_-]`` to ``_``; empty gives ``_``.

    Lossy on purpose: never decode a token back. An astral character is two code units in the
    reference's strings, so it becomes ``__``.
    """
    trimmed = js_trim(s)
    out = _UNSAFE.sub(lambda m: "__" if ord(m.group()) > 0xFFFF else "_", trimmed)
    return out or "_"


def route_token(s: str) -> str:
    """:func:`token` for routing slots, except an exact ``*`` passes through."""
    return "*" if s == "*" else token(s)


def space_prefix(space: str) -> str:
    return f"{ROOT}.{token(space)}"


def channel_path(channel: str) -> str:
    """The channel part of a chat subject: trimmed segments, empties dropped, ``*``/``>`` kept.

    Raises :class:`InvalidChannel` when ``>`` is not the last segment.
    """
    segments = [seg for seg in (js_trim(part) for part in channel.split(".")) if seg]
    if not segments:
        return "_"
    out: list[str] = []
    for i, seg in enumerate(segments):
        if seg == ">":
            if i != len(segments) - 1:
                raise InvalidChannel(
                    f"channel \"{channel}\": '>' is only valid as the last segment"
                )
            out.append(">")
        elif seg == "*":
            out.append("*")
        else:
            out.append(token(seg))
    return ".".join(out)


def chat_subject(space: str, sender: str, channel: str) -> str:
    """``cotal.<space>.chat.<sender>.<channel…>``: publish as self, read live with sender ``*``."""
    return f"{space_prefix(space)}.chat.{route_token(sender)}.{channel_path(channel)}"


def chat_wildcard(space: str) -> str:
    return f"{space_prefix(space)}.chat.>"


def space_wildcard(space: str) -> str:
    return f"{space_prefix(space)}.>"


def unicast_subject(space: str, target: str, sender: str) -> str:
    """``cotal.<space>.inst.<target>.<sender>``: receive ``inst.<me>.*``, send ``inst.*.<me>``."""
    return f"{space_prefix(space)}.inst.{route_token(target)}.{route_token(sender)}"


def anycast_subject(space: str, service: str, sender: str) -> str:
    return f"{space_prefix(space)}.svc.{route_token(service)}.{route_token(sender)}"


def control_service_subject(space: str, service: str, sender: str) -> str:
    return f"{space_prefix(space)}.ctl.{route_token(service)}.{route_token(sender)}"


def trace_subject(space: str, id: str) -> str:  # noqa: A002 - the reference's parameter name
    """Reserved by the reference, unused."""
    return f"{space_prefix(space)}.trace.{token(id)}"


def control_subject(space: str, id: str) -> str:  # noqa: A002
    """Reserved by the reference, unused."""
    return f"{space_prefix(space)}.control.{token(id)}"


def dinbox_subject(space: str, owner: str) -> str:
    """Plane-3 pre-auth inbox of one owner; only the delivery daemon writes it."""
    return f"{space_prefix(space)}.dinbox.{route_token(owner)}"


def dlv_subject(space: str, owner: str) -> str:
    """Plane-3 post-auth delivery lane of one owner."""
    return f"{space_prefix(space)}.dlv.{route_token(owner)}"


def delivery_request_subject(space: str, agent_id: str) -> str:
    """``cotal.<space>.ctl.delivery.<agentId>``: where an agent asks the delivery daemon."""
    return control_service_subject(space, CONTROL_DELIVERY, agent_id)


def delivery_reply_subject(space: str, agent_id: str, request_uuid: str) -> str:
    """``<request subject>.reply.<uuid>``: the one reply lane the boundReply guard accepts."""
    return f"{delivery_request_subject(space, agent_id)}.reply.{request_uuid}"


def is_bound_reply(request_subject: str, reply_subject: str | None) -> bool:
    """The daemon's confused-deputy guard: the reply must ride the requester's own subtree."""
    return bool(reply_subject) and reply_subject.startswith(f"{request_subject}.reply.")


class ParsedSubject(NamedTuple):
    """chat: sender = token 3, rest = the channel; inst/svc/ctl: rest = target/role/service."""

    kind: SubjectKind
    sender: str
    rest: str


def parse_subject(subject: str) -> ParsedSubject | None:
    parts = subject.split(".")
    if parts[0] != ROOT or len(parts) < 3:
        return None
    plane = parts[2]
    if plane == "chat":
        if len(parts) < 5:
            return None
        return ParsedSubject("chat", parts[3], ".".join(parts[4:]))
    if plane in ("inst", "svc", "ctl"):
        if len(parts) != 5:
            return None
        return ParsedSubject(plane, parts[4], parts[3])  # type: ignore[arg-type]
    return None


_DELIVERY_OF: dict[str, DeliveryKind] = {"chat": "chat", "svc": "anycast", "inst": "unicast"}


def delivery_of(subject: str) -> DeliveryKind | None:
    parsed = parse_subject(subject)
    return _DELIVERY_OF.get(parsed.kind) if parsed else None


def parse_dinbox_owner(subject: str) -> str | None:
    """The owner of ``cotal.<space>.dinbox.<owner>`` (exactly four tokens), else None."""
    parts = subject.split(".")
    if len(parts) != 4 or parts[0] != ROOT or parts[2] != "dinbox":
        return None
    return parts[3]
