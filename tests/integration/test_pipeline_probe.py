"""The progress probe under auth: each profile reads what PROTOCOL §8.4 lets it, the rest is
unknown (never guessed), and a stalled fan-out is seen through an observer's CHAT grants."""

from __future__ import annotations

import time

from hostile_support import DaemonProcess
from plane3_support import connect, publish_chat

from cotal_tui.mesh.pipeline_probe import read_pipeline
from cotal_tui.protocol.pipeline import judge_pipeline
from waiting import wait_for

ALICE = "UALICE" + "A" * 50


async def test_each_profile_reads_what_it_may(auth_space, tmp_path):
    space, url = auth_space.space, auth_space.url
    delivery = await auth_space.mint("delivery", "delivery")
    observer = await auth_space.mint("obs", "observer")
    agent = await auth_space.mint("ag", "agent", subscribe=["general"])
    operator = await auth_space.mint("op", "operator")
    daemon = DaemonProcess(url, space, tmp_path, creds=delivery.path)
    manager = await connect(url, "manager", str(auth_space.manager_creds))
    conns = []
    try:
        await wait_for(daemon.serving, what="the daemon serves", timeout=30)
        daemon.pause()  # serving on paper, routing nothing
        await publish_chat(manager, space, ALICE, "general", "stuck behind a paused daemon")

        figs = await read_pipeline(manager, space, creds=str(auth_space.manager_creds))
        assert figs.unknown == {}, figs.unknown
        assert figs.fanout is not None and figs.fanout.pending >= 1
        assert figs.fanout.oldest_ms is not None and figs.reader is not None

        obs = await connect(url, observer.public_key, str(observer.path))
        conns.append(obs)
        figs = await read_pipeline(obs, space, creds=str(observer.path))
        assert figs.fanout is not None and figs.fanout.pending >= 1  # via its CHAT consumer grant
        assert figs.fanout.oldest_ms is not None
        assert set(figs.unknown) == {"reader"} and "INBOX" in figs.unknown["reader"]
        assert figs.dead is not None  # observer reads the dead-letter store
        assert judge_pipeline(figs).level != "ok"  # unknown (or stalled), never green

        # The operator (the project's own profile) reads every figure, the fan-out by
        # STREAM.MSG.GET on CHAT, the reader by its info alone (nothing pending there here).
        op = await connect(url, operator.public_key, str(operator.path))
        conns.append(op)
        t0 = time.monotonic()
        figs = await read_pipeline(op, space, creds=str(operator.path))
        assert time.monotonic() - t0 < 3  # asks nothing it may not ask
        assert figs.unknown == {}, figs.unknown
        assert figs.fanout is not None and figs.fanout.pending >= 1
        assert figs.fanout.oldest_ms is not None
        assert figs.reader is not None and figs.dead is not None and figs.consumers is not None

        ag = await connect(url, agent.public_key, str(agent.path))
        conns.append(ag)
        t0 = time.monotonic()
        figs = await read_pipeline(ag, space, creds=str(agent.path))
        assert time.monotonic() - t0 < 3  # asks nothing it may not ask (a denial is a timeout)
        assert set(figs.unknown) == {"fanout", "reader", "deadLetters"}
        assert figs.consumers is not None  # STREAM.INFO on the KV streams is every profile's
        assert judge_pipeline(figs).state == "unknown"
    finally:
        daemon.kill()
        for c in conns:
            await c.close()
        await manager.close()


async def test_an_operator_cred_reads_a_serving_space_green(auth_space, tmp_path):
    """Issue 12 item 5 with issue 10: the console's and status's default profile reads every
    progress figure, so a serving, moving space is green in `status --json` with it."""
    from cotal_tui.commands.status import take_snapshot

    space, url = auth_space.space, auth_space.url
    delivery = await auth_space.mint("delivery", "delivery")
    operator = await auth_space.mint("op", "operator")
    daemon = DaemonProcess(url, space, tmp_path, creds=delivery.path)
    manager = await connect(url, "manager", str(auth_space.manager_creds))
    try:
        await wait_for(daemon.serving, what="the daemon serves", timeout=30)
        await publish_chat(manager, space, ALICE, "general", "routed by a serving daemon")

        async def green():
            snap = await take_snapshot(url, space, creds=str(operator.path))
            return snap if snap["lease"]["green"] else None

        snap = await wait_for(green, what="status with the operator cred to say green", timeout=30)
        assert snap["connection"]["credential"] == "operator op.creds"
        assert snap["lease"]["verdict"] == "serving", snap["lease"]
        d = snap["delivery"]
        assert d["unknown"] == {} and d["moving"] is True, d
        assert d["fanoutPending"] == 0 and d["readerPending"] == 0, d
        assert d["deadLettered"] == 0 and d["consumers"], d
    finally:
        daemon.kill()
        await manager.close()
