"""Agent names and peer resolution (§3.2 name rules, §6.1 ``resolvePeer``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from cotal_tui.protocol.errors import AmbiguousPeerError, InvalidName
from cotal_tui.protocol.jsstr import js_json_string, js_trim
from cotal_tui.protocol.models import Presence

P = TypeVar("P", Presence, Mapping[str, Any])


def assert_valid_name(name: str) -> None:
    """Non-empty, no surrounding whitespace, a single line, no ``/`` (the owner/name separator)."""
    shown = js_json_string(name)
    if not name or name != js_trim(name):
        raise InvalidName(f"invalid name {shown}: must be non-empty with no surrounding whitespace")
    if "\n" in name or "\r" in name:
        raise InvalidName(f"invalid name {shown}: must be a single line")
    if "/" in name:
        raise InvalidName(f'invalid name {shown}: "/" is reserved (the owner/name separator)')


def _card_field(entry: Presence | Mapping[str, Any], name: str) -> Any:
    if isinstance(entry, Presence):
        return getattr(entry.card, name)
    return entry["card"][name]


def _status(entry: Presence | Mapping[str, Any]) -> Any:
    return entry.status if isinstance(entry, Presence) else entry["status"]


def resolve_peer(entries: Iterable[P], query: str, *, self_id: str | None = None) -> P | None:
    """An exact id wins; else a case-insensitive name, preferring live peers.

    One live match resolves; several live matches are ambiguous. With no live match, a single
    offline match resolves and several are ambiguous. ``self_id`` (when non-empty) is never a
    candidate. Entries are :class:`Presence` models or decoded presence dicts; the matching
    entry itself is returned.
    """
    peers = [e for e in entries if _card_field(e, "id") != self_id] if self_id else list(entries)
    for entry in peers:
        if _card_field(entry, "id") == query:
            return entry
    want = js_trim(query).lower()
    if not want:
        return None
    named = [e for e in peers if _card_field(e, "name").lower() == want]
    live = [e for e in named if _status(e) != "offline"]
    pool = live or named
    if not pool:
        return None
    if len(pool) == 1:
        return pool[0]
    listed = "; ".join(
        f"{_card_field(e, 'name')} ({_card_field(e, 'id')}, {_status(e)})" for e in pool
    )
    raise AmbiguousPeerError(
        f'"{query}" is ambiguous — {len(pool)} peers share that name: {listed}. '
        "Re-send to the exact instance id.",
        candidates=list(pool),
    )
