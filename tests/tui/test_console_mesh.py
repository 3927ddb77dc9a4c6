"""The console over a real space: embedded nats-server (auth mode), real endpoint and daemon."""

from __future__ import annotations

import asyncio
import contextlib
import io
from pathlib import Path

import pytest
from tui_helpers import static_text

from cotal_tui.commands.check import check
from cotal_tui.commands.console import run_plain
from cotal_tui.console.commands import Dispatcher, Join, Post, RetryNow
from cotal_tui.console.model import ConsoleModel
from cotal_tui.console.session import ConsoleSession, SessionOptions
from cotal_tui.delivery.daemon import DeliveryDaemon
from cotal_tui.mesh.connection import Connection
from cotal_tui.mesh.endpoint import Endpoint
from cotal_tui.mesh.events import MessageReceived
from cotal_tui.mesh.plane3_agent import Plane3Agent
from cotal_tui.server.local import LocalSpace
from cotal_tui.server.process import free_port
from cotal_tui.tui.app import ConsoleApp
from waiting import wait_for

pytestmark = pytest.mark.timeout(90)
SPACE = "cons"


def opts(space: LocalSpace, **kw) -> SessionOptions:
    base = dict(server=space.url, space=SPACE, creds=str(space.manager_creds),
                state_dir=str(space.state_dir))  # fmt: skip
    base.update(kw)
    return SessionOptions(**base)


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


async def test_check_names_no_daemon_then_serving(space):
    observer = opts(space, observer=True, read_only=True, name="check")
    result = await check(observer, timeout=8)
    assert result.code == 2, result.line
    assert (
        "delivery=no-lease" in result.line and "no delivery daemon holds the lease" in result.line
    )
    async with running_daemon(space):
        result = await check(observer, timeout=8)
        assert result.code == 0, result.line
        assert result.line.startswith("OK: ") and "delivery=serving" in result.line


async def test_check_unreachable_broker_is_critical(space):
    url = f"nats://127.0.0.1:{free_port('127.0.0.1')}"
    result = await check(opts(space, server=url, observer=True, connect_timeout=1), timeout=2)
    assert result.code == 2 and "link=unreachable" in result.line, result.line


async def test_console_daemon_refused_when_another_holds_the_lease(space):
    async with running_daemon(space, "dlv-other"):
        session = ConsoleSession(opts(space, daemon=True))
        model = ConsoleModel(session.source)
        try:
            await session.start(wait=True)
            snap = await wait_for(
                lambda: (s := model.tick()).lease.verdict == "serving" and s,
                what="the console to see the other daemon serving",
                timeout=30,
            )
            assert snap.daemon is not None and not snap.daemon.running
            assert "a live lease already exists" in snap.daemon.refused
            assert "running as a console only" in snap.daemon.refused
            assert snap.lease.holder == "dlv-other"
        finally:
            await session.stop()


