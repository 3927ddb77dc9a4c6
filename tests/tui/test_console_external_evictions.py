"""The console shows a daemon in another process's evictedBeforeRouting (issue 11, item 3).

A real `cotal-tui daemon` process serves an auth-mode space; while no daemon routes, one sender
publishes more than CHAT keeps per sender (1,000), so the successor daemon counts what CHAT
evicted before it was routed. The console (no in-process daemon) reads it over ctl.delivery
(``deliveryStats``), as `status --json` does, and says it in plain words; a figure it could not
read is "unknown", never 0.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cli_process import CliProcess
from plane3_support import chat_message, connect, request_delivery, set_acl, set_channel_class
from tui_helpers import static_text

from cotal_tui.console.commands import Dispatcher
from cotal_tui.console.model import ConsoleModel
from cotal_tui.console.session import ConsoleSession, SessionOptions
from cotal_tui.server.local import LocalSpace, start_local_space
from cotal_tui.tui.app import ConsoleApp
from waiting import wait_for

pytestmark = pytest.mark.timeout(120)
SPACE = "evx"
MEMBER = "UMEMBEREVX" + "M" * 46
SENDER = "USENDEREVX" + "S" * 46
EVICTED_LOG = re.compile(r"! delivery: (\d+) message\(s\) on #hot were evicted from CHAT")
EVICTED_PANE = re.compile(r"(\d+) messages? on #hot never reached offline members: evicted")


@pytest.fixture
async def space(tmp_path: Path):
    local = await start_local_space(SPACE, state_dir=tmp_path / ".cotal", port=0)
    try:
        yield local
    finally:
        local.stop()


def daemon_process(space: LocalSpace, creds: Path, cwd: Path) -> CliProcess:
    proc = CliProcess(
        ["daemon", "--server", space.url, "--space", SPACE, "--creds", str(creds)], cwd=cwd
    )
    proc.wait_line("✓ delivery: serving", timeout=30)
    return proc


def console_app(space: LocalSpace) -> tuple[ConsoleSession, ConsoleApp]:
    session = ConsoleSession(
        SessionOptions(
            server=space.url, space=SPACE, creds=str(space.manager_creds),
            state_dir=str(space.state_dir),
        )
    )  # fmt: skip
    model = ConsoleModel(session.source)
    app = ConsoleApp(model, Dispatcher(session.source), on_start=lambda: session.start(),
                     on_stop=session.stop)  # fmt: skip
    return session, app


async def test_console_shows_an_external_daemons_evictions_in_plain_words(space, tmp_path):
    minted = await space.mint("dlv-ext", profile="delivery")
    tools = await connect(space.url, "evx-tools", str(space.manager_creds))
    first = daemon_process(space, minted.path, tmp_path)
    successor: CliProcess | None = None
    try:
        await set_channel_class(tools, SPACE, "hot", "durable")
        for ident in (MEMBER, SENDER):
            await set_acl(tools, SPACE, ident, ["hot"])
        reply = await request_delivery(tools, SPACE, MEMBER, "durableJoin", {"channel": "hot"})
        assert reply.get("ok") and reply["data"]["durable"], reply
        first.terminate()  # a clean hand-over: the lease is released, nothing is routing now
        for i in range(2_500):  # CHAT keeps the newest 1,000 of this sender's subject
            subject, data, mid = chat_message(SPACE, SENDER, "hot", f"m{i}")
            await tools.js.publish(subject, data, headers={"Nats-Msg-Id": mid})
        successor = daemon_process(space, minted.path, tmp_path)
        await wait_for(
            lambda: EVICTED_LOG.search(successor.output) is not None,
            what="the daemon process to log the messages CHAT evicted before routing",
            timeout=30,
        )
        logged = sum(int(m.group(1)) for m in EVICTED_LOG.finditer(successor.output))
        assert logged >= 1_000, successor.output  # 1,500 were evicted before anyone routed them

        session, app = console_app(space)
        async with app.run_test(size=(160, 50)) as pilot:
            await wait_for(
                lambda: EVICTED_PANE.search(static_text(app, "#lease-body")) is not None,
                what="the lease pane to say how many #hot messages never reached offline members",
                timeout=30,
            )
            shown = int(EVICTED_PANE.search(static_text(app, "#lease-body")).group(1))
            # the daemon's own count, read from the other process (its log says the same)
            assert shown == logged, static_text(app, "#lease-body")
            assert session.daemon is None  # no in-process daemon: read over ctl.delivery
            await pilot.press("q")
    finally:
        first.terminate()
        if successor is not None:
            successor.terminate()
        await tools.close()


async def test_console_says_unknown_when_no_daemon_answers(space):
    """No daemon serving: the figure is unknown, never shown as 0."""
    _session, app = console_app(space)
    async with app.run_test(size=(160, 50)) as pilot:
        await wait_for(
            lambda: "evicted before routing: unknown" in static_text(app, "#lease-body"),
            what="the lease pane to say the evicted-before-routing figure is unknown",
            timeout=30,
        )
        assert not EVICTED_PANE.search(static_text(app, "#lease-body"))
        await pilot.press("q")
