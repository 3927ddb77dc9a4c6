"""A 3-node auth-mode loopback cluster with an R3 space, for the cluster tests and bench/cluster.py.

Everything is real: three nats-server processes routed to each other (server/cluster.py), the
space provisioned at R3 with the manager cred, agents minted from the same trust chain.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cotal_tui.mesh.connection import Connection
from cotal_tui.server.auth import SpaceAuth, ensure_space_auth
from cotal_tui.server.cluster import LocalCluster, wait_jetstream
from cotal_tui.server.mint import Minted, mint
from cotal_tui.server.provision import provision_space


@dataclass
class ClusterSpace:
    cluster: LocalCluster
    space: str
    state_dir: Path
    auth: SpaceAuth
    admin: Connection
    replicas: int = 3
    extra: list[Connection] = field(default_factory=list)

    @property
    def url(self) -> str:
        return ",".join(self.cluster.urls)

    @property
    def manager_creds(self) -> Path:
        return self.auth.manager_creds_path()

    async def mint(self, name: str, profile: str = "agent", **kwargs: Any) -> Minted:
        return await mint(
            name,
            profile=profile,
            space=self.space,
            state_dir=self.state_dir,
            server=self.url if profile != "delivery" else None,
            auth=self.auth,
            **kwargs,
        )

    async def stream_cluster(self, stream: str) -> dict[str, Any]:
        msg = await self.admin.nc.request(f"$JS.API.STREAM.INFO.{stream}", b"", timeout=2.0)
        data = json.loads(msg.data)
        if data.get("error"):
            raise RuntimeError(f"STREAM.INFO {stream}: {data['error']}")
        return dict(data.get("cluster") or {})

    def node_of(self, conn: Connection) -> str:
        url = conn.nc.connected_url
        assert url is not None and url.port is not None, "not connected"
        node = self.cluster.node_for_port(url.port)
        assert node is not None, f"connected to {url.netloc}, not a node of the cluster"
        return node.name


async def connect(url: str, ident: str, creds: str | Path | None) -> Connection:
    """A connection as `ident` (its id: the inbox prefix an agent cred allows is bound to it)."""
    conn = Connection(url, ident[:12], ident, creds=None if creds is None else str(creds))
    await conn.connect()
    return conn


async def start_cluster_space(base: Path, space: str, replicas: int = 3) -> ClusterSpace:
    auth = ensure_space_auth(base / "state", space)
    cluster = LocalCluster(3, base / "cluster", auth=auth).start()
    try:
        admin = await connect(",".join(cluster.urls), "manager", auth.manager_creds_path())
        await wait_jetstream(admin.nc, 30.0, peers=3)
        await provision_space(admin.nc, space, replicas=replicas)
    except BaseException:
        cluster.stop()
        raise
    return ClusterSpace(cluster, space, base / "state", auth, admin, replicas)


async def stop_cluster_space(cs: ClusterSpace) -> None:
    for conn in [cs.admin, *cs.extra]:
        try:
            await asyncio.wait_for(conn.close(), 5.0)
        except Exception:  # noqa: BLE001 - teardown goes on
            pass
    await asyncio.to_thread(cs.cluster.stop)


async def all_current(cs: ClusterSpace, node: str, streams: list[str]) -> bool:
    """`node` is the leader or a current replica of every one of `streams` (caught up)."""
    for stream in streams:
        try:
            block = await cs.stream_cluster(stream)
        except Exception:  # noqa: BLE001 - not yet
            return False
        if block.get("leader") == node:
            continue
        reps = {r["name"]: r for r in block.get("replicas") or []}
        rep = reps.get(node)
        if rep is None or not rep.get("current") or rep.get("offline"):
            return False
    return True


def now() -> float:
    return time.monotonic()
