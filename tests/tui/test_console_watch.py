"""Live edits against a real space: the console config file and the creds file are watched."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from pathlib import Path

import pytest
from tui_helpers import notice

from cotal_tui.commands.console import console_app, run_plain
from cotal_tui.console.commands import Dispatcher, Post
from cotal_tui.console.config import ConsoleConfig, ConsoleFlags, effective
from cotal_tui.console.model import ConsoleModel
from cotal_tui.console.session import ConsoleSession, SessionOptions
from cotal_tui.console.watch import WatchedConfig
from cotal_tui.protocol.permissions import agent_permissions
from cotal_tui.server.auth import write_creds
from cotal_tui.server.local import LocalSpace
from cotal_tui.server.nats_jwt import Nkey, parse_creds
from waiting import wait_event, wait_for

pytestmark = pytest.mark.timeout(90)
SPACE = "live"


def write_config(path: Path, data: dict | str) -> None:
    """Save as an editor does: a temp file renamed over the old one."""
    tmp = path.with_name(f".{path.name}.swp")
    tmp.write_text(data if isinstance(data, str) else json.dumps(data))
    tmp.replace(path)


async def agent_creds(space: LocalSpace, name: str, publish: list[str]) -> Path:
    # no boot channels: the console runs as this agent, and these tests join by config edits
    minted = await space.mint(
        name, "agent", subscribe=[], allow_subscribe=[">"], allow_publish=publish
    )
    return minted.path


def remint(space: LocalSpace, path: Path, publish: list[str], *, same_user: bool = True) -> str:
    """Rewrite `path` with a new JWT (other publish rights); the same user key unless told."""
    assert space.auth is not None
    user = Nkey(parse_creds(path.read_text()).seed) if same_user else Nkey.create("user")
    perms = agent_permissions(SPACE, user.public, allow_subscribe=[">"], allow_publish=publish)
    write_creds(path, space.auth.mint_user("agent", perms, user))
    return user.public


def live_options(space: LocalSpace, creds: Path, config: Path, **kw) -> SessionOptions:
    text = config.read_text() if config.exists() else None
    flags = ConsoleFlags()
    running = effective(ConsoleConfig.model_validate_json(text or "{}"), flags)
    return SessionOptions(
        server=space.url,
        space=SPACE,
        creds=str(creds),
        name=running.name,
        channels=list(running.channels),
        daemon=True,
        daemon_creds=str(space.manager_creds),
        state_dir=str(space.state_dir),
        watch=True,
        config=WatchedConfig(path=config, flags=flags, running=running, text=text),
        **kw,
    )


def joined(model: ConsoleModel, channel: str) -> bool:
    return any(c.name == channel and c.joined for c in model.tick().channels.rows)


async def test_config_edits_switch_theme_join_leave_and_a_bad_edit_changes_nothing(
    space, tmp_path: Path
):
    creds = await agent_creds(space, "desk", [">"])
    config = tmp_path / "console.json"
    write_config(config, {"channels": ["general"]})
    session = ConsoleSession(live_options(space, creds, config))
    app = await console_app(session)
    async with app.run_test(size=(160, 44)) as pilot:
        await wait_for(lambda: session.watcher is not None, what="the session to start watching")
        assert session.watcher is not None
        await wait_event(session.watcher.armed, what="the watcher's first tick", timeout=15)
        await wait_for(lambda: joined(app.model, "general"), what="#general joined", timeout=30)
        start_theme = app.theme

        write_config(config, {"theme": "cotal-mono", "channels": ["general", "ops"]})
        await wait_for(lambda: app.theme == "cotal-mono", what="the theme to switch live")
        await wait_for(lambda: joined(app.model, "ops"), what="#ops joined by the edit", timeout=20)
        await wait_for(
            lambda: "applied" in notice(app) and "ops" in notice(app),
            what="the notice to say the config was applied and #ops joined",
        )

        applied = session.watcher.applied
        write_config(config, {"theme": "nord", "channels": ["general", "bad name"]})
        await wait_for(
            lambda: notice(app).startswith("config edit refused:"),
            what="the bad edit to be refused on the notice line",
        )
        text = notice(app)
        assert 'channels: invalid channel "bad name"' in text, text
        assert text.endswith("keeping the previous config"), text
        assert app.theme == "cotal-mono" and session.watcher.applied == applied

        write_config(config, {"theme": "no-such-theme", "channels": ["general"]})
        await wait_for(
            lambda: "'no-such-theme' is not a known theme" in notice(app),
            what="an unknown theme to be refused",
        )
        assert app.theme == "cotal-mono" and joined(app.model, "ops"), "nothing changed"

        write_config(config, {"channels": ["ops"]})
        await wait_for(
            lambda: not joined(app.model, "general"), what="#general left by the edit", timeout=20
        )
        await wait_for(lambda: app.theme == start_theme, what="the theme back to the default")
        assert joined(app.model, "ops")
        await pilot.press("q")


async def test_rewritten_creds_reconnect_with_the_new_jwt_and_other_identities_are_refused(
    space, tmp_path: Path
):
    creds = await agent_creds(space, "writer", ["general"])
    config = tmp_path / "console.json"
    session = ConsoleSession(live_options(space, creds, config, connect_timeout=3.0))
    notices: list[tuple[str, str]] = []
    session.hooks.notice = lambda text, outcome: notices.append((text, outcome))
    model = ConsoleModel(session.source)
    dispatcher = Dispatcher(session.source)
    try:
        await session.start(wait=True)
        assert session.watcher is not None
        await wait_event(session.watcher.armed, what="the watcher's first tick", timeout=15)
        refused = await dispatcher.run(Post("ops", "before"), model.tick())
        assert refused.outcome == "failed", refused.text
        assert "got no PubAck" in refused.text, refused.text
        generation = session.ep.conn.generation

        remint(space, creds, ["general", "ops"])
        await wait_for(
            lambda: session.ep.conn.generation > generation and session.ep.connected,
            what="the endpoint to reconnect after the creds rewrite",
            timeout=20,
        )
        assert any("reconnecting with the new JWT" in t for t, _ in notices), notices
        posted = await dispatcher.run(Post("ops", "after"), model.tick())
        assert posted.outcome == "ok", f"the new JWT allows #ops: {posted.text}"

        generation = session.ep.conn.generation
        refused_before = session.watcher.refused
        remint(space, creds, ["general", "ops"], same_user=False)
        await wait_for(
            lambda: session.watcher.refused > refused_before,
            what="a creds file for another identity to be refused",
        )
        text, outcome = notices[-1]
        assert outcome == "refused" and "identity change" in text and "restart" in text, text
        assert session.ep.conn.generation == generation, "no reconnect for a refused file"
    finally:
        await session.stop()


async def test_plain_stream_says_what_a_config_edit_did(space, tmp_path: Path):
    creds = await agent_creds(space, "liner", [">"])
    config = tmp_path / "console.json"
    out = io.StringIO()
    task = asyncio.create_task(run_plain(live_options(space, creds, config), out=out))
    try:
        await wait_for(
            lambda: "link connected" in out.getvalue(),
            what="the plain stream to connect",
            timeout=30,
        )
        write_config(config, {"channels": ["general"]})
        await wait_for(
            lambda: "# config " in out.getvalue() and "Joined #general" in out.getvalue(),
            what="a '#' line saying the created config file joined #general",
            timeout=20,
        )
        write_config(config, "{not json")
        await wait_for(
            lambda: "# config edit refused: " in out.getvalue(),
            what="a '#' line refusing the broken edit",
        )
        config.unlink()
        await wait_for(
            lambda: f"# {config} was removed" in out.getvalue(),
            what="a '#' line saying the config file was removed and the settings kept",
        )
    finally:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task


async def test_a_join_the_console_may_not_do_is_the_notice_headline(space, tmp_path: Path):
    creds = await agent_creds(space, "viewer", [">"])
    config = tmp_path / "console.json"
    write_config(config, {"readOnly": True})
    session = ConsoleSession(live_options(space, creds, config, read_only=True))
    notices: list[tuple[str, str]] = []
    session.hooks.notice = lambda text, outcome: notices.append((text, outcome))
    try:
        await session.start(wait=True)
        assert session.watcher is not None
        await wait_event(session.watcher.armed, what="the watcher's first tick", timeout=15)
        write_config(config, {"readOnly": False, "channels": ["general"]})
        await wait_for(lambda: notices, what="a notice about the edit")
        text, outcome = notices[-1]
        assert outcome == "refused", (outcome, text)
        assert "--read-only" in text and "readOnly apply at the next start" in text, text
    finally:
        await session.stop()
