"""The roster's pure rules (PROTOCOL.md §6.1): events, sweep, name resolution."""

from __future__ import annotations

import json

import pytest
from spaces import VECTORS

from cotal_tui.mesh.roster import PeerNotFound, Roster, resolve_peer
from cotal_tui.protocol.errors import AmbiguousPeerError
from cotal_tui.protocol.models import AgentCard, Presence

NOW = 1_000_000


def rec(pid: str, name: str, status: str = "idle", ts: int = NOW, **kw: object) -> Presence:
    return Presence(
        card=AgentCard(id=pid, name=name, kind="agent"),
        status=status,
        ts=ts,
        **kw,  # type: ignore[arg-type]
    )


def test_first_sighting_joins_then_heartbeat_is_silent() -> None:
    r = Roster(6000)
    first = r.apply(rec("a", "alice"), NOW)
    assert first.changed and first.event is not None and first.event.type == "join"
    beat = r.apply(rec("a", "alice", ts=NOW + 2000), NOW + 2000)
    assert beat.event is None and not beat.changed
    assert r.get("a").ts == NOW + 2000  # type: ignore[union-attr]


def test_change_of_activity_is_an_update_and_offline_record_is_offline() -> None:
    r = Roster(6000)
    r.apply(rec("a", "alice"), NOW)
    upd = r.apply(rec("a", "alice", status="working", activity="x"), NOW)
    assert upd.event is not None and upd.event.type == "update"
    off = r.apply(rec("a", "alice", status="offline"), NOW)
    assert off.event is not None and off.event.type == "offline"
    back = r.apply(rec("a", "alice"), NOW)
    assert back.event is not None and back.event.type == "join"


def test_first_sighting_of_offline_or_stale_peer_is_quiet_and_scrubbed() -> None:
    r = Roster(6000)
    quiet = r.apply(
        rec("a", "alice", attention="focus", channel_modes={"x": "quiet"}, ts=NOW - 7000), NOW
    )
    assert quiet.changed and quiet.event is None
    stored = r.get("a")
    assert stored is not None and stored.status == "offline"
    assert stored.attention is None and stored.channel_modes is None


def test_sweep_turns_old_live_entries_offline_once_and_keeps_them() -> None:
    r = Roster(6000)
    r.apply(rec("a", "alice"), NOW)
    r.apply(rec("b", "bob", ts=NOW + 5000), NOW + 5000)
    events = r.sweep(NOW + 6001)
    assert [(e.type, e.id) for e in events] == [("offline", "a")]
    assert r.sweep(NOW + 6002) == []
    assert [p.card.name for p in r.entries()] == ["alice", "bob"]


def test_delete_marker_marks_offline() -> None:
    r = Roster(6000)
    r.apply(rec("a", "alice"), NOW)
    gone = r.remove("a")
    assert gone.event is not None and gone.event.type == "offline"
    assert r.remove("a").event is None
    assert r.remove("nobody").event is None


def test_resolution_prefers_id_then_live_name() -> None:
    entries = [rec("id1", "Bob"), rec("id2", "bob", status="offline"), rec("bob", "zed")]
    assert resolve_peer(entries, "bob").card.id == "bob"  # exact id wins
    assert resolve_peer(entries, "BOB").card.id == "id1"  # one live match
    with pytest.raises(AmbiguousPeerError) as err:
        resolve_peer([rec("x", "al"), rec("y", "AL")], "al")
    assert "x" in str(err.value) and "y" in str(err.value) and len(err.value.candidates) == 2
    assert resolve_peer([rec("x", "al", status="offline")], "Al").card.id == "x"
    with pytest.raises(AmbiguousPeerError):
        resolve_peer([rec("x", "al", status="offline"), rec("y", "al", status="offline")], "al")
    with pytest.raises(PeerNotFound):
        resolve_peer(entries, "carol")


def test_reference_records_fold_as_the_reference_does() -> None:
    vectors = json.loads((VECTORS / "records.json").read_text())
    r = Roster(6000)
    initial = Presence.from_json(vectors["presence.live.initial"]["body"])
    now = initial.ts
    assert r.apply(initial, now).event.type == "join"  # type: ignore[union-attr]
    full = Presence.from_json(vectors["presence.live.full"]["body"])
    assert r.apply(full, now).event.type == "update"  # type: ignore[union-attr]
    beat = Presence.from_json(vectors["presence.live.heartbeat"]["body"])
    assert r.apply(beat, now).event is None
    off = Presence.from_json(vectors["presence.offline"]["body"])
    assert r.apply(off, now).event.type == "offline"  # type: ignore[union-attr]


def test_record_under_another_key_is_refused_and_counted() -> None:
    r = Roster(6000)
    r.apply(rec("victim", "vic"), NOW, key="victim")
    spoof = r.apply(rec("victim", "vic-IMPOSTOR", status="offline"), NOW, key="mallory")
    assert spoof.changed is False and spoof.event is None
    assert r.refused == 1
    assert [p.card.name for p in r.entries()] == ["vic"]
    assert r.get("victim").status == "idle"  # type: ignore[union-attr]
    assert "mallory" not in r
