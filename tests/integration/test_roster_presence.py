"""Presence and roster against a real nats-server: convergence, graceful offline, TTL sweep,
and the roster view state across a server restart."""

from __future__ import annotations

import uuid

from cotal_tui.mesh.connection import Connected, Connection, Reconnecting
from cotal_tui.mesh.presence import PresencePublisher, RosterWatch
from cotal_tui.mesh.roster import PresenceEvent
from cotal_tui.mesh.space import ensure_open_space
from cotal_tui.protocol.models import AgentCard
from cotal_tui.server.process import EmbeddedServer
from waiting import wait_for

TTL = 1500
BEAT = 300


async def node(
    server: EmbeddedServer, space: str, name: str
) -> tuple[Connection, PresencePublisher]:
    pid = str(uuid.uuid4())
    conn = Connection(server.url, name, pid)
    await conn.connect()
    await ensure_open_space(conn, space, presence_ttl_ms=TTL)
    pub = PresencePublisher(
        conn, space, AgentCard(id=pid, name=name, kind="agent"), heartbeat_ms=BEAT
    )
    return conn, pub


async def watcher(
    server: EmbeddedServer, space: str, events: list[PresenceEvent], views: list[str]
):
    conn = Connection(server.url, "watcher", str(uuid.uuid4()))
    await conn.connect()
    await ensure_open_space(conn, space, presence_ttl_ms=TTL)
    watch = RosterWatch(
        conn,
        space,
        ttl_ms=TTL,
        sweep_ms=300,
        watch_heartbeat_ms=300,
        on_presence=events.append,
        on_view=views.append,
    )
    await watch.start()
    return conn, watch


async def test_presence_converges_and_graceful_stop_is_offline(nats_server: EmbeddedServer) -> None:
    events: list[PresenceEvent] = []
    views: list[str] = []
    wconn, watch = await watcher(nats_server, "conv", events, views)
    a_conn, a = await node(nats_server, "conv", "alice")
    b_conn, b = await node(nats_server, "conv", "bob")
    try:
        await wait_for(lambda: watch.view == "current", what="roster current on an empty space")
        await a.start()
        await b.start()
        await wait_for(
            lambda: {p.card.name for p in watch.roster.live()} == {"alice", "bob"},
            what="both peers live in the roster",
        )
        await a.update(status="working", activity="testing")
        await wait_for(
            lambda: any(e.type == "update" and e.presence.activity == "testing" for e in events),
            what="an update event for alice's activity",
        )
        joins = [e for e in events if e.type == "join"]
        assert len(joins) == 2
        # Plain heartbeats refresh the roster silently: no event while several of them land.
        settled = len(events)
        ts0 = watch.roster.get(a.card.id).ts  # type: ignore[union-attr]
        await wait_for(
            lambda: watch.roster.get(a.card.id).ts >= ts0 + 2 * BEAT,  # type: ignore[union-attr]
            what="two more heartbeats from alice",
        )
        assert len(events) == settled
        await b.stop(graceful=True)
        await wait_for(
            lambda: any(e.type == "offline" and e.presence.card.name == "bob" for e in events),
            what="bob's graceful offline",
        )
        bob = next(p for p in watch.entries() if p.card.name == "bob")
        assert bob.status == "offline"  # offline peers stay listed
        assert [e.type for e in events].count("join") == 2
    finally:
        await a.stop()
        await watch.stop()
        for c in (a_conn, b_conn, wconn):
            await c.close()


async def test_killed_peer_is_swept_offline_after_ttl(nats_server: EmbeddedServer) -> None:
    events: list[PresenceEvent] = []
    wconn, watch = await watcher(nats_server, "kill", events, [])
    conn, pub = await node(nats_server, "kill", "victim")
    try:
        await pub.start()
        await wait_for(lambda: watch.roster.live(), what="victim live")
        # Abort the socket: no offline put, no more heartbeats.
        pub._task.cancel()  # type: ignore[union-attr]
        conn.nc._transport.close()  # type: ignore[union-attr]
        await conn.close()
        await wait_for(
            lambda: any(e.type == "offline" for e in events),
            what="the sweep turning the silent peer offline",
            timeout=TTL / 1000 + 3,
        )
        assert watch.entries()[0].status == "offline"
    finally:
        await watch.stop()
        await wconn.close()


