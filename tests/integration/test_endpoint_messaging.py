"""Endpoints talking through a real nats-server: channels, backfill, DMs, anycast, spoofing."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator

import nats
import pytest

from cotal_tui.mesh.endpoint import Endpoint
from cotal_tui.mesh.events import EndpointError, EndpointEvent, MessageReceived
from cotal_tui.mesh.messages import Inbound
from cotal_tui.protocol.errors import InvalidChannelConfig
from cotal_tui.server.process import EmbeddedServer
from waiting import wait_for

FAST = {"ttl_ms": 1500, "heartbeat_ms": 300, "sweep_ms": 300, "watch_heartbeat_ms": 300}


class Probe:
    """Collects an endpoint's events."""

    def __init__(self, ep: Endpoint) -> None:
        self.events: list[EndpointEvent] = []
        ep.on_event(self.events.append)

    def messages(self) -> list[Inbound]:
        return [e.inbound for e in self.events if isinstance(e, MessageReceived)]

    def texts(self, **match: object) -> list[str]:
        out = []
        for m in self.messages():
            if all(getattr(m, k) == v for k, v in match.items()):
                out.append(m.message.text)
        return out

    def errors(self) -> list[EndpointError]:
        return [e for e in self.events if isinstance(e, EndpointError)]


@pytest.fixture
def space() -> str:
    return f"s{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def endpoints(module_nats_server: EmbeddedServer) -> AsyncIterator[list[Endpoint]]:
    eps: list[Endpoint] = []
    yield eps
    for ep in eps:
        await ep.stop()


async def make(
    eps: list[Endpoint], server: EmbeddedServer, space: str, name: str, **kw: object
) -> tuple[Endpoint, Probe]:
    ep = Endpoint(server.url, space, name=name, **{**FAST, **kw})  # type: ignore[arg-type]
    probe = Probe(ep)
    await ep.start()
    eps.append(ep)
    return ep, probe


async def test_join_post_receive_live(module_nats_server, space, endpoints) -> None:
    alice, _ = await make(endpoints, module_nats_server, space, "alice")
    bob, bob_probe = await make(endpoints, module_nats_server, space, "bob")
    res = await bob.join_channel("general")
    assert res.joined and res.backfilled == 0
    assert not res.durable and res.reason and "durable backstop unavailable" in res.reason
    again = await bob.join_channel("general")
    assert not again.joined
    sent = await alice.send("general", "hello bob", mentions=[" Bob ", "bob"])
    await wait_for(lambda: bob_probe.texts(historical=False) == ["hello bob"], what="live message")
    got = bob_probe.messages()[0]
    assert got.message.id == sent.id and got.kind == "channel" and got.channel == "general"
    assert got.message.mentions == ["bob"] and got.message.from_.id == alice.id
    assert await bob.leave_channel("general")
    await alice.send("general", "after leave")
    await alice.send("other", "marker")  # bob is not on #other either; nothing may arrive
    assert not await bob.leave_channel("general")
    rows = {r.channel: r for r in await bob.list_channels()}
    assert rows["general"].messages == 2 and not rows["general"].joined
    assert rows["general"].delivery_class == "durable" and rows["general"].delivery_health is None
    assert bob_probe.texts() == ["hello bob"]


async def test_backfill_replay_on_off_and_window(module_nats_server, space, endpoints) -> None:
    alice, _ = await make(endpoints, module_nats_server, space, "alice")
    await alice.registry.set_channel("quiet", {"replay": False})
    await alice.registry.set_channel("windowed", {"replayWindow": "1s", "deliveryClass": "live"})
    t_old = time.time()
    for ch in ("hist", "quiet", "windowed"):
        await alice.send(ch, f"old {ch}")
    await wait_for(lambda: time.time() - t_old > 1.5, what="the old messages leaving the window")
    await alice.send("windowed", "new windowed")
    bob, probe = await make(endpoints, module_nats_server, space, "bob")
    on = await bob.join_channel("hist")
    off = await bob.join_channel("quiet")
    win = await bob.join_channel("windowed")
    assert (on.backfilled, off.backfilled, win.backfilled) == (1, 0, 1)
    assert win.reason is None  # live class: no backstop asked for
    assert probe.texts(historical=True) == ["old hist", "new windowed"]
    await alice.send("hist", "live one")
    await wait_for(
        lambda: probe.texts(historical=False) == ["live one"], what="live after backfill"
    )


