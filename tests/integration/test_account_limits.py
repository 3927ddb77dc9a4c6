"""Issue 10 case 6: the agent profile may create KV watch consumers (PROTOCOL §8.4) and can
never delete them; the space account's JetStream consumer limit bounds how many there can be."""

from __future__ import annotations

import json
from pathlib import Path

import nats
from auth_client import connect_as
from spaces import unique_space

from cotal_tui.server.auth import ensure_space_auth
from cotal_tui.server.mint import mint
from cotal_tui.server.process import EmbeddedServer, free_port
from cotal_tui.server.provision import provision_space

LIMIT = 40


async def test_agent_consumer_flood_stops_at_the_account_limit(tmp_path: Path) -> None:
    space = unique_space("lim")
    state = tmp_path / "state"
    auth = ensure_space_auth(state, space)
    auth.consumer_limit = LIMIT  # the shipped bound is 10,000; a small one keeps the test fast
    port = free_port()
    config = auth.render_server_config("127.0.0.1", port, tmp_path / "store")
    server = EmbeddedServer(
        port=port, store_dir=str(tmp_path / "store"), config_file=str(config)
    ).start()
    try:
        manager = await nats.connect(server.url, user_credentials=str(auth.manager_creds_path()))
        try:
            await provision_space(manager, space)
            agent = await mint(
                "mallory",
                profile="agent",
                space=space,
                state_dir=state,
                server=server.url,
                auth=auth,
            )
            me = await connect_as(server.url, agent.path, agent.public_key)
            stream = f"KV_cotal_presence_{space}"
            created, refused = 0, ""
            for n in range(LIMIT + 5):
                name = f"flood{n}"
                body = {
                    "stream_name": stream,
                    "config": {
                        "durable_name": name,
                        "ack_policy": "none",
                        "filter_subject": f"$KV.cotal_presence_{space}.>",
                    },
                }
                msg = await me.nc.request(
                    f"$JS.API.CONSUMER.CREATE.{stream}.{name}", json.dumps(body).encode(), timeout=5
                )
                reply = json.loads(msg.data)
                if "error" in reply:
                    refused = reply["error"]["description"]
                    break
                created += 1
            await me.close()
            info = await manager.jetstream().account_info()
        finally:
            await manager.close()
    finally:
        server.close()
    assert refused, f"{created} consumers created, none refused"
    assert "maximum consumers" in refused.lower(), refused
    # nats-server applies the account's consumer limit per stream: the presence stream held
    # none of the account's other consumers, so exactly LIMIT were created.
    assert created == LIMIT and info.limits.max_consumers == LIMIT
