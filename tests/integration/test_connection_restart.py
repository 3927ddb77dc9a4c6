"""A server restart in the middle: state stream, roster stale → current, everything re-armed."""

from __future__ import annotations

import asyncio
import uuid

from cotal_tui.mesh.connection import Closed, Connected, Reconnecting, Unreachable
from cotal_tui.mesh.endpoint import Endpoint
from cotal_tui.mesh.events import ConnectionChanged, MessageReceived, RosterViewChanged
from cotal_tui.server.process import EmbeddedServer, free_port
from waiting import wait_for

FAST = {"ttl_ms": 1500, "heartbeat_ms": 300, "sweep_ms": 300, "watch_heartbeat_ms": 300}


async def test_restart_recovers_roster_subscriptions_pumps_and_watchers(
    nats_server: EmbeddedServer,
) -> None:
    space = f"r{uuid.uuid4().hex[:6]}"
    alice = Endpoint(nats_server.url, space, name="alice", **FAST)  # type: ignore[arg-type]
    bob = Endpoint(nats_server.url, space, name="bob", **FAST)  # type: ignore[arg-type]
    events: list[object] = []
    bob.on_event(events.append)
    await alice.start()
    await bob.start()
    try:
        await bob.join_channel("general")
        await wait_for(
            lambda: (
                bob.roster_view == "current"
                and {p.card.name for p in bob.roster_entries() if p.status != "offline"}
                == {"alice", "bob"}
            ),
            what="bob's roster current with both peers",
        )
        nats_server.restart()
        await wait_for(lambda: bob.roster_view == "stale", what="bob's roster stale", timeout=10)
        await wait_for(lambda: bob.connected and alice.connected, what="reconnected", timeout=15)
        await wait_for(
            lambda: bob.roster_view == "current", what="roster current again", timeout=15
        )
        states = [e.state for e in events if isinstance(e, ConnectionChanged)]
        assert any(isinstance(s, Reconnecting) for s in states)
        assert isinstance(states[-1], Connected) and not states[-1].first
        views = [e.view for e in events if isinstance(e, RosterViewChanged)]
        assert views[-2:] == ["stale", "current"]

        def texts() -> list[str]:
            return [e.inbound.message.text for e in events if isinstance(e, MessageReceived)]

        await alice.send("general", "after restart")  # core subscription re-sent by the client
        await alice.send_dm("bob", "dm after restart")  # pump re-armed
        try:
            await wait_for(
                lambda: {"after restart", "dm after restart"} <= set(texts()),
                what="live chat and DM after the restart",
            )
        except AssertionError:
            print("TEXTS", texts())
            print("EVENTS", [e for e in events if not isinstance(e, MessageReceived)][-30:])
            raise
        await alice.registry.set_channel("general", {"description": "renamed"})
        await wait_for(
            lambda: bob.registry.description("general") == "renamed",
            what="the channel registry watch re-armed",
        )
        await alice.set_activity("typing")
        await wait_for(
            lambda: any(p.activity == "typing" for p in bob.roster_entries()),
            what="a presence change through the re-bound roster watch",
        )
    finally:
        await asyncio.wait_for(alice.stop(), 10)
        await asyncio.wait_for(bob.stop(), 10)
    assert isinstance(bob.connection_state, Closed)


async def test_stop_while_server_is_down_does_not_hang(nats_server: EmbeddedServer) -> None:
    ep = Endpoint(nats_server.url, "down", name="solo", **FAST)  # type: ignore[arg-type]
    await ep.start()
    await ep.join_channel("general")
    nats_server.stop()
    await wait_for(lambda: isinstance(ep.connection_state, Reconnecting), what="reconnecting")
    await wait_for(
        lambda: isinstance(ep.connection_state, Reconnecting) and ep.connection_state.attempt >= 1,
        what="a counted reconnect attempt",
    )
    await asyncio.wait_for(ep.stop(), 10)
    assert isinstance(ep.connection_state, Closed)


async def test_unreachable_server_fails_fast_with_a_reason() -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    ep = Endpoint(url, "nowhere", name="lost", connect_timeout=1.5)
    try:
        await asyncio.wait_for(ep.start(), 10)
    except Unreachable as exc:
        assert url in str(exc)
    else:
        raise AssertionError("start() against a closed port must raise Unreachable")
