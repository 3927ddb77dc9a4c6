"""`console --daemon`: the in-process daemon's panel says what it found below its fan-out's floor
at bind (``belowFloorAtBind`` / ``belowFloorAtBindUnknown`` in deliveryStats), as the lease pane
does for a daemon in another process — "unknown — why" for a cred without STREAM.MSG.GET, never
nothing or 0. And the state dir's delivery cred (minted by `up`, shared with the console) is
minted again for the same key when it lacks a grant, as `up` does; a cred passed with
--daemon-creds is the operator's and is left as it is.

Real parts: the space's own nats-server (auth mode), the console app under Pilot with its
in-process daemon.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tui_helpers import static_text

from cotal_tui.commands.console import console_app
from cotal_tui.console.session import ConsoleSession, SessionOptions
from cotal_tui.mesh.eviction_stats import BELOW_FLOOR_UNKNOWN
from cotal_tui.protocol.names import chat_stream, inbox_stream
from cotal_tui.protocol.permissions import Permissions, delivery_permissions
from cotal_tui.server.auth import write_creds
from cotal_tui.server.local import LocalSpace, start_local_space
from cotal_tui.server.nats_jwt import Nkey, parse_creds
from waiting import wait_for

pytestmark = pytest.mark.timeout(90)
SPACE = "bfl"
SIZE = (160, 50)


@pytest.fixture
async def space(tmp_path: Path):
    local = await start_local_space(SPACE, state_dir=tmp_path / ".cotal", port=0)
    try:
        yield local
    finally:
        local.stop()


def old_delivery_cred(space: LocalSpace, path: Path) -> tuple[str, list[str]]:
    """A delivery cred of this trust chain as minted before issue 11: no STREAM.MSG.GET on
    CHAT and INBOX. (its user key, the grants it lacks)"""
    user = Nkey.create("user")
    perms = delivery_permissions(SPACE, user.public)
    missing = [
        f"$JS.API.STREAM.MSG.GET.{chat_stream(SPACE)}",
        f"$JS.API.STREAM.MSG.GET.{inbox_stream(SPACE)}",
    ]
    assert all(g in perms.pub_allow for g in missing)
    old = Permissions(
        pub_allow=tuple(g for g in perms.pub_allow if g not in missing),
        pub_deny=perms.pub_deny,
        sub_allow=perms.sub_allow,
        sub_deny=perms.sub_deny,
    )
    write_creds(path, space.auth.mint_user("delivery", old, user))
    return user.public, missing


def pub_allowed(path: Path) -> tuple[str, set[str]]:
    creds = parse_creds(path.read_text())
    return creds.public, set(creds.claims["nats"]["pub"]["allow"])


def daemon_session(space: LocalSpace, daemon_creds: Path | None = None) -> ConsoleSession:
    return ConsoleSession(
        SessionOptions(
            space=SPACE, state_dir=str(space.state_dir), daemon=True,
            embedded_port=space.server.port,
            daemon_creds=None if daemon_creds is None else str(daemon_creds),
        )
    )  # fmt: skip


async def test_the_daemon_panel_says_the_below_floor_count_is_unknown_and_why(space, tmp_path):
    """--daemon-creds on an old cred (the operator's, not re-minted): the panel names the
    missing grants instead of showing nothing (which would read as "none below the floor")."""
    cred = tmp_path / "old-delivery.creds"
    ident, missing = old_delivery_cred(space, cred)
    before = cred.read_text()
    session = daemon_session(space, cred)
    app = await console_app(session)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(
                lambda: (
                    BELOW_FLOOR_UNKNOWN in static_text(app, "#lease-body")
                    and "lacks" in static_text(app, "#lease-body")
                ),
                what="the in-process daemon's panel to say the below-floor count is unknown "
                "and why",
                timeout=30,
            )
            body = " ".join(static_text(app, "#lease-body").split())
            assert all(g in body for g in missing), body
            daemon = app.model.snapshot.daemon
            assert daemon is not None and daemon.running, daemon
            assert daemon.below_floor_at_bind is None, daemon  # unknown is never a figure
            assert session.daemon is not None and session.daemon.daemon_id == ident
            await pilot.press("q")
    finally:
        await session.stop()
    assert cred.read_text() == before  # not the console's cred: left as it is


async def test_console_daemon_re_mints_the_state_dirs_old_delivery_cred_like_up(space):
    """The state dir's delivery cred (what `up` mints and the console's daemon runs as) lacking
    the MSG.GET grants: minted again for the same key before the daemon connects, so it counts
    below the floor (no "unknown — lacks" line), and the console says it did."""
    path = space.auth.dir / f"delivery.{SPACE}.creds"
    ident, missing = old_delivery_cred(space, path)
    session = daemon_session(space)
    app = await console_app(session)
    try:
        key, allowed = pub_allowed(path)
        assert key == ident and set(missing) <= allowed, sorted(set(missing) - allowed)
        assert any("re-minted" in n and missing[0] in n for n in session.notes), session.notes
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(
                lambda: (
                    session.daemon is not None
                    and session.daemon.state.status == "serving"
                    and session.daemon.state.below_floor_unknown is None
                ),
                what="the in-process daemon serving with the below-floor count made",
                timeout=30,
            )
            assert session.daemon is not None and session.daemon.daemon_id == ident
            await wait_for(
                lambda: (
                    "in-process daemon ready" in (t := static_text(app, "#lease-body"))
                    and BELOW_FLOOR_UNKNOWN not in t
                ),
                what="the daemon panel drawn without an unknown below-floor count",
                timeout=30,
            )
            await pilot.press("q")
    finally:
        await session.stop()
