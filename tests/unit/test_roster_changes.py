"""The roster's change log and kept name order equal a from-scratch read, after any sequence.

`Roster.entries()` keeps its name order with bisects instead of sorting per call, and
`Roster.changes_since` hands a polling reader the ids written since its last read. Over random
joins, heartbeats, status changes, renames, leaves (DEL markers), age-outs (sweeps), spoofed
records and clears: the entries equal the stored records sorted by name, and a reader that
replays only the changes holds exactly what a reader of everything holds.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cotal_tui.mesh.roster import LOG_SLACK, Roster
from cotal_tui.protocol.models import AgentCard, Presence

NOW = 1_000_000
TTL = 6_000
IDS = [f"ag-{i}" for i in range(8)]
NAMES = ["ada", "bo", "Bo", "cy", "dee"]
STATUSES = ["working", "waiting", "idle", "offline"]


def rec(pid: str, name: str, status: str, ts: int) -> Presence:
    return Presence(card=AgentCard(id=pid, name=name, kind="agent"), status=status, ts=ts)


step_st = st.one_of(
    st.tuples(
        st.just("put"),
        st.sampled_from(IDS),
        st.sampled_from(NAMES),
        st.sampled_from(STATUSES),
        st.integers(-8_000, 1_000),
    ),
    st.tuples(st.just("beat"), st.sampled_from(IDS)),
    st.tuples(st.just("del"), st.sampled_from(IDS)),
    st.tuples(st.just("advance"), st.integers(0, 9_000)),
    st.tuples(st.just("sweep")),
    st.tuples(st.just("spoof"), st.sampled_from(IDS), st.sampled_from(IDS)),
    st.tuples(st.just("clear")),
    st.tuples(st.just("read")),
)


class Reader:
    """A poller that keeps its own copy from the change log only (as the console does)."""

    def __init__(self) -> None:
        self.version: int | None = None
        self.copy: dict[str, Presence] = {}
        self.full_reads = 0

    def read(self, roster: Roster) -> None:
        changes = None if self.version is None else roster.changes_since(self.version)
        if changes is None:
            self.full_reads += 1
            self.copy = {p.card.id: p for p in roster.entries()}
        else:
            for pid in changes:
                got = roster.get(pid)
                assert got is not None, "a logged id is in the roster"
                self.copy[pid] = got
        self.version = roster.version


@settings(max_examples=300, deadline=None)
@given(st.lists(step_st, max_size=60), st.integers(1, 5))
def test_entries_and_change_log_equal_a_from_scratch_read(steps, read_every):
    roster, reader, now = Roster(TTL), Reader(), NOW
    versions = [roster.version]
    for n, step in enumerate(steps):
        kind = step[0]
        if kind == "put":
            _, pid, name, status, age = step
            roster.apply(rec(pid, name, status, now + age), now, key=pid)
        elif kind == "beat" and (p := roster.get(step[1])) is not None:
            roster.apply(p.model_copy(update={"ts": now}), now, key=step[1])
        elif kind == "del":
            roster.remove(step[1])
        elif kind == "advance":
            now += step[1]
        elif kind == "sweep":
            roster.sweep(now)
        elif kind == "spoof":
            roster.apply(rec(step[2], "mallory", "working", now), now, key=step[1])
        elif kind == "clear":
            roster.clear()
        if kind == "read" or n % read_every == 0:
            reader.read(roster)
            assert reader.copy == {p.card.id: p for p in roster.entries()}, f"after {step}"
        stored = [roster.get(pid) for pid in IDS if roster.get(pid) is not None]
        want = sorted(stored, key=lambda p: (p.card.name, p.card.id))  # type: ignore[union-attr]
        assert roster.entries() == want, f"after {step}"
        assert [p.card.id for p in roster.entries()] == [p.card.id for p in want]
        versions.append(roster.version)
    assert versions == sorted(versions), "the version only moves on"
    reader.read(roster)
    assert reader.copy == {p.card.id: p for p in roster.entries()}


def test_a_reader_keeping_up_never_reads_everything_again():
    roster, reader = Roster(TTL), Reader()
    for i in range(200):
        roster.apply(rec(f"ag-{i:03d}", f"n{i:03d}", "idle", NOW), NOW)
    reader.read(roster)
    for beat in range(1, 30):
        now = NOW + beat * 100
        for i in range(beat % 20, 200, 20):
            roster.apply(rec(f"ag-{i:03d}", f"n{i:03d}", "idle", now), now)
        changes = roster.changes_since(reader.version)  # type: ignore[arg-type]
        assert changes is not None and len(changes) == 10, "only the heartbeats since last read"
        reader.read(roster)
    roster.sweep(NOW + 60_000)
    reader.read(roster)
    assert reader.full_reads == 1
    assert all(p.status == "offline" for p in reader.copy.values())


def test_a_reader_behind_the_trimmed_log_or_a_clear_reads_everything():
    roster, reader = Roster(TTL), Reader()
    roster.apply(rec("a", "alice", "idle", NOW), NOW)
    reader.read(roster)
    for n in range(2 * LOG_SLACK + 10):
        roster.apply(rec("a", "alice", "idle", NOW + n), NOW + n)
    assert roster.changes_since(reader.version) is None  # type: ignore[arg-type]
    reader.read(roster)
    assert reader.full_reads == 2 and reader.copy["a"].ts == NOW + 2 * LOG_SLACK + 9
    roster.clear()
    assert roster.changes_since(reader.version) is None  # type: ignore[arg-type]
    reader.read(roster)
    assert reader.full_reads == 3 and reader.copy == {}
