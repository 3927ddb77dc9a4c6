"""Agent names and peer resolution (§3.2 name rules, §6.1 ``resolvePeer``)."""

from __future__ import annotations

from collections.abc import Iterable

from cotal_tui.protocol.errors import AmbiguousPeerError, InvalidName
from cotal_tui.protocol.jsstr import js_json_string, js_trim
from cotal_tui.protocol.models import Presence


def assert_valid_name(name: str) -> None:
    """Non-empty, no surrounding whitespace, a single line, no ``/`` (the owner/name separator)."""
    shown = js_json_string(name)
    if not name or name != js_trim(name):
        raise InvalidName(f"invalid name {shown}: must be non-empty with no surrounding whitespace")
    if "\n" in name or "\r" in name:
        raise InvalidName(f"invalid name {shown}: must be a single line")
    if "/" in name:
        raise InvalidName(f'invalid name {shown}: "/" is reserved (the owner/name separator)')


def resolve_peer(
    entries: Iterable[Presence], query: str, *, self_id: str | None = None
) -> Presence | None:
    """An exact id wins; else a case-insensitive name, preferring live peers.

    One live match resolves; several live matches are ambiguous. With no live match, a single
    offline match resolves and several are ambiguous. ``self_id`` is never a candidate.
    """
    q = js_trim(query)
    if not q:
        return None
    peers = [p for p in entries if p.card.id != self_id]
    for p in peers:
        if p.card.id == q:
            return p
    folded = q.lower()
    named = [p for p in peers if p.card.name.lower() == folded]
    live = [p for p in named if p.status != "offline"]
    pool = live or named
    if not pool:
        return None
    if len(pool) == 1:
        return pool[0]
    listed = "; ".join(f"{p.card.name} ({p.card.id}, {p.status})" for p in pool)
    raise AmbiguousPeerError(
        f'"{q}" is ambiguous — {len(pool)} peers share that name: {listed}. '
        "Re-send to the exact instance id.",
        candidates=list(pool),
    )
