"""The daemon's local membership index, used for fan-out *routing* only.

Why it cannot miss a member: the members bucket has exactly one writer in a running space, the
delivery daemon holding ``lease.0`` (the delivery profile is the only scoped credential with
write rights on ``$KV.cotal_members_<space>.>``, and the lease makes its holder single). The
index is loaded from a full KV watch before the fan-out loop starts, every write this daemon
makes is applied to it right after its PubAck (before the join reply and before the join's
fence is read), and the same watch keeps streaming every later change (so a write by anyone
else — an operator's allow-all tool — still lands, a moment later). A join's catch-up covers
everything up to ``max(CHAT last_seq, fanout delivered)`` read *after* the record entered the
index, so a message routed before that instant is copied by catch-up and one routed after it
sees the member. Authorization is never taken from here: the trusted reader re-reads the
record fresh for every entry.
"""

from __future__ import annotations

from typing import NamedTuple

from cotal_tui.delivery.members import MemberEntry, decode_member
from cotal_tui.mesh.kv import KvEntry
from cotal_tui.protocol.models import MembershipRecord
from cotal_tui.protocol.names import parse_member_key


class Route(NamedTuple):
    owner: str
    generation: int
    join_cursor: int
    leave_cursor: int | None


class MembershipIndex:
    def __init__(self) -> None:
        self._by_channel: dict[str, dict[str, tuple[MembershipRecord, int]]] = {}
        self._routes: dict[str, tuple[Route, ...]] = {}
        self._removed: dict[tuple[str, str], int] = {}

    def __len__(self) -> int:
        return sum(len(v) for v in self._by_channel.values())

    def clear(self) -> None:
        self._by_channel.clear()
        self._routes.clear()
        self._removed.clear()

    def apply(self, record: MembershipRecord, revision: int) -> None:
        """Store ``record`` unless a later revision of the key is already known."""
        owners = self._by_channel.setdefault(record.channel, {})
        current = owners.get(record.owner)
        if current is not None and current[1] > revision:
            return
        if self._removed.get((record.channel, record.owner), 0) > revision:
            return
        owners[record.owner] = (record, revision)
        self._routes.pop(record.channel, None)

    def apply_entry(self, entry: MemberEntry | None) -> None:
        if entry is not None:
            self.apply(entry.record, entry.revision)

    def remove(self, channel: str, owner: str, revision: int) -> None:
        owners = self._by_channel.get(channel)
        current = owners.get(owner) if owners else None
        if current is not None and current[1] > revision:
            return
        self._removed[(channel, owner)] = revision
        if owners is not None and owner in owners:
            del owners[owner]
            self._routes.pop(channel, None)

    def on_kv(self, entry: KvEntry) -> None:
        """Apply one update from the members watch."""
        key = parse_member_key(entry.key)
        if key is None:
            return
        if entry.deleted:
            self.remove(key.channel, key.owner, entry.revision)
            return
        record = decode_member(entry.value)
        if record is None:
            self.remove(key.channel, key.owner, entry.revision)
            return
        self.apply(record, entry.revision)

    def routes(self, channel: str) -> tuple[Route, ...]:
        """Every record on ``channel`` (tombstones included), exact channel-string match."""
        cached = self._routes.get(channel)
        if cached is not None:
            return cached
        owners = self._by_channel.get(channel, {})
        routes = tuple(
            Route(r.owner, r.generation, r.join_cursor, r.leave_cursor) for r, _ in owners.values()
        )
        self._routes[channel] = routes
        return routes

    def get(self, channel: str, owner: str) -> MembershipRecord | None:
        found = self._by_channel.get(channel, {}).get(owner)
        return found[0] if found else None

    def memberships_of(self, owner: str) -> list[MembershipRecord]:
        out = []
        for owners in self._by_channel.values():
            found = owners.get(owner)
            if found is not None:
                out.append(found[0])
        return sorted(out, key=lambda r: r.channel)
