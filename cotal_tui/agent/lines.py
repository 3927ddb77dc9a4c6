"""The JSON-lines protocol of ``cotal-tui agent`` (pure: no I/O).

One JSON object per line each way. Stdin carries commands ``{"op": OP, ...}`` with an optional
``"id"`` (any JSON value) echoed in the reply; stdout carries exactly one reply per command,
``{"reply": OP, "id": ..., "ok": true|false, ...}`` (``error`` in words when not ok), and events
``{"event": KIND, ...}`` as they happen. The first line out is always the ``hello`` event, with
``protocol`` = :data:`PROTOCOL` and ``version`` = :data:`VERSION`; a change that breaks a
reader bumps the version.

:func:`parse_command` never raises: a line that is not JSON, not an object, names an unknown op
or misses a field gives a :class:`BadLine` whose :meth:`BadLine.reply` says what was wrong.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from cotal_tui.protocol.models import CotalMessage

PROTOCOL = "cotal-tui-agent"
VERSION = 1

Via = Literal["live", "durable", "backlog", "backfill"]
STATUSES = ("idle", "waiting", "working")

# op -> (required string fields, optional fields)
OPS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "join": (("channel",), ()),
    "leave": (("channel",), ()),
    "send": (("channel", "text"), ("mentions",)),
    "dm": (("to", "text"), ()),
    "status": ((), ("status", "activity")),
    "channels": ((), ()),
    "roster": ((), ()),
    "health": ((), ()),
    "quit": ((), ()),
}


@dataclass(frozen=True)
class Command:
    op: str
    args: dict[str, Any] = field(default_factory=dict)
    id: Any = None

    def reply(self, ok: bool = True, **fields: Any) -> dict[str, Any]:
        return reply(self.op, self.id, ok, **fields)

    def error(self, text: str) -> dict[str, Any]:
        return reply(self.op, self.id, False, error=text)


@dataclass(frozen=True)
class BadLine:
    """A line that is not a command; ``op``/``id`` are what could be read of it."""

    error: str
    op: str | None = None
    id: Any = None

    def reply(self) -> dict[str, Any]:
        return reply(self.op, self.id, False, error=self.error)


def reply(op: str | None, cmd_id: Any, ok: bool, **fields: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"reply": op, "id": cmd_id, "ok": ok}
    out.update({k: v for k, v in fields.items() if v is not None})
    return out


def encode(obj: dict[str, Any]) -> str:
    """One line of JSON (no newline inside; non-ASCII kept as is)."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def _snippet(line: str) -> str:
    return line if len(line) <= 40 else line[:37] + "..."


def parse_command(line: str) -> Command | BadLine:
    line = line.strip()
    try:
        data = json.loads(line)
    except ValueError as exc:
        return BadLine(f"not JSON ({exc.msg} at column {exc.colno}): {_snippet(line)!r}")
    if not isinstance(data, dict):
        return BadLine(f"a command is a JSON object, got {type(data).__name__}")
    cmd_id = data.get("id")
    op = data.get("op")
    if not isinstance(op, str):
        return BadLine(f'missing "op" (one of {", ".join(OPS)})', None, cmd_id)
    if op not in OPS:
        return BadLine(f'unknown op "{op}"; expected one of {", ".join(OPS)}', op, cmd_id)
    required, optional = OPS[op]
    args: dict[str, Any] = {}
    for name in required:
        value = data.get(name)
        if not isinstance(value, str) or (name != "text" and not value.strip()):
            what = "missing" if value is None else "not a non-empty string"
            return BadLine(f'{op}: "{name}" is {what}', op, cmd_id)
        args[name] = value
    for name in optional:
        if name in data and data[name] is not None:
            args[name] = data[name]
    problem = _check_optional(op, args)
    if problem:
        return BadLine(f"{op}: {problem}", op, cmd_id)
    return Command(op, args, cmd_id)


def _check_optional(op: str, args: dict[str, Any]) -> str | None:
    if op == "send" and "mentions" in args:
        m = args["mentions"]
        if not isinstance(m, list) or not all(isinstance(x, str) for x in m):
            return '"mentions" is not a list of names'
    if op == "status":
        if "status" not in args and "activity" not in args:
            return 'give "status" (idle, waiting, working) and/or "activity"'
        if "status" in args and args["status"] not in STATUSES:
            return f'"status" is {args["status"]!r}; expected one of {", ".join(STATUSES)}'
        if "activity" in args and not isinstance(args["activity"], str):
            return '"activity" is not a string'
    return None


# -- events --------------------------------------------------------------------------------


def hello_event(
    *,
    agent_id: str,
    name: str,
    role: str | None,
    space: str,
    server: str,
    boot: list[str],
    read: list[str] | None,
    post: list[str] | None,
) -> dict[str, Any]:
    return {
        "event": "hello",
        "protocol": PROTOCOL,
        "version": VERSION,
        "agent": {"id": agent_id, "name": name, "role": role, "kind": "agent"},
        "space": space,
        "server": server,
        "boot": boot,
        "acl": {"read": read, "post": post},
    }


def message_event(msg: CotalMessage, kind: str, channel: str | None, via: Via) -> dict[str, Any]:
    text = msg.text
    out: dict[str, Any] = {
        "event": "message",
        "kind": kind,
        "id": msg.id,
        "ts": msg.ts,
        "from": {"id": msg.from_.id, "name": msg.from_.name},
        "text": text,
        "via": via,
    }
    if channel is not None:
        out["channel"] = channel
    if kind == "dm" and msg.to:
        out["to"] = msg.to
    if kind == "anycast" and msg.to_service:
        out["toService"] = msg.to_service
    if msg.mentions:
        out["mentions"] = list(msg.mentions)
    if msg.reply_to:
        out["replyTo"] = msg.reply_to
    return out


def event(kind: str, **fields: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"event": kind}
    out.update({k: v for k, v in fields.items() if v is not None})
    return out