async def test_console_over_the_mesh_roster_feed_join_post(space):
    alice_creds = await space.mint("alice", "agent", allow_publish=["general"],
                                   subscribe=["general"])  # fmt: skip
    session = ConsoleSession(opts(space, daemon=True, channels=["general"]))
    model = ConsoleModel(session.source)
    dispatcher = Dispatcher(session.source)
    alice = Endpoint(space.url, SPACE, name="alice", creds=str(alice_creds.path),
                     channels=["general"], durable=Plane3Agent)  # fmt: skip
    try:
        await session.start(wait=True)
        model.start()
        await alice.start()
        got: asyncio.Queue = asyncio.Queue()
        alice.on_event(lambda e: isinstance(e, MessageReceived) and got.put_nowait(e.inbound))
        snap = await wait_for(
            lambda: (
                (s := model.tick()).lease.verdict == "serving"
                and any(r.name == "alice" and r.status == "idle" for r in s.roster.rows)
                and s
            ),
            what="the in-process daemon serving and alice on the roster",
            timeout=30,
        )
        assert snap.daemon is not None and snap.daemon.running
        observed = session.source.roster().observed_at  # from the watch's public last_activity
        assert observed is not None and observed <= model.clock(), observed
        await alice.send("general", "hello @operator", mentions=["operator"])
        entry = await wait_for(
            lambda: next(
                (e for e in model.tick().feed.entries if e.text == "hello @operator"), None
            ),
            what="alice's post in the console feed",
            timeout=30,
        )
        assert entry.to_me and entry.target_label == "#general" and entry.sender_name == "alice"
        result = await dispatcher.run(Join("general"), model.tick())
        assert result.text == "Already on #general."
        result = await dispatcher.run(Post("general", "hi @alice"), model.tick())
        assert result.ok and "delivery not confirmed" in result.text
        mine = await wait_for(
            lambda: [e for e in model.tick().feed.entries if e.text == "hi @alice"],
            what="our own post in our feed",
            timeout=30,
        )
        assert len(mine) == 1 and mine[0].sender_name == "operator"
        inbound = await asyncio.wait_for(got.get(), 30)
        assert inbound.message.text == "hi @alice" and inbound.message.mentions == ["alice"]
        await alice.stop()
        await wait_for(
            lambda: any(
                r.name == "alice" and r.status == "offline" for r in model.tick().roster.rows
            ),
            what="alice to read offline after a graceful stop",
            timeout=30,
        )
    finally:
        await alice.stop()
        await model.stop()
        await session.stop()


async def test_plain_stream_over_the_mesh(space):
    async with running_daemon(space):
        out = io.StringIO()
        task = asyncio.create_task(run_plain(opts(space, name="op2"), out=out))
        try:
            await wait_for(
                lambda: "delivery serving:" in out.getvalue(),
                what="the plain stream to report the serving verdict",
                timeout=30,
            )
            await wait_for(
                lambda: "present op2" in out.getvalue(),
                what="the plain stream to list the console itself",
                timeout=30,
            )
        finally:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        assert "link connected" in out.getvalue()


async def test_tui_over_the_mesh_shows_serving_and_peers(space):
    session = ConsoleSession(opts(space, daemon=True))
    model = ConsoleModel(session.source)
    app = ConsoleApp(model, Dispatcher(session.source), on_start=lambda: session.start(),
                     on_stop=session.stop)  # fmt: skip
    async with app.run_test(size=(160, 44)) as pilot:
        await wait_for(
            lambda: "SERVING" in static_text(app, "#lease-body"),
            what="the lease pane to show SERVING from the in-process daemon",
            timeout=20,
        )
        assert "in-process daemon ready" in static_text(app, "#lease-body")
        rows = app.screen.query_one("#roster-table").rows
        assert any("operator" in r.cells[1][0] for r in rows)
        await pilot.press("q")
    assert session.daemon is not None and session.daemon.state.status == "stopped"


async def test_join_refused_by_acl_and_pending_boot_join_retry_now(space):
    alice = await space.mint("alice", "agent", allow_publish=["general"], subscribe=["general"])
    session = ConsoleSession(opts(space, creds=str(alice.path), name="alice",
                                  channels=["general"]))  # fmt: skip
    model = ConsoleModel(session.source)
    dispatcher = Dispatcher(session.source)
    try:
        await session.start(wait=True)
        result = await dispatcher.run(Join("secret"), model.tick())
        assert result.outcome == "failed"
        assert 'cannot join "secret"' in result.text and "read ACL" in result.text, result.text
        snap = await wait_for(
            lambda: (s := model.tick()).pending.rows and s,
            what="the boot join of #general to wait for a daemon",
            timeout=30,
        )
        row = snap.pending.rows[0]
        assert (row.operation, row.channel) == ("join", "general")
        assert "no responders" in (row.last_error or ""), row.last_error
        async with running_daemon(space):
            result = await dispatcher.run(RetryNow("general", "join"), model.tick())
            assert result.text == "Retrying join #general now.", result.text
            # An agent cred may not read the fan-out or INBOX consumers (PROTOCOL §8.4): the
            # daemon answers, but whether messages move is unknown, so never "serving".
            snap = await wait_for(
                lambda: (
                    (s := model.tick()).lease.rule == "progress-unknown"
                    and not s.pending.rows
                    and any(c.name == "general" and c.health == "active" for c in s.channels.rows)
                    and s
                ),
                what="the boot join to land: nothing pending, #general durable backstop active",
                timeout=20,
            )
            assert snap.lease.verdict == "unverified" and snap.lease.severity == "unknown"
            assert "may not read the fanout consumer" in snap.lease.consequence
            general = next(c for c in snap.channels.rows if c.name == "general")
            assert general.health_text == "durable backstop active" and general.generation
    finally:
        await session.stop()


