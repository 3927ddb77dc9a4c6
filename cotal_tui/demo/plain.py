"""``cotal-tui demo --plain``: a timestamped line stream of what the operator's endpoint sees.

Presence changes (join / update / offline, never a plain heartbeat), every message (channel, DM,
anycast), the link, the pending boot joins and leave retries of every simulated agent as they
appear and clear, and the demo's own notes (what the timeline just did), each prefixed so a
reader can tell the observed from the scripted.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from cotal_tui.demo.simulation import DemoNote, DemoSimulation
from cotal_tui.mesh.connection import Connected, Reconnecting
from cotal_tui.mesh.events import (
    ConnectionChanged,
    EndpointError,
    EndpointEvent,
    MessageReceived,
    PresenceChanged,
    RosterViewChanged,
)

Write = Callable[[str], None]


def clock(at: float | None = None) -> str:
    at = time.time() if at is None else at
    return time.strftime("%H:%M:%S", time.localtime(at)) + f".{int(at * 1000) % 1000:03d}"


def note_line(n: DemoNote) -> str:
    return f"{clock(n.at)} [demo] {n.kind}: {n.text}"


def _one_line(text: str, limit: int = 300) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def event_line(event: EndpointEvent, names: Callable[[str], str]) -> str | None:
    now = clock()
    if isinstance(event, PresenceChanged):
        p = event.event.presence
        role = f" ({p.card.role})" if p.card.role else ""
        activity = f" — {p.activity}" if p.activity else ""
        return f"{now} presence {event.event.type}: {p.card.name}{role} {p.status}{activity}"
    if isinstance(event, MessageReceived):
        inbound = event.inbound
        msg = inbound.message
        if inbound.kind == "dm":
            where = f"dm→{names(msg.to or '')}"
        elif inbound.kind == "anycast":
            where = f"anycast→{msg.to_service}"
        else:
            where = f"#{inbound.channel or msg.channel}"
        back = " (backfill)" if inbound.historical else ""
        return f"{now} {where} {msg.from_.name}: {_one_line(msg.text)}{back}"
    if isinstance(event, ConnectionChanged):
        st = event.state
        if isinstance(st, Connected):
            return f"{now} link connected {st.server}"
        if isinstance(st, Reconnecting):
            return f"{now} link reconnecting (attempt {st.attempt}: {st.last_error or '…'})"
        return f"{now} link closed ({st.reason})"
    if isinstance(event, RosterViewChanged):
        return f"{now} roster view {event.view}"
    if isinstance(event, EndpointError):
        return f"{now} error ({event.context}): {event.error}"
    return None


class PendingWatch:
    """Diffs ``sim.pending_ops()`` into lines: a retry appearing, and its clearing."""

    def __init__(self, sim: DemoSimulation) -> None:
        self.sim = sim
        self._seen: dict[tuple[str, str, str], int] = {}

    def lines(self) -> list[str]:
        now = clock()
        out: list[str] = []
        current: dict[tuple[str, str, str], int] = {}
        for owned in self.sim.pending_ops():
            op = owned.op
            key = (owned.owner, op.channel, op.operation)
            current[key] = op.attempt
            if self._seen.get(key) != op.attempt:
                retry = ""
                if op.next_retry_at is not None:
                    retry = f", next try in {max(0.0, op.next_retry_at - time.time()):.1f}s"
                err = f" — {op.last_error}" if op.last_error else ""
                out.append(
                    f"{now} pending {op.operation} {owned.owner} #{op.channel} attempt "
                    f"{op.attempt}{retry}{err}"
                )
        for key in self._seen.keys() - current.keys():
            owner, channel, operation = key
            out.append(f"{now} pending {operation} {owner} #{channel} cleared")
        self._seen = current
        return out