async def test_server_restart_roster_stale_then_current(nats_server: EmbeddedServer) -> None:
    events: list[PresenceEvent] = []
    views: list[str] = []
    wconn, watch = await watcher(nats_server, "rs", events, views)
    states: list[object] = []
    wconn.add_state_listener(states.append)
    conn, pub = await node(nats_server, "rs", "alice")
    try:
        await pub.start()
        await wait_for(
            lambda: watch.roster.live() and watch.view == "current", what="current roster"
        )
        nats_server.restart()
        await wait_for(lambda: "stale" in views, what="roster view stale during the restart")
        await wait_for(
            lambda: any(isinstance(s, Reconnecting) for s in states), what="reconnecting"
        )
        await wait_for(lambda: isinstance(wconn.state, Connected), what="reconnected", timeout=15)
        await wait_for(lambda: watch.view == "current", what="roster current again", timeout=15)
        # The re-bound watch is alive: a change after the restart arrives.
        await pub.update(activity="after restart")
        await wait_for(
            lambda: any(e.presence.activity == "after restart" for e in events),
            what="an update delivered by the re-bound watch",
        )
    finally:
        await pub.stop()
        await watch.stop()
        await conn.close()
        await wconn.close()


async def test_quiet_space_stays_current_on_watch_heartbeats(nats_server: EmbeddedServer) -> None:
    import time

    views: list[str] = []
    wconn, watch = await watcher(nats_server, "quiet", [], views)
    try:
        await wait_for(lambda: watch.view == "current", what="roster current")
        start = time.monotonic()
        # Idle heartbeats keep proving the watch alive well past the liveness window.
        await wait_for(
            lambda: (watch.last_activity or 0) > start + watch.liveness_ms / 1000,
            what="an idle heartbeat after the liveness window",
            timeout=10,
        )
        assert views == ["current"] and watch.rebinds == 0
        assert (watch.last_activity or 0) <= time.monotonic()  # monotonic seconds, not epoch
        assert RosterWatch(wconn, "quiet").last_activity is None  # nothing seen yet: no time
    finally:
        await watch.stop()
        await wconn.close()


async def test_silent_watch_while_connected_goes_stale_and_rebinds(
    nats_server: EmbeddedServer, nc
) -> None:
    views: list[str] = []
    wconn, watch = await watcher(nats_server, "silent", [], views)
    conn, pub = await node(nats_server, "silent", "alice")
    try:
        await pub.start()
        await wait_for(lambda: watch.view == "current" and watch.roster.live(), what="current")
        # The broker loses the watch's consumer while the connection stays up. Only what
        # happens from here on counts: on a loaded machine the watch may already have judged
        # itself stale (and re-bound) once before, which must not satisfy the waits below.
        consumer = watch._watch._consumer
        rebinds, mark = watch.rebinds, len(views)
        await nc.jetstream().delete_consumer("KV_cotal_presence_silent", consumer)
        await wait_for(
            lambda: "stale" in views[mark:], what="the silent watch judged stale", timeout=20
        )
        assert wconn.is_connected
        await wait_for(
            lambda: watch.view == "current" and watch._watch._consumer not in (None, consumer),
            what="current again on a new consumer after the re-bind",
            timeout=20,
        )
        assert watch.rebinds > rebinds
        await pub.update(activity="seen by the new watch")
        await wait_for(
            lambda: watch.roster.live()[0].activity == "seen by the new watch",
            what="a change delivered by the re-bound watch",
        )
    finally:
        await pub.stop()
        await watch.stop()
        await conn.close()
        await wconn.close()


async def test_presence_under_another_key_is_refused_not_shown_as_the_victim(
    nats_server: EmbeddedServer, nc
) -> None:
    """Issue 10 case 4: an agent writes its own key with the victim's card.id; the roster keys
    by the KV key, so the victim's row is untouched and the impostor record is refused."""
    errors: list[Exception] = []
    events: list[PresenceEvent] = []
    wconn, watch = await watcher(nats_server, "spoof", events, [])
    watch.on_error = errors.append
    vconn, victim = await node(nats_server, "spoof", "vic")
    try:
        await victim.start()
        await wait_for(lambda: watch.roster.live(), what="the victim live in the roster")
        impostor_id = str(uuid.uuid4())
        forged = victim.record().model_copy(
            update={"card": AgentCard(id=victim.card.id, name="vic-IMPOSTOR", kind="agent")}
        )
        forged = forged.model_copy(update={"status": "offline"})
        kv = await nc.jetstream().key_value("cotal_presence_spoof")
        await kv.put(impostor_id, forged.to_json())
        await wait_for(lambda: watch.roster.refused >= 1, what="the forged record refused")
        assert [p.card.name for p in watch.roster.entries()] == ["vic"]
        assert watch.roster.get(victim.card.id).status != "offline"  # type: ignore[union-attr]
        assert impostor_id not in watch.roster
        assert any("carries card.id" in str(e) for e in errors)
    finally:
        await victim.stop()
        await watch.stop()
        await vconn.close()
        await wconn.close()