async def test_an_operator_cred_console_reads_serving_where_an_agent_reads_unverified(space):
    """Issue 12 item 5: the operator profile (the console's default cred) may read the pipeline's
    progress, so a serving, moving daemon is green in its lease pane, not 'unverified'."""
    operator = await space.mint("desk", "operator")
    session = ConsoleSession(opts(space, creds=str(operator.path), name="desk",
                                  channels=["general"]))  # fmt: skip
    model = ConsoleModel(session.source)
    try:
        async with running_daemon(space):
            await session.start(wait=True)
            snap = await wait_for(
                lambda: (s := model.tick()).lease.verdict == "serving" and s,
                what="the operator console's lease pane to read serving (progress read)",
                timeout=30,
            )
            assert snap.lease.severity == "healthy" and snap.credential == "operator desk.creds"
    finally:
        await session.stop()


async def test_check_unprovisioned_space_says_it_is_the_wrong_space(space):
    options = opts(space, observer=True)
    options.space = "nope"
    result = await check(options, timeout=3)
    assert result.code == 2, result.line
    assert "link=wrong-space" in result.line, result.line
    assert "space 'nope' not found" in result.line, result.line


async def test_no_server_starts_the_embedded_space_and_acts_as_a_minted_agent(tmp_path: Path):
    port = free_port("127.0.0.1")
    state = tmp_path / ".cotal"
    session = ConsoleSession(SessionOptions(space="emb", state_dir=str(state), daemon=True,
                                            channels=["general"], embedded_port=port))  # fmt: skip
    model = ConsoleModel(session.source)
    try:
        await session.start(wait=True)
        assert session.local is not None, "nothing listened, so the session starts the server"
        assert session.creds == str(state / "operator.creds")
        assert any("minted" in n for n in session.notes), session.notes
        snap = await wait_for(
            lambda: (
                (s := model.tick()).lease.verdict == "serving"
                and any(c.name == "general" and c.health == "active" for c in s.channels.rows)
                and s
            ),
            what="the embedded space serving with #general durable for the minted operator",
            timeout=20,
        )
        assert snap.mode == "auth"
        result = await Dispatcher(session.source).run(Join("ops"), snap)
        assert result.text == "Joined #ops (durable backstop active).", result.text
    finally:
        server = session.local.server if session.local else None
        await session.stop()
    assert server is not None and not server.running, "the embedded server stopped with the session"


async def test_retry_now_refuses_a_row_owned_by_another_agent():
    from cotal_tui.console.adapter import MeshSource, RetryUnavailable

    ep = Endpoint("nats://127.0.0.1:1", SPACE, name="operator")  # never started: no I/O here
    source = MeshSource(ep)
    with pytest.raises(RetryUnavailable, match="ada's retry loops are not in this console"):
        await source.retry_now("general", "join", "ada")
    with pytest.raises(RetryUnavailable, match="no Plane-3 agent"):  # our own name passes
        await source.retry_now("general", "join", "operator")
