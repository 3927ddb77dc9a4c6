"""`console --daemon` with the daemon's stages in processes (``COTAL_DELIVERY_STAGES=
processes``, issue 16): the in-process daemon serves through its two stages, the console joins
through it, and quitting the console stops both stages."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_process import pid_alive
from test_console_watch import SPACE, agent_creds, joined, live_options, write_config

from cotal_tui.commands.console import console_app
from cotal_tui.console.session import ConsoleSession
from cotal_tui.server.local import start_local_space
from waiting import wait_for

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
async def space(tmp_path: Path):
    local = await start_local_space(SPACE, state_dir=tmp_path / ".cotal", port=0)
    try:
        yield local
    finally:
        local.stop()


async def test_console_daemon_runs_its_stages_in_processes_and_stops_them(
    space, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COTAL_DELIVERY_STAGES", "processes")
    creds = await agent_creds(space, "desk", [">"])
    config = tmp_path / "console.json"
    write_config(config, {"channels": ["general"]})
    session = ConsoleSession(live_options(space, creds, config))
    app = await console_app(session)
    async with app.run_test(size=(160, 44)) as pilot:
        await wait_for(
            lambda: session.daemon is not None and session.daemon.state.status == "serving",
            what="the console's daemon serving",
            timeout=30,
        )
        assert session.daemon is not None
        pids = session.daemon.stage_pids
        assert set(pids) == {"fanout", "reader"}, pids
        assert all(p is not None and pid_alive(p) for p in pids.values()), pids
        await wait_for(lambda: joined(app.model, "general"), what="#general joined", timeout=30)
        await pilot.press("q")
    await session.stop()
    await wait_for(
        lambda: not any(p is not None and pid_alive(p) for p in pids.values()),
        what=f"both stages gone after the console quit ({pids})",
        timeout=30,
    )