async def test_spoofed_sender_is_dropped(module_nats_server, space, endpoints) -> None:
    alice, _ = await make(endpoints, module_nats_server, space, "alice")
    bob, probe = await make(endpoints, module_nats_server, space, "bob")
    await bob.join_channel("general")
    nc = await nats.connect(module_nats_server.url)
    try:
        js = nc.jetstream()
        forged = {
            "id": str(uuid.uuid4()),
            "ts": int(time.time() * 1000),
            "space": space,
            "from": {"id": alice.id, "name": "alice"},
            "channel": "general",
            "parts": [{"kind": "text", "text": "forged"}],
        }
        # mallory publishes as herself on the subject but claims to be alice
        await js.publish(f"cotal.{space}.chat.mallory.general", json.dumps(forged).encode())
        forged_dm = {**forged, "id": str(uuid.uuid4()), "channel": None, "to": bob.id}
        del forged_dm["channel"]
        await js.publish(f"cotal.{space}.inst.{bob.id}.mallory", json.dumps(forged_dm).encode())
        await js.publish(f"cotal.{space}.inst.{bob.id}.mallory", b"not json")
    finally:
        await nc.close()
    await alice.send("general", "genuine")
    await wait_for(lambda: "genuine" in probe.texts(), what="the genuine message")
    await wait_for(
        lambda: any(
            "claims sender" in str(e.error) and ".inst." in str(e.error) for e in probe.errors()
        ),
        what="the spoofed DM reported and terminated",
    )
    assert probe.texts() == ["genuine"]


async def test_dm_by_name_and_id(module_nats_server, space, endpoints) -> None:
    alice, aprobe = await make(endpoints, module_nats_server, space, "alice")
    bob, probe = await make(endpoints, module_nats_server, space, "bob")
    await wait_for(
        lambda: any(p.card.name == "bob" for p in alice.roster_entries()), what="alice sees bob"
    )
    await alice.send_dm("BOB", "psst")
    await alice.send_dm(bob.id, "by id")
    await wait_for(lambda: probe.texts(kind="dm") == ["psst", "by id"], what="two DMs")
    dm = probe.messages()[0]
    assert dm.durable and dm.message.to == bob.id and dm.acked
    assert aprobe.texts(kind="dm") == []


async def test_anycast_reaches_exactly_one_of_n(module_nats_server, space, endpoints) -> None:
    sender, _ = await make(endpoints, module_nats_server, space, "sender")
    workers = [
        await make(endpoints, module_nats_server, space, f"w{i}", role="builder") for i in range(3)
    ]
    ids = [(await sender.send_anycast("builder", f"job {i}")).id for i in range(9)]

    def delivered() -> list[str]:
        return [m.id for _, p in workers for m in p.messages() if m.kind == "anycast"]

    await wait_for(lambda: sorted(delivered()) == sorted(ids), what="all nine jobs delivered")
    assert len(delivered()) == len(set(delivered())) == 9


async def test_registry_writes_merge_and_enforce_limits(
    module_nats_server, space, endpoints
) -> None:
    alice, probe = await make(endpoints, module_nats_server, space, "alice")
    await alice.registry.set_channel("review", {"description": "reviews", "replay": False})
    await alice.registry.set_channel("review", {"deliveryClass": "live"})
    stored = await alice.registry.read("review")
    assert stored == {"description": "reviews", "replay": False, "deliveryClass": "live"}
    with pytest.raises(InvalidChannelConfig):
        await alice.registry.set_channel("review", {"description": "x" * 201})
    with pytest.raises(InvalidChannelConfig):
        await alice.registry.set_channel("review", {"deliveryClass": "sometimes"})
    assert await alice.registry.read("review") == stored  # nothing half-written
    await alice.registry.set_defaults({"deliveryClass": "live", "replayWindow": "2h"})
    await wait_for(
        lambda: (
            alice.registry.delivery_class("general") == "live"
            and alice.registry.replay_window_ms("general") == 7_200_000
        ),
        what="the cache following =defaults",
    )
    assert await alice.registry.fresh_delivery_class("review.>") == "live"  # wildcard: defaults
    assert alice.registry.delivery_class("review") == "live" and not alice.registry.replay("review")
