"""The progress verdict of the delivery pipeline (protocol/pipeline.py): one table of cases."""

from __future__ import annotations

import pytest

from cotal_tui.protocol.pipeline import (
    CONSUMER_FLOOR,
    DEAD_LETTER_RECENT_MS,
    NO_DEAD_LETTER_STORE,
    STALL_AFTER_MS,
    Backlog,
    DeadLetterSummary,
    PipelineFigures,
    delivery_json,
    judge_pipeline,
)

IDLE = Backlog(0)
DEAD_NEW = DeadLetterSummary(3, {"too-deep": 2, "entry-oversized": 1}, (), 5_000)
DEAD_OLD = DeadLetterSummary(3, {"too-deep": 3}, (), DEAD_LETTER_RECENT_MS + 1)
CASES = [
    ("all idle", PipelineFigures(IDLE, IDLE, DeadLetterSummary(0, {}), {}), "moving", "ok"),
    ("busy but young", PipelineFigures(Backlog(40, 900), Backlog(3, 100)), "moving", "ok"),
    (
        "fanout stalled",
        PipelineFigures(Backlog(2, STALL_AFTER_MS + 1), IDLE),
        "stalled",
        "critical",
    ),
    (
        "catching up after downtime (floor moving)",
        PipelineFigures(Backlog(900, 60_000, 300), IDLE),
        "moving",
        "ok",
    ),
    (
        "old backlog, floor stuck",
        PipelineFigures(Backlog(900, 60_000, STALL_AFTER_MS + 1), IDLE),
        "stalled",
        "critical",
    ),
    (
        "reader stalled",
        PipelineFigures(IDLE, Backlog(7, STALL_AFTER_MS * 3)),
        "stalled",
        "critical",
    ),
    (
        "stall outranks unknown",
        PipelineFigures(Backlog(1, STALL_AFTER_MS + 5), None, unknown={"reader": "no grant"}),
        "stalled",
        "critical",
    ),
    (
        "reader unknown",
        PipelineFigures(IDLE, None, unknown={"reader": "no grant"}),
        "unknown",
        "unknown",
    ),
    ("fresh dead letters", PipelineFigures(IDLE, IDLE, DEAD_NEW, {}), "dead-letters", "degraded"),
    (
        "no dead-letter store (a reference-provisioned space): known, not unknown",
        PipelineFigures(IDLE, IDLE, NO_DEAD_LETTER_STORE, {}),
        "moving",
        "ok",
    ),
    ("old dead letters", PipelineFigures(IDLE, IDLE, DEAD_OLD, {}), "moving", "ok"),
    (
        "consumer excess",
        PipelineFigures(IDLE, IDLE, None, {"KV_cotal_presence_s": CONSUMER_FLOOR + 9}),
        "consumer-excess",
        "degraded",
    ),
    (
        "consumers explained by peers",
        PipelineFigures(IDLE, IDLE, None, {"KV_cotal_presence_s": CONSUMER_FLOOR + 9}),
        "moving",
        "ok",
    ),
]


@pytest.mark.parametrize(
    ("figs", "state", "level"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_pipeline_verdict_table(figs: PipelineFigures, state: str, level: str, request) -> None:
    peers = 3 if "explained" in request.node.callspec.id else 0
    verdict = judge_pipeline(figs, peers=peers)
    assert (verdict.state, verdict.level) == (state, level), verdict
    assert verdict.green == (level == "ok")
    assert "\n" not in verdict.text


def test_stall_text_names_the_evidence() -> None:
    v = judge_pipeline(PipelineFigures(Backlog(4, 42_000), IDLE))
    assert v.text == "oldest unrouted CHAT message is 42 s old (4 pending; stall threshold 10 s)"
    assert "unrouted CHAT messages: 4 pending, oldest 42 s" in v.evidence


def test_delivery_json_keys() -> None:
    figs = PipelineFigures(Backlog(4, 42_000), Backlog(0), DEAD_NEW, {"KV_x": 2})
    out = delivery_json(figs, judge_pipeline(figs))
    assert {
        k: out[k]
        for k in (
            "fanoutPending",
            "fanoutOldestMs",
            "readerPending",
            "readerOldestMs",
            "deadLettered",
        )
    } == {
        "fanoutPending": 4,
        "fanoutOldestMs": 42_000,
        "readerPending": 0,
        "readerOldestMs": None,
        "deadLettered": 3,
    }
    assert out["deadLetterReasons"] == {"too-deep": 2, "entry-oversized": 1}
    assert out["state"] == "stalled" and out["moving"] is False
    unknown = delivery_json(
        PipelineFigures(unknown={"fanout": "x"}),
        judge_pipeline(PipelineFigures(unknown={"fanout": "x"})),
    )
    assert unknown["fanoutPending"] is None and unknown["unknown"] == {"fanout": "x"}


def test_delivery_json_says_when_the_space_has_no_dead_letter_store() -> None:
    figs = PipelineFigures(IDLE, IDLE, NO_DEAD_LETTER_STORE, {})
    out = delivery_json(figs, judge_pipeline(figs))
    assert out["deadLetterStore"] is False and out["deadLettered"] == 0
    assert out["unknown"] == {} and out["moving"] is True
    stored = PipelineFigures(IDLE, IDLE, DEAD_NEW, {})
    assert delivery_json(stored, judge_pipeline(stored))["deadLetterStore"] is True


@pytest.mark.parametrize(
    ("pending", "idle", "newest", "expected"),
    [
        (0, None, None, "none"),
        (3, 2_000, None, "moving"),  # the floor moved within the threshold
        (3, 12_000, 11_000, "stalled"),  # every pending entry is at least 11 s old
        (3, None, 11_000, "stalled"),  # never acked anything, newest past the threshold
        (3, 12_000, 1_000, None),  # an entry just arrived: the oldest's age cannot be known
        (3, 12_000, None, None),
    ],
)
def test_the_operators_reader_figure_is_judged_without_reading_an_entry(
    pending: int, idle: int | None, newest: int | None, expected: str | None
) -> None:
    """The operator may not read INBOX entries (they carry DMs): its reader figure comes from
    the consumer's info and INBOX's newest entry, and is unknown (None) rather than guessed."""
    from cotal_tui.mesh.pipeline_probe import reader_backlog_by_info

    b = reader_backlog_by_info(pending, idle, newest)
    if expected is None:
        assert b is None
        return
    assert b is not None and b.pending == pending
    assert {"none": pending == 0, "moving": not b.stalled, "stalled": b.stalled}[expected]
    if expected == "stalled":
        assert b.oldest_ms == newest
