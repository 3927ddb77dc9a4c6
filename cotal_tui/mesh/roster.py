"""The roster as a pure state machine over presence records (PROTOCOL.md §6.1).

Theory of operation: every record the presence watch delivers goes through :meth:`Roster.apply`;
a DEL/PURGE marker through :meth:`Roster.remove`; a timer calls :meth:`Roster.sweep`. Each returns
an :class:`Applied` saying whether the roster changed and which ``presence`` event (``join`` /
``update`` / ``offline``), if any, to emit. Nothing here does I/O or reads the clock: ``now_ms``
is always passed in, so the rules are testable without sockets.

The rules, in the reference's order:

- a record older than ``ttl_ms``, or with ``status: offline``, is stored as offline with
  ``attention`` and ``channelModes`` removed;
- the first sighting of an offline peer is stored quietly (roster changed, no event);
- a record equal to the stored one in status, activity, attention and channelModes is a
  heartbeat: stored silently (no change, no event);
- otherwise the event is ``offline`` for an offline record, ``join`` when there was no previous
  record or it was offline, else ``update``.

Offline peers stay in the roster, sorted by name.

What changed, for readers that poll (the console reads the roster ten times a second, at 5,000
peers): every write of an entry appends its id to a change log, and :meth:`Roster.changes_since`
hands a reader the ids written since the version it last read, so it converts only those. The
name order of :meth:`Roster.entries` is kept as entries come and are renamed (a bisect), never
re-sorted. The log is trimmed once it is much longer than the roster; a reader that fell
behind the trim (or a ``clear``) gets None and reads everything again.

Trust the key, not the body: an entry is stored under the presence KV key it was written to
(every agent may write only its own key, so the key is the authenticated id). A record whose
``card.id`` differs from its key is an impersonation attempt: it is refused and counted
(``refused``), never stored under the id it claims.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from dataclasses import dataclass
from typing import Literal

from cotal_tui.protocol.models import Presence
from cotal_tui.protocol.names import PRESENCE_TTL_MS
from cotal_tui.protocol.peers import resolve_peer as protocol_resolve_peer

PresenceEventType = Literal["join", "update", "offline"]


class PeerNotFound(LookupError):
    """No roster entry has that id or name."""


@dataclass(frozen=True)
class PresenceEvent:
    type: PresenceEventType
    presence: Presence
    previous: Presence | None = None

    @property
    def id(self) -> str:
        return self.presence.card.id


@dataclass(frozen=True)
class Applied:
    changed: bool
    event: PresenceEvent | None = None


NO_CHANGE = Applied(False)


def _same_state(a: Presence, b: Presence) -> bool:
    return (
        a.status == b.status
        and a.activity == b.activity
        and a.attention == b.attention
        and a.channel_modes == b.channel_modes
    )


LOG_SLACK = 1024
"""Change-log entries kept beyond twice the roster's size before the oldest half is dropped."""

OrderKey = tuple[str, str]


class Roster:
    def __init__(self, ttl_ms: int = PRESENCE_TTL_MS) -> None:
        self.ttl_ms = ttl_ms
        self._entries: dict[str, Presence] = {}
        self._order: list[OrderKey] = []
        """(name, id) of every entry, sorted: the order of `entries()`."""
        self._log: list[str] = []
        """Ids written since version `_log_base`, oldest first (an id may repeat)."""
        self._log_base = 0
        self.refused = 0

    @property
    def version(self) -> int:
        """Counts writes: it moves on every stored record, heartbeats included."""
        return self._log_base + len(self._log)

    def changes_since(self, version: int) -> list[str] | None:
        """Ids written after `version` (oldest first, may repeat); None when the log no longer
        reaches back that far (trimmed, or the roster was cleared): read `entries()` instead."""
        at = version - self._log_base
        if at < 0 or version > self.version:
            return None
        return self._log[at:]

    def _store(self, incoming: Presence, prev: Presence | None) -> None:
        """Store one entry: keep the name order and log the write."""
        peer_id = incoming.card.id
        self._entries[peer_id] = incoming
        if prev is None:
            insort(self._order, (incoming.card.name, peer_id))
        elif prev.card.name != incoming.card.name:
            del self._order[bisect_left(self._order, (prev.card.name, peer_id))]
            insort(self._order, (incoming.card.name, peer_id))
        log = self._log
        log.append(peer_id)
        if len(log) > 2 * len(self._entries) + LOG_SLACK:
            drop = len(log) // 2
            del log[:drop]
            self._log_base += drop

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, peer_id: object) -> bool:
        return peer_id in self._entries

    def get(self, peer_id: str) -> Presence | None:
        return self._entries.get(peer_id)

    def entries(self) -> list[Presence]:
        """Every peer, offline ones included, sorted by name (then id, for a stable order)."""
        entries = self._entries
        return [entries[peer_id] for _, peer_id in self._order]

    def live(self) -> list[Presence]:
        return [p for p in self.entries() if p.status != "offline"]

    def clear(self) -> None:
        self._entries.clear()
        self._order.clear()
        self._log_base = self.version + 1  # every reader's version is now behind the log
        self._log.clear()

    def is_stale(self, p: Presence, now_ms: int) -> bool:
        return now_ms - p.ts > self.ttl_ms

    def apply(self, record: Presence, now_ms: int, key: str | None = None) -> Applied:
        """Apply one record read from KV key ``key`` (None: a record not read from KV, trusted
        as its own id). A record whose ``card.id`` is not its key is refused and counted."""
        if key is not None and key != record.card.id:
            self.refused += 1
            return NO_CHANGE
        incoming = record
        if record.status == "offline" or self.is_stale(record, now_ms):
            incoming = record.as_offline()
        peer_id = incoming.card.id
        prev = self._entries.get(peer_id)
        self._store(incoming, prev)
        if prev is None and incoming.status == "offline":
            return Applied(True)
        if prev is not None and _same_state(prev, incoming):
            return Applied(prev.card != incoming.card)
        if incoming.status == "offline":
            kind: PresenceEventType = "offline"
        elif prev is None or prev.status == "offline":
            kind = "join"
        else:
            kind = "update"
        return Applied(True, PresenceEvent(kind, incoming, prev))

    def remove(self, peer_id: str) -> Applied:
        """A DEL/PURGE marker: the peer goes offline (and stays listed)."""
        prev = self._entries.get(peer_id)
        if prev is None or prev.status == "offline":
            return NO_CHANGE
        gone = prev.as_offline()
        self._store(gone, prev)
        return Applied(True, PresenceEvent("offline", gone, prev))

    def sweep(self, now_ms: int) -> list[PresenceEvent]:
        events: list[PresenceEvent] = []
        for p in list(self._entries.values()):
            if p.status != "offline" and self.is_stale(p, now_ms):
                gone = p.as_offline()
                self._store(gone, p)
                events.append(PresenceEvent("offline", gone, p))
        return events

    def resolve(self, ref: str) -> Presence:
        return resolve_peer(self.entries(), ref)


def resolve_peer(entries: list[Presence], ref: str) -> Presence:
    """:func:`cotal_tui.protocol.resolve_peer` (the reference's rule and wording, tested against
    its vectors), with "not found" as :class:`PeerNotFound` instead of ``None``."""
    found = protocol_resolve_peer(entries, ref)
    if found is None:
        raise PeerNotFound(f'no peer named "{ref}" in the roster; check the name or use the id')
    return found
