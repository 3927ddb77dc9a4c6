"""Item 4 of issue 12: `--read-only` and credentials that cannot consume build the observer
endpoint (no consumers, no presence, no durable calls), and nothing asks `ctl.delivery` with a
credential that may not publish there, so the console starts straight to a current roster."""

from __future__ import annotations

from pathlib import Path

import nats
import pytest

from cotal_tui.console.model import ConsoleModel
from cotal_tui.console.session import ConsoleSession, SessionOptions
from cotal_tui.mesh.durable import LiveOnly
from cotal_tui.mesh.plane3_agent import Plane3Agent
from cotal_tui.server.local import LocalSpace, start_local_space
from waiting import wait_for

pytestmark = pytest.mark.timeout(90)
SPACE = "lp"


async def _quiet(exc: Exception) -> None:
    return None


async def start_and_watch_ctl(space: LocalSpace, options: SessionOptions):
    """Start a session while recording every ctl.delivery request on the space; returns the
    session, its model's first current snapshot and the durable calls (joins, leaves) seen."""
    seen: list[str] = []
    nc = await nats.connect(space.url, user_credentials=str(space.manager_creds), error_cb=_quiet)

    async def record(msg) -> None:
        if b"listMemberships" not in msg.data:  # the lease pane's responder probe reads only
            seen.append(msg.data.decode(errors="replace"))

    sub = await nc.subscribe(f"cotal.{SPACE}.ctl.delivery.>", cb=record)
    session = ConsoleSession(options)
    model = ConsoleModel(session.source)
    try:
        await session.start()
        snap = await wait_for(
            lambda: (
                (s := model.tick()).roster.view == "current"
                and session._started()
                and s.connection.state == "connected"
                and s
            ),
            what="the console started, connected, roster current (no consumer loop, no 30 s "
            "durable join, no refused presence write)",
            timeout=30,
        )
        assert session.source.start_error is None, session.source.start_error
        await nc.flush()
        return session, snap, seen
    except BaseException:
        await session.stop()
        raise
    finally:
        await sub.unsubscribe()
        await nc.close()


@pytest.mark.parametrize("profile", ["observer", "admin"])
async def test_a_cred_that_cannot_consume_runs_as_an_observer(space: LocalSpace, profile: str):
    minted = await space.mint(f"look-{profile}", profile)
    options = SessionOptions(server=space.url, space=SPACE, creds=str(minted.path),
                             channels=["general"], state_dir=str(space.state_dir))  # fmt: skip
    session, snap, seen = await start_and_watch_ctl(space, options)
    try:
        assert session.ep.consume is False or profile == "admin"
        assert isinstance(session.ep.durable, LiveOnly), type(session.ep.durable)
        assert seen == [], f"a {profile} cred asked ctl.delivery: {seen}"
        assert snap.connection.state == "connected"
    finally:
        await session.stop()


async def test_read_only_builds_the_observer_endpoint(space: LocalSpace):
    minted = await space.mint("reader", "agent", allow_subscribe=[">"], allow_publish=[">"])
    options = SessionOptions(server=space.url, space=SPACE, creds=str(minted.path),
                             channels=["general"], read_only=True,
                             state_dir=str(space.state_dir))  # fmt: skip
    session, snap, seen = await start_and_watch_ctl(space, options)
    try:
        assert session.ep.consume is False and session.ep.register_presence is False
        assert isinstance(session.ep.durable, LiveOnly)
        assert seen == [], f"a read-only console asked ctl.delivery: {seen}"
        assert all(r.id != session.ep.id for r in snap.roster.rows), "no presence of its own"
    finally:
        await session.stop()


async def test_an_agent_cred_keeps_its_durable_membership(space: LocalSpace):
    minted = await space.mint("writer", "agent", allow_subscribe=[">"], allow_publish=[">"])
    options = SessionOptions(server=space.url, space=SPACE, creds=str(minted.path),
                             state_dir=str(space.state_dir))  # fmt: skip
    session = ConsoleSession(options)
    try:
        assert isinstance(session.ep.durable, Plane3Agent) and session.ep.consume
    finally:
        await session.stop()


async def test_the_header_says_which_cred_is_in_use(space: LocalSpace):
    from tui_helpers import static_text

    from cotal_tui.console.commands import Dispatcher
    from cotal_tui.tui.app import ConsoleApp

    minted = await space.mint("desk", "observer")
    options = SessionOptions(server=space.url, space=SPACE, creds=str(minted.path),
                             state_dir=str(space.state_dir))  # fmt: skip
    session = ConsoleSession(options)
    model = ConsoleModel(session.source)
    app = ConsoleApp(model, Dispatcher(session.source), on_start=lambda: session.start(),
                     on_stop=session.stop)  # fmt: skip
    async with app.run_test(size=(200, 50)) as pilot:
        await wait_for(
            lambda: "cred observer desk.creds" in static_text(app, "#topbar-main"),
            what="the header to name the observer cred in use",
            timeout=20,
        )
        await pilot.press("q")


