"""Connection.server_info follows the server's INFO (the cluster view's node-down rule reads its
``connect_urls``); it works by wrapping a nats-py internal, so an upgrade that drops it must
fail here, not turn the rule off in silence."""

from __future__ import annotations

from cotal_tui.mesh.connection import Connection
from cotal_tui.server.process import EmbeddedServer


async def test_server_info_is_the_connected_servers_info(nats_server: EmbeddedServer) -> None:
    conn = Connection(nats_server.url, "probe", "info-probe")
    assert conn.server_info() == {}, "an unconnected connection has no INFO"
    await conn.connect()
    try:
        info = conn.server_info()
        assert info.get("server_id"), f"no INFO tracked after connect: {info!r}"
        assert info.get("port") == int(nats_server.url.rsplit(":", 1)[1]), info
    finally:
        await conn.close()
