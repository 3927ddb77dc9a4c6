"""The console as an agent (`console --creds alice.creds`) over a real auth-mode space with the
delivery daemon: identity and ACL from the cred, boot channels joined durably, the memberships of
an earlier run shown joined (durable) and leavable with a tombstone, offline messages marked as
backlog, and a fail-closed leave retried in the Pending pane until the tombstone lands."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest
from tui_helpers import screen_text

from cotal_tui.console.commands import Dispatcher, Dm, Join, Leave, Post, RetryNow
from cotal_tui.console.model import ConsoleModel
from cotal_tui.console.session import ConsoleSession, SessionOptions
from cotal_tui.delivery.daemon import DeliveryDaemon
from cotal_tui.delivery.members import read_member
from cotal_tui.mesh.connection import Connection
from cotal_tui.mesh.endpoint import Endpoint
from cotal_tui.mesh.kv import KvBucket
from cotal_tui.mesh.plane3_agent import Plane3Agent
from cotal_tui.protocol.names import dlv_durable, dlv_stream, members_bucket
from cotal_tui.server.local import LocalSpace
from cotal_tui.tui.app import ConsoleApp
from waiting import wait_for

pytestmark = pytest.mark.timeout(120)
SPACE = "agents"


@pytest.fixture
async def admin(space: LocalSpace):
    conn = Connection(space.url, "admin", "admin", creds=str(space.manager_creds))
    await conn.connect()
    try:
        yield conn
    finally:
        await conn.close()


def agent_opts(space: LocalSpace, creds: Path) -> SessionOptions:
    # no name given: the console's default ("operator") must not win over the cred's name
    return SessionOptions(
        server=space.url, space=SPACE, creds=str(creds), state_dir=str(space.state_dir)
    )


@contextlib.asynccontextmanager
async def running_daemon(space: LocalSpace, name: str = "dlv-a"):
    conn = Connection(space.url, "delivery", name, creds=str(space.manager_creds))
    await conn.connect()
    daemon = DeliveryDaemon(conn, SPACE, name)
    await daemon.start()
    try:
        yield daemon
    finally:
        await daemon.stop()
        await conn.close()


async def _tombstoned(admin: Connection, channel: str, owner: str) -> bool:
    rec = await read_member(KvBucket(admin, members_bucket(SPACE)), channel, owner)
    return rec is not None and rec.record.leave_cursor is not None


async def test_console_is_the_agent_of_its_cred(space, admin):
    alice = await space.mint(
        "alice",
        "agent",
        subscribe=["general"],
        allow_subscribe=["general", "review"],
        allow_publish=["general"],
    )
    bob = await space.mint(
        "bob",
        "agent",
        subscribe=["general"],
        allow_subscribe=["general", "review"],
        allow_publish=["general", "review"],
    )
    async with running_daemon(space):
        # an earlier run of alice joins #review durably, then goes away
        first = ConsoleSession(agent_opts(space, alice.path))
        try:
            await first.start(wait=True)
            await wait_for(
                lambda: first.ep.has_durable_membership("general"),
                what="the boot self-join of #general",
                timeout=30,
            )
            joined = await Dispatcher(first.source).run(Join("review"), None)
            assert joined.text == "Joined #review (durable backstop active).", joined.text
        finally:
            await first.stop()

        # bob posts while alice is offline: only her durable membership carries it
        sender = Endpoint(space.url, SPACE, name="bob", creds=str(bob.path), durable=Plane3Agent)
        await sender.start()
        try:
            away = await sender.send("general", "while you were out")
            await wait_for(
                lambda: _dlv_pending(admin, alice.public_key),
                what="the offline message waiting in alice's dlv_",
                timeout=30,
            )
        finally:
            await sender.stop()

        session = ConsoleSession(agent_opts(space, alice.path))
        model = ConsoleModel(session.source)
        app = ConsoleApp(
            model,
            Dispatcher(session.source),
            on_start=lambda: session.start(),
            on_stop=session.stop,
        )
        async with app.run_test(size=(160, 44)) as pilot:
            text = await wait_for(
                lambda: "backlog · while you were out" in (t := screen_text(app)) and t,
                what="the offline message in the feed, marked as backlog",
                timeout=30,
            )
            assert "as alice (agent) · read #general #review · post #general" in text, text
            snap = await wait_for(
                lambda: (
                    (s := model.tick()).channels.rows
                    and all(
                        any(
                            c.name == ch and c.joined and c.health == "active"
                            for c in s.channels.rows
                        )
                        for ch in ("general", "review")
                    )
                    and s
                ),
                what="#general (boot) and #review (earlier run) joined with the backstop active",
                timeout=30,
            )
            rows = {c.name: c for c in snap.channels.rows}
            assert rows["general"].generation and rows["review"].generation
            me = [r for r in snap.roster.rows if r.id == alice.public_key]
            assert me and me[0].name == "alice" and me[0].kind == "agent", me
            assert not any(r.name == "operator" for r in snap.roster.rows)
            entry = next(e for e in snap.feed.entries if e.id == away.id)
            assert entry.backlog and not entry.historical
            assert sum(1 for e in snap.feed.entries if e.id == away.id) == 1

            left = await Dispatcher(session.source).run(Leave("review"), snap)
            assert left.text == "Left #review.", left.text
            assert await _tombstoned(admin, "review", alice.public_key)
            assert "review" not in session.ep.joined_channels()
            await pilot.press("q")


async def _dlv_pending(admin: Connection, owner: str) -> bool:
    info = await admin.js.consumer_info(dlv_stream(SPACE), dlv_durable(owner))
    return info.num_pending >= 1


async def test_fail_closed_leave_retries_in_the_pending_pane(space, admin):
    carol = await space.mint("carol", "agent", subscribe=["general"])
    session = ConsoleSession(agent_opts(space, carol.path))
    model = ConsoleModel(session.source)
    dispatcher = Dispatcher(session.source)
    try:
        async with running_daemon(space):
            await session.start(wait=True)
            await wait_for(
                lambda: session.ep.has_durable_membership("general"),
                what="the boot self-join of #general",
                timeout=30,
            )
        # the daemon is gone: the leave fails closed, and keeps trying in the background
        result = await dispatcher.run(Leave("general"), model.tick())
        assert result.outcome == "failed", result
        assert "failed closed" in result.text and "Pending pane" in result.text, result.text
        assert "general" in session.ep.joined_channels()
        snap = await wait_for(
            lambda: (s := model.tick()).pending.rows and s,
            what="the leave retry in the Pending pane",
            timeout=30,
        )
        row = snap.pending.rows[0]
        assert (row.operation, row.channel) == ("leave", "general"), row
        assert not await _tombstoned(admin, "general", carol.public_key)

        async with running_daemon(space, "dlv-b"):
            await wait_for(
                lambda: _retry(dispatcher, model),
                what="retry-now to reach the pending leave",
                timeout=30,
            )
            await wait_for(
                lambda: (
                    not model.tick().pending.rows and "general" not in session.ep.joined_channels()
                ),
                what="the tombstone to land and #general to be left",
                timeout=30,
            )
            assert await _tombstoned(admin, "general", carol.public_key)
    finally:
        await session.stop()


async def _retry(dispatcher: Dispatcher, model: ConsoleModel) -> bool:
    snap = model.tick()
    if not snap.pending.rows:
        return True  # it landed by itself
    result = await dispatcher.run(RetryNow("general", "leave"), snap)
    return result.ok


async def test_console_agent_and_agent_process_talk(space, tmp_path, procs):
    """(The daemon runs in this loop: every blocking wait on the process goes to a thread.)

    A console running as alice and a `cotal-tui agent` process as bob, on one space with
    the daemon: each sees the other's posts and DMs, bob's roster shows alice as an agent."""
    from agent_process import AgentProcess

    alice = await space.mint("alice", "agent", subscribe=["general"], allow_publish=["general"])
    bob = await space.mint("bob", "agent", subscribe=["general"], allow_publish=["general"])
    async with running_daemon(space):
        session = ConsoleSession(agent_opts(space, alice.path))
        model = ConsoleModel(session.source)
        dispatcher = Dispatcher(session.source)
        try:
            await session.start(wait=True)
            model.start()
            bob_p = AgentProcess(
                ["--creds", str(bob.path), "--server", space.url, "--space", SPACE], cwd=tmp_path
            )
            procs.append(bob_p)
            await asyncio.to_thread(
                bob_p.wait,
                lambda o: o.get("event") == "joined" and o.get("durable") is True,
                what="bob's boot join, durable",
            )
            await wait_for(
                lambda: any(
                    r.name == "bob" and r.status == "idle" for r in model.tick().roster.rows
                ),
                what="bob on alice's roster",
                timeout=30,
            )
            sent = await asyncio.to_thread(bob_p.call, "send", channel="general", text="hi alice")
            assert sent["ok"], sent
            entry = await wait_for(
                lambda: next((e for e in model.tick().feed.entries if e.id == sent["msgId"]), None),
                what="bob's post in alice's console feed",
                timeout=30,
            )
            assert entry.sender_name == "bob" and not entry.backlog
            posted = await dispatcher.run(Post("general", "hi bob"), model.tick())
            assert posted.ok, posted.text
            got = await asyncio.to_thread(
                bob_p.wait,
                lambda o: o.get("event") == "message" and o.get("text") == "hi bob",
                what="alice's post at bob",
            )
            assert got["from"] == {"id": alice.public_key, "name": "alice"}
            dm = await dispatcher.run(Dm("bob", "just you"), model.tick())
            assert dm.ok, dm.text
            got = await asyncio.to_thread(
                bob_p.wait, lambda o: o.get("kind") == "dm", what="alice's DM at bob"
            )
            assert got["text"] == "just you"
            roster = (await asyncio.to_thread(bob_p.call, "roster"))["roster"]
            me = [r for r in roster if r["name"] == "alice"]
            assert me and me[0]["kind"] == "agent" and me[0]["id"] == alice.public_key, roster
            bob_p.close_stdin()
            assert await asyncio.to_thread(bob_p.wait_exit) == 0
            await wait_for(
                lambda: any(
                    r.name == "bob" and r.status == "offline" for r in model.tick().roster.rows
                ),
                what="bob offline on alice's roster after his EOF",
                timeout=30,
            )
        finally:
            await model.stop()
            await session.stop()