async def test_the_lease_pane_says_what_a_restarted_up_waits_for(space: LocalSpace):
    """Issue 12 item 2 (the takeover itself is issue 11's): `up` was SIGKILLed, its daemon's
    lease.0 is left unrenewed; the console names the holder and what `up` waits for."""
    import json
    import time

    from cotal_tui.mesh.endpoint import creds_identity

    up_daemon = creds_identity(str(space.auth.delivery_creds_path()))
    nc = await nats.connect(space.url, user_credentials=str(space.manager_creds), error_cb=_quiet)
    try:
        body = {"holder": up_daemon, "since": int(time.time() * 1000) - 25_000, "ready": True}
        await nc.jetstream().publish(
            f"$KV.cotal_delivery_{SPACE}.lease.0", json.dumps(body).encode()
        )
    finally:
        await nc.close()
    options = SessionOptions(server=space.url, space=SPACE, creds=str(space.manager_creds),
                             observer=True, state_dir=str(space.state_dir))  # fmt: skip
    session = ConsoleSession(options)
    model = ConsoleModel(session.source)
    try:
        await session.start()
        lease = await wait_for(
            lambda: (s := model.tick()).lease.holder == up_daemon and s.lease,
            what="the lease pane to read the crashed up's lease",
            timeout=30,
        )
        assert lease.holder == up_daemon
        note = lease.holder_note or ""
        assert "in-process daemon of cotal-tui up" in note, note
        assert "restarted up waits for this lease to expire" in note and "expires in" in note
    finally:
        await session.stop()


async def test_the_in_process_daemon_prefers_the_delivery_cred(tmp_path: Path):
    """Issue 12 item 5: the manager cred is the console daemon's fallback only where the state
    dir has no delivery cred."""
    from cotal_tui.mesh.endpoint import creds_identity

    local = await start_local_space("dc", state_dir=tmp_path / ".cotal", port=0)
    try:
        delivery = local.auth.delivery_creds_path()
        options = SessionOptions(space="dc", state_dir=str(local.state_dir), daemon=True,
                                 embedded_port=local.server.port)  # fmt: skip
        session = ConsoleSession(options)
        model = ConsoleModel(session.source)
        try:
            await session.start(wait=True)
            assert session.daemon_creds_default == str(delivery)
            lease = await wait_for(
                lambda: (s := model.tick()).lease.verdict == "serving" and s.lease,
                what="the console's in-process daemon serving",
                timeout=30,
            )
            assert lease.holder == creds_identity(str(delivery))
            assert lease.holder_note == "holder is this console's in-process daemon"
            assert "manager" not in (session.daemon_conn.creds or "")
        finally:
            await session.stop()
    finally:
        local.stop()


async def _default_session(space: LocalSpace) -> ConsoleSession:
    """A console on the space's own server with no --server and no --creds (the default)."""
    options = SessionOptions(space=SPACE, state_dir=str(space.state_dir), channels=["general"],
                             embedded_port=space.server.port)  # fmt: skip
    session = ConsoleSession(options)
    await session.prepare()
    return session


async def _started(session: ConsoleSession, model: ConsoleModel):
    await session.start()
    return await wait_for(
        lambda: (
            (s := model.tick()).roster.view == "current"
            and s.connection.state == "connected"
            and any(r.id == session.ep.id for r in s.roster.rows)
            and s
        ),
        what="the default console connected, its own presence on a current roster",
        timeout=30,
    )


async def test_the_default_cred_is_an_operator_never_the_manager(space: LocalSpace):
    """Item 5: on a local space the console mints <state-dir>/<name>.creds as an operator (an
    agent on every channel plus read-only monitoring), not the allow-all manager."""
    from cotal_tui.agent.identity import load_cred_card

    session = await _default_session(space)
    model = ConsoleModel(session.source)
    try:
        mine = space.state_dir / "operator.creds"
        assert session.creds == str(mine) and session.creds != str(space.manager_creds)
        assert load_cred_card(str(mine), SPACE).profile == "operator"
        assert any("minted" in n and "an operator" in n for n in session.notes), session.notes
        assert isinstance(session.ep.durable, Plane3Agent) and session.ep.consume
        snap = await _started(session, model)
        assert snap.credential == "operator operator.creds"
        # A participant: it posts on a channel it never named at mint time.
        from cotal_tui.console.commands import Post

        result = await session._dispatcher().run(Post("anywhere", "hello from the operator"), snap)
        assert result.ok, result
    finally:
        await session.stop()


async def test_an_agent_cred_already_at_the_default_path_keeps_working(space: LocalSpace):
    await space.mint("operator", "agent", allow_subscribe=[">"], allow_publish=[">"])
    session = await _default_session(space)
    model = ConsoleModel(session.source)
    try:
        assert session.creds == str(space.state_dir / "operator.creds")
        assert not any("minted" in n for n in session.notes), session.notes
        snap = await _started(session, model)
        assert snap.credential == "agent operator.creds"  # the header says which
    finally:
        await session.stop()
