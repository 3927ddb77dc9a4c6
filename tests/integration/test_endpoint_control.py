"""Control plane against a real nats-server: request/reply, sender check, boundReply guard, 503."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import nats
import pytest

from cotal_tui.mesh.control import (
    SENDER_MISMATCH,
    ControlCall,
    NoResponders,
    RequestTimeout,
    request_named_reply,
)
from cotal_tui.mesh.endpoint import Endpoint
from cotal_tui.mesh.events import EndpointError
from cotal_tui.protocol.models import ControlReply
from cotal_tui.server.process import EmbeddedServer
from waiting import wait_for


async def until_served(call: Callable[[], Awaitable[ControlReply]]) -> ControlReply:
    """nats-server 2.15 can answer 503 for a moment after a responder's SUB was flushed (seen
    with plain nats-py clients too, ~5% under load; the next request is served): retry that."""

    async def attempt() -> ControlReply | None:
        try:
            return await call()
        except NoResponders:
            return None

    return await wait_for(attempt, what="the responder to become reachable", timeout=5)


@pytest.fixture
async def pair(module_nats_server: EmbeddedServer) -> AsyncIterator[tuple[Endpoint, Endpoint]]:
    space = f"c{uuid.uuid4().hex[:8]}"
    opts = {"register_presence": False, "watch_presence": False, "consume": False}
    server = Endpoint(module_nats_server.url, space, name="daemon", **opts)  # type: ignore[arg-type]
    client = Endpoint(module_nats_server.url, space, name="agent", **opts)  # type: ignore[arg-type]
    await server.start()
    await client.start()
    yield server, client
    await client.stop()
    await server.stop()


async def test_request_reply_round_trip(pair) -> None:
    server, client = pair
    seen: list[ControlCall] = []

    def handler(call: ControlCall) -> object:
        seen.append(call)
        if call.request.op == "boom":
            raise RuntimeError("handler exploded")
        return {"echo": call.request.args}

    await server.serve_control("manager", handler)
    reply = await until_served(lambda: client.request_control("manager", "ping", {"x": 1}))
    assert reply.ok and reply.data == {"echo": {"x": 1}}
    assert seen[0].sender == client.id and seen[0].request.from_.name == "agent"
    bad = await client.request_control("manager", "boom")
    assert not bad.ok and bad.error == "handler exploded"


async def test_sender_mismatch_rejected(pair, module_nats_server) -> None:
    server, client = pair
    await server.serve_control("manager", lambda call: "should not run")
    nc = await nats.connect(module_nats_server.url)
    try:
        forged = {"op": "ping", "from": {"id": client.id, "name": "agent"}}
        subject = f"cotal.{server.space}.ctl.manager.mallory"

        async def attempt() -> object:
            try:
                return await nc.request(subject, json.dumps(forged).encode(), timeout=3)
            except nats.errors.NoRespondersError:
                return None  # the transient 503 described in until_served

        msg = await wait_for(attempt, what="a reply to the forged request", timeout=5)
    finally:
        await nc.close()
    assert json.loads(msg.data) == {"ok": False, "error": SENDER_MISMATCH}


async def test_bound_reply_guard(pair, module_nats_server) -> None:
    server, client = pair
    errors: list[EndpointError] = []
    server.on_event(lambda e: errors.append(e) if isinstance(e, EndpointError) else None)
    await server.serve_control("delivery", lambda call: {"ok": 1}, bound_reply=True)
    # The honest path: a reply lane under the request subject is answered.
    good = await until_served(lambda: client.request_delivery("listMemberships"))
    assert good.ok
    # An agent aims the reply at a peer's lane: no reply, and the peer receives nothing.
    peer_lane = f"cotal.{server.space}.ctl.delivery.victim.reply.{uuid.uuid4()}"
    nc = await nats.connect(module_nats_server.url)
    try:
        victim = await nc.subscribe(f"cotal.{server.space}.ctl.delivery.victim.reply.>")
        await nc.flush()
        req = {"op": "listMemberships", "args": {}, "from": {"id": client.id, "name": "agent"}}
        with pytest.raises(RequestTimeout):
            subject = f"cotal.{server.space}.ctl.delivery.{client.id}"
            await request_named_reply(
                client.conn, subject, json.dumps(req).encode(), peer_lane, timeout=0.5
            )
        await wait_for(
            lambda: any("not under" in str(e.error) for e in errors),
            what="the guard reporting the dropped request",
        )
        with pytest.raises(nats.errors.TimeoutError):
            await victim.next_msg(timeout=0.3)
        # A muxed _INBOX reply is dropped the same way and looks like a timeout.
        with pytest.raises(nats.errors.TimeoutError):
            await nc.request(subject, json.dumps(req).encode(), timeout=0.5)
    finally:
        await nc.close()


async def test_no_responder_is_not_a_timeout(pair) -> None:
    _, client = pair
    with pytest.raises(NoResponders):
        await client.request_delivery("listMemberships", timeout=3)
    with pytest.raises(NoResponders):
        await client.request_control("manager", "ping", timeout=3)
