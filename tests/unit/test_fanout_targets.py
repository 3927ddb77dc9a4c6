"""The fan-out's per-copy shortcuts (issue 16): what a copy's target holds is what was built per
copy before (dinbox subject, entry tail, ``plane3_msg_id``), and a channel's prepared targets
follow the membership index (rebuilt when a record changes, never stale)."""

from __future__ import annotations

from types import SimpleNamespace

from hypothesis import given
from hypothesis import strategies as st

from cotal_tui.delivery.fanout import FanoutWriter, Targets, copy_target, entry_tail
from cotal_tui.delivery.member_index import MembershipIndex
from cotal_tui.protocol.delivery import durable_copy_wanted
from cotal_tui.protocol.models import MembershipRecord
from cotal_tui.protocol.names import plane3_msg_id
from cotal_tui.protocol.subjects import dinbox_subject


def _subject(owner: str) -> str:
    return dinbox_subject("s", owner)


@given(
    owner=st.sampled_from(["UA", "UB", "U-c"]),
    gen=st.integers(min_value=-(2**60), max_value=2**60),
    reason=st.sampled_from(["durable-channel", "live-mention"]),
    msg_id=st.text(max_size=12),
)
def test_a_target_is_what_each_copy_was_built_from(
    owner: str, gen: int, reason: str, msg_id: str
) -> None:
    targets: Targets = {}
    for _ in range(2):  # built, then from the memo
        got = copy_target(targets, _subject, owner, gen, reason)
        assert got[:5] == (owner, gen, reason, _subject(owner), entry_tail(reason, gen))
        assert f"{msg_id}" + got[5] == plane3_msg_id(msg_id, owner, gen)


def _record(owner: str, join: int, leave: int | None = None, gen: int = 1) -> MembershipRecord:
    return MembershipRecord(
        channel="c",
        owner=owner,
        state="durable-active",
        join_cursor=join,
        generation=gen,
        writer_identity="w",
        updated_at=0,
        leave_cursor=leave,
    )


def _writer(index: MembershipIndex) -> FanoutWriter:
    writer = FanoutWriter.__new__(FanoutWriter)
    writer.ctx = SimpleNamespace(index=index, dinbox_subject=_subject)  # type: ignore[assignment]
    writer._targets = {}
    writer._prepared = {}
    return writer


def _wanted(writer: FanoutWriter, sender: str, seq: int) -> list[tuple[str, int]]:
    return [
        (t[0], t[1])
        for owner, join, leave, t in writer.durable_targets("c")
        if durable_copy_wanted(owner, sender, join, leave, seq)
    ]


def test_prepared_targets_follow_the_index() -> None:
    index = MembershipIndex()
    index.apply(_record("UA", 0), 1)
    index.apply(_record("UB", 5), 2)
    writer = _writer(index)
    assert _wanted(writer, "UX", 6) == [("UA", 1), ("UB", 1)]
    assert writer.durable_targets("c") is writer.durable_targets("c")  # unchanged: reused
    index.apply(_record("UA", 0, leave=5), 3)  # UA leaves at 5
    index.apply(_record("UB", 5, gen=2), 4)  # UB rejoins, generation 2
    assert _wanted(writer, "UX", 6) == [("UB", 2)]
    assert _wanted(writer, "UB", 6) == []  # never the sender's own
    index.apply(_record("UC", 0), 5)
    assert _wanted(writer, "UX", 6) == [("UB", 2), ("UC", 1)]
    assert _wanted(writer, "UX", 5) == [("UA", 1), ("UC", 1)]
