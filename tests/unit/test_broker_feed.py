"""The 0.9.0 membership feed (protocol/membership_feed.py) and its display-only console line
(console/membership_feed.py): record parsing, channel matching, the line's words — and a model
whose every channel the feed fills still judges the lease by the lease alone."""

from __future__ import annotations

import json
from dataclasses import replace

from cotal_tui.console.fixtures import FixtureSource, MutableClock, lease_data
from cotal_tui.console.membership_feed import BrokerFeed
from cotal_tui.console.model import ConsoleModel
from cotal_tui.mesh.membership_feed import FeedRead
from cotal_tui.protocol.membership_feed import (
    FEED_KEY,
    FeedHeartbeat,
    FeedRecord,
    membership_bucket,
    parse_heartbeat,
    parse_record,
)
from cotal_tui.tui import render


def _b(obj: object) -> bytes:
    return json.dumps(obj).encode()


def test_bucket_name_and_record_shape() -> None:
    assert membership_bucket("team-a") == "cotal_membership_team-a"
    rec = parse_record("UA1", _b({"live": ["ops", "team.>"], "durable": ["ops"],
                                  "observedAt": 1_700_000_000_000}))  # fmt: skip
    assert rec == FeedRecord("UA1", ("ops", "team.>"), ("ops",), 1_700_000_000_000)
    assert rec.on("ops") == (True, True)
    assert rec.on("team.x") == (True, False)
    assert rec.on("team") == (False, False)  # `team.>` does not cover `team`
    assert parse_record(FEED_KEY, _b({"observedAt": 1, "count": 2})) is None
    assert parse_record("UA2", b"not json") is None
    assert parse_record("UA2", _b([1, 2])) is None
    assert parse_record("UA2", _b({"other": 1})) is None
    odd = parse_record("UA3", _b({"live": "ops", "durable": [1, "", "x"], "observedAt": True}))
    assert odd == FeedRecord("UA3", (), ("x",), None)
    assert parse_heartbeat(_b({"observedAt": 5, "count": 2})) == FeedHeartbeat(5, 2)
    assert parse_heartbeat(b"{") is None


def _feed() -> BrokerFeed:
    feed = BrokerFeed()
    feed.read = FeedRead(
        (
            FeedRecord("UALICE", ("ops",), ("ops",), 1),
            FeedRecord("UBOBXXXXXX", ("team.>",), (), 1),
            FeedRecord("UCAROL", (), ("ops",), 1),
            FeedRecord("UDAVE", (">",), (), 1),
        ),
        FeedHeartbeat(0, 4),
    )
    return feed


def test_line_names_who_is_on_the_channel() -> None:
    feed = _feed()
    names = {"UALICE": "alice", "UCAROL": "carol", "UDAVE": "dave"}
    assert feed.line("ops", names) == (
        "alice (live, durable), carol (durable), dave (live) · broker feed as of 00:00:00, "
        "display only"
    )
    assert feed.line("team.x", names) == (
        "UBOBXXXX… (live), dave (live) · broker feed as of 00:00:00, display only"
    )
    feed.read = FeedRead((), FeedHeartbeat(0, 0))
    assert feed.line("ops", names) == "nobody on it · broker feed as of 00:00:00, display only"
    feed.read = FeedRead((FeedRecord("UALICE", ("ops",), (), 1),), None)
    assert feed.line("ops", names) == "alice (live) · broker feed no heartbeat yet, display only"
    feed.read = FeedRead((), None)  # a bucket nothing writes
    assert feed.line("ops", names) is None
    feed.read = None
    assert feed.line("ops", names) is None


def test_the_feed_is_never_evidence_for_a_green() -> None:
    """Every channel named full by the feed, the lease absent: the verdict is no-lease, no
    channel reads active, and the detail shows the feed line beside the not-green health."""
    data = lease_data("no-lease")
    line = _feed().line("ops", {"UALICE": "alice"})
    data.channels = replace(
        data.channels, channels=tuple(replace(c, broker_feed=line) for c in data.channels.channels)
    )
    model = ConsoleModel(FixtureSource(data), clock=MutableClock())
    snap = model.tick()
    assert snap.lease.verdict == "no-lease"
    assert all(r.health != "active" for r in snap.channels.rows), snap.channels.rows
    row = next(r for r in snap.channels.rows if r.name == "general")
    assert row.broker_feed == line
    detail = render.channel_detail(row)
    assert "broker feed" in detail and "alice (live, durable)" in detail
    assert "display only" in detail
