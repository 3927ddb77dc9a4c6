"""Scenario 9, second half: the 0.9.0 reference's membership feed bucket
(`cotal_membership_<space>`, PROTOCOL §7.3/§9), read by our console as a display-only source.

The feed is written by the reference itself: its delivery daemon runs `startMembershipFeed` when
it finds the feed's scoped creds in `.cotal/` (provision.mjs mints them at `init`, as the
reference's `cotal up` does) — CONNZ live patterns ∪ open durable memberships, per agent id.

0.9.0: the channel detail of our console (on a reference `observer` cred) names who the feed says
is on the channel; after the reference daemon stops (SIGTERM releases its lease), the feed's
records stay, still shown, and the verdict is no-lease and the channel health not active — the
feed is never evidence for a green. 0.6.0: no bucket; nothing is shown, nothing changes.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

from conftest import RefSpace, start_ref_daemon
from refproc import NodeProcess

from cotal_tui.console.model import ConsoleModel
from cotal_tui.console.session import ConsoleSession, SessionOptions
from cotal_tui.tui import render
from waiting import wait_for

OPS = {"channels": {"ops": {"deliveryClass": "durable", "replay": False}}}
AGENT = {"subscribe": ["ops"], "allowPublish": ["ops"]}


def _lease(model: ConsoleModel) -> str:
    lease = model.tick().lease
    return f"{lease.verdict}: {lease.evidence}"


def _ops(model: ConsoleModel) -> Any:
    return next((c for c in model.tick().channels.rows if c.name == "ops"), None)


async def test_console_shows_the_membership_feed_display_only(
    ref_space: RefSpace,
    nodes: list[NodeProcess],
    our_agents: Any,
    ref_agents: Any,
    tmp_path: Path,
) -> None:
    await ref_space.channels(OPS)
    url, space = ref_space.url, ref_space.space
    feed = ref_space.build == "cotal-0.9.0"
    assert (ref_space.feed_root is not None) == feed
    daemon = await start_ref_daemon(
        nodes,
        ref_space.build,
        url,
        space,
        ref_space.delivery.creds,
        cwd=ref_space.feed_root,
        env={"COTAL_MEMBERSHIP_INTERVAL_MS": "1000"},
    )
    await daemon.wait_line(r"✓ delivery daemon up", timeout=30)
    if feed:
        await daemon.wait_line(r"✓ membership feed up", timeout=30)
    alice_c = await ref_space.agent("alice", **AGENT)
    bob_c = await ref_space.agent("bob", **AGENT)
    alice = await our_agents(url, space, "alice", creds=alice_c.creds, channels=["ops"])
    bob = await ref_agents(ref_space.build, url, space, "bob", creds=bob_c.creds, channels=["ops"])
    await wait_for(
        lambda: alice.ep.has_durable_membership("ops"),
        what="our agent's durable membership of ops",
        timeout=30,
    )

    watcher = await ref_space.mint("observer", "watcher")
    session = ConsoleSession(
        SessionOptions(
            server=url,
            space=space,
            creds=str(watcher.creds),
            state_dir=str(tmp_path / ".cotal"),
            observer=True,
        )
    )
    model = ConsoleModel(session.source)
    try:
        await session.start()
        model.start()
        try:
            await wait_for(session._started, timeout=30, what="the console session to start")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; start error: {session.source.start_error}") from None
        await wait_for(lambda: session.source.feed.sweeps >= 1, what="a sweep", timeout=30)
        if not feed:
            # (the 0.6.0 observer may not even ask about the bucket: the sweep fails quietly)
            assert session.source.feed.read is None, session.source.feed.read
            assert "membership" not in (session.source.last_error or ""), session.source.last_error
            await wait_for(
                lambda: model.tick().lease.verdict == "refused",
                timeout=30,
                what="the observer console's verdict `refused` (no lease read)",
            )
            row = await wait_for(
                lambda: _ops(model),
                timeout=30,
                what="the #ops row in the observer console's channels pane",
            )
            assert row.broker_feed is None and "broker feed" not in render.channel_detail(row)
            return

        want = ("alice (live, durable)", "bob (live, durable)")
        row = await wait_for(
            lambda: (
                (r := _ops(model)) is not None
                and r.broker_feed
                and all(w in r.broker_feed for w in want)
                and r
            ),
            what=f"#ops's detail to name {want} from the broker feed",
            timeout=30,
        )
        assert row.broker_feed.endswith("display only"), row.broker_feed
        assert "broker feed as of " in row.broker_feed
        detail = render.channel_detail(row)
        assert "broker feed" in detail and "bob (live, durable)" in detail, detail
        # a reference observer cannot read the lease (no read verb on KV_cotal_delivery_<space>):
        # the verdict is `refused`, however full the feed is
        await wait_for(
            lambda: model.tick().lease.verdict == "refused",
            timeout=30,
            what="the observer console's verdict `refused` (it may not read the lease)",
        )

        # the daemon stops: its lease goes, the feed's records stay — and are no evidence
        daemon.signal(signal.SIGTERM)
        assert await daemon.exited() == 0
        sweeps = session.source.feed.sweeps
        await wait_for(
            lambda: session.source.feed.sweeps > sweeps,
            what="a sweep of the feed after the daemon stopped",
            timeout=30,
        )
        row = _ops(model)
        assert row.broker_feed and "bob (live, durable)" in row.broker_feed, row.broker_feed
        assert model.tick().lease.verdict != "serving", _lease(model)
        await bob.call("stop")
    finally:
        await model.stop()
        await session.stop()
