"""The one lease-verdict table, over every combination of its inputs, and the surfaces that
project it: ``status``/``check``/``up`` (``mesh.lease.lease_verdict``) and the console
(``console.verdict.judge_lease``) name the same verdict for the same facts."""

from __future__ import annotations

import itertools
from dataclasses import fields

import pytest

from cotal_tui.console import verdict as console_verdict
from cotal_tui.console.source import (
    ConnectionInput,
    LeaseInput,
    ResponderCheck,
)
from cotal_tui.console.source import (
    LeaseRead as LeaseReadInput,
)
from cotal_tui.mesh import lease_table as T
from cotal_tui.mesh.lease import (
    READ_COLUMN,
    RESPONDER_COLUMN,
    lease_columns,
    lease_verdict,
)
from cotal_tui.protocol.names import LEASE_TTL_MS

EVIDENCE = {
    "link": {"up"},
    "read": {"present"},
    "age": {"fresh"},
    "ready": {"yes"},
    "responder": {"answered"},
    "pipeline": {"moving", "unchecked"},  # "unchecked": a surface that does not weigh progress
    # A cluster with a leaderless space stream, a stalled daemon consumer, a node gone or an
    # unread view is never serving.
    "cluster": {"n/a", "ok"},
}


def every_combination():
    keys = list(T.COLUMNS)
    for combo in itertools.product(*(T.COLUMNS[k] for k in keys)):
        yield dict(zip(keys, combo, strict=True))


def test_every_column_is_a_rule_field():
    assert set(T.COLUMNS) <= {f.name for f in fields(T.Rule)}
    for rule in T.RULES:
        for column in T.COLUMNS:
            allowed = getattr(rule, column)
            assert allowed is None or allowed <= set(T.COLUMNS[column]), (rule.name, column)


def test_every_combination_gets_exactly_one_verdict_and_serving_needs_all_evidence():
    for cols in every_combination():
        rule = T.first_rule(cols)
        serving = all(cols[k] in w for k, w in EVIDENCE.items())
        assert (rule.verdict == "serving") == serving, cols
        assert (rule.severity == "healthy") == serving, cols


def test_every_row_decides_some_combination():
    used = {T.first_rule(cols).name for cols in every_combination()}
    assert used == {r.name for r in T.RULES}


def test_cluster_column_defaults_to_not_a_cluster_and_degrades_serving():
    serving = {k: sorted(w)[0] for k, w in EVIDENCE.items() if k != "cluster"}
    serving["mode"] = "auth"
    assert T.first_rule(serving).verdict == "serving"  # a surface that does not read it
    assert T.first_rule({**serving, "cluster": "ok"}).verdict == "serving"
    lost = T.first_rule({**serving, "cluster": "lost"})
    assert (lost.verdict, lost.severity) == ("quorum-lost", "critical")
    stalled = T.first_rule({**serving, "cluster": "stalled"})
    assert (stalled.verdict, stalled.severity) == ("stalled", "degraded")
    node = T.first_rule({**serving, "cluster": "node-down"})
    assert (node.verdict, node.severity) == ("node-lost", "degraded")
    # a node gone with a measured stall: the critical stall wins; with no answer, unknown
    assert T.first_rule({**serving, "cluster": "node-down", "pipeline": "stalled"}).verdict == (
        "not-moving"
    )
    unproven = T.first_rule({**serving, "cluster": "node-down", "responder": "failed"})
    assert unproven.severity == "unknown"
    # the critical rows still come first
    worst = T.first_rule({**serving, "cluster": "lost", "responder": "silent"})
    assert worst.severity == "critical"


def test_stale_means_past_the_ttl():
    assert T.STALE_AFTER_MS == LEASE_TTL_MS == 30_000
    assert T.age_word(LEASE_TTL_MS) == "fresh"
    assert T.age_word(LEASE_TTL_MS + 1) == "expired"
    assert T.age_word(-T.SKEW_TOLERANCE_MS) == "fresh"
    assert T.age_word(-T.SKEW_TOLERANCE_MS - 1) == "skewed"
    assert T.age_word(None) == "n/a"


AGES = (0.0, 20_001.0, 25_000.0, 30_000.0, 30_001.0, -5_000.0)


@pytest.mark.parametrize("read", list(READ_COLUMN))
def test_status_projection_is_the_table(read):
    for ready, age_ms, responder in itertools.product((True, False), AGES, list(RESPONDER_COLUMN)):
        v = lease_verdict(read, ready=ready, age_ms=age_ms, responder=responder)
        cols = lease_columns(read, ready=ready, age_ms=age_ms, responder=responder)
        assert v.verdict == T.first_rule(cols).verdict
        assert v.green == (v.verdict == "serving")


# The console's probe words for each of the status side's probe outcomes.
CONSOLE_PROBE = {
    "answered": "answered",
    "no-responders": "no-responders",
    "timeout": "timeout",
    "not-probed": "unchecked",
}


@pytest.mark.parametrize("age_ms", AGES)
def test_status_and_console_agree_on_the_same_facts(age_ms):
    now = 1_000_000_000
    for ready, responder in itertools.product((True, False), list(CONSOLE_PROBE)):
        lease = LeaseInput(
            read=LeaseReadInput(
                outcome="present", read_at=now, holder="D", since=int(now - age_ms), ready=ready
            ),
            responder=ResponderCheck(
                outcome=CONSOLE_PROBE[responder],  # type: ignore[arg-type]
                checked_at=now,
                latency_ms=1.0,
            ),
        )
        link = ConnectionInput(state="connected")
        console = console_verdict.judge_lease(lease, link, "auth", now).verdict
        status = lease_verdict("present", ready=ready, age_ms=age_ms, responder=responder)
        assert console == status.verdict, (ready, age_ms, responder)
