"""What the delivery daemon's processes say to each other (``stages.py`` ↔ ``stage_main.py``).

One JSON object per line over the child's stdin (parent → stage) and a private copy of its
stdout (stage → parent). ``t`` names the message:

parent → stage
  config (first line)  ``{"role", "servers", "creds", "space", "daemon_id", "batch",
                       "bind_timeout_s", "parent_pid"}``
  ``go``       reader only: start taking entries (the fan-out has read INBOX's figures first);
               ``window`` is the fan-out's predecessor window ``[floor, delivered]`` or null
  ``member``   fan-out only: a membership record the parent wrote (``id`` is answered by
               ``applied`` once the routing index has it)
  ``inbox``    fan-out only: INBOX entries written / settled / decided elsewhere
  ``routed``   fan-out only: CHAT sequences the reader saw entries for (chat_gaps.py)
  ``stop``     stop cleanly (in-flight batches settle, the rest is nak'd), then ``stopped``

stage → parent
  ``ready`` (fan-out: with ``window``), ``failed`` (``error``: the stage could not start),
  ``status`` (``counters`` and, from the fan-out, ``stats``: the deliveryStats figures),
  ``error`` (``text``: what the daemon's error listener is told), ``applied``, ``stopped``.

reader → fan-out, on a pipe of their own (``peer_fd`` in the config; no hop through the parent)
  ``inbox`` (``decided``: the fan-out's INBOX backpressure waits on it) and ``routed``.

End of the parent's pipe (the parent died) makes a stage exit at once, and a stage also asks
the kernel to kill it when its parent dies (Linux ``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from typing import Any, Literal

from cotal_tui.delivery.daemon_context import Counters

StagesMode = Literal["inline", "processes"]
STAGES_MODES: tuple[StagesMode, ...] = ("processes", "inline")
ROLES = ("fanout", "reader")
ROLE_NAMES = {"fanout": "fan-out", "reader": "reader"}

# A stage's exit code when it left because its parent's pipe closed.
EXIT_PARENT_GONE = 3


def encode(msg: dict[str, Any]) -> bytes:
    return json.dumps(msg, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def counters_wire(c: Counters) -> dict[str, Any]:
    return asdict(c)


def counters_from_wire(raw: Any) -> Counters:
    c = Counters()
    if not isinstance(raw, dict):
        return c
    for f in fields(Counters):
        value = raw.get(f.name)
        if isinstance(value, int) and not isinstance(value, bool):
            setattr(c, f.name, value)
        elif isinstance(value, dict):
            setattr(c, f.name, {str(k): int(v) for k, v in value.items() if isinstance(v, int)})
    return c


def merge_counters(parts: list[Counters]) -> Counters:
    """Field by field sums (the reasons dicts key by key)."""
    out = Counters()
    for part in parts:
        for f in fields(Counters):
            mine, theirs = getattr(out, f.name), getattr(part, f.name)
            if isinstance(mine, dict):
                for k, v in theirs.items():
                    mine[k] = mine.get(k, 0) + v
            else:
                setattr(out, f.name, mine + theirs)
    return out
