"""A local NATS cluster for development and tests: N embedded nats-server nodes on one host.

Every node has its own store dir and client port, listens for routes on its own cluster port and
routes to all the others, runs JetStream, and (auth mode) carries the same trust chain (one
`server.<node>.conf` per node rendered from the state dir's `auth.json`). This is NATS's own
clustering (JetStream meta group and per-stream Raft groups), nothing home-made: what it gives a
space is R3 streams that survive the loss of any one node.

`up --cluster N` runs one (server/up_cluster.py); the tests run one per test. `urls` is the list
every client gets (nats-py's server list), so a node loss is a reconnect, not an outage.

Also here, the two facts `up` needs from *any* server, clustered or not: how many nodes the
cluster reports (:func:`cluster_size`) and whether JetStream answers yet (:func:`wait_jetstream`).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nats.aio.client import Client

from cotal_tui.server.auth import SpaceAuth
from cotal_tui.server.process import EmbeddedServer, EmbeddedServerError, free_port, port_open

CLUSTER_NAME = "cotal"
SUPPORTED_REPLICAS = (1, 3)
JS_UNAVAILABLE = 10008


class ClusterError(EmbeddedServerError):
    """The local cluster could not be started or did not form."""


@dataclass
class ClusterNode:
    """One node: its name, client port, route port and store dir."""

    name: str
    port: int
    cluster_port: int
    store_dir: Path
    server: EmbeddedServer | None = None

    @property
    def running(self) -> bool:
        return self.server is not None and self.server.running

    @property
    def pid(self) -> int | None:
        return self.server.pid if self.server else None


@dataclass
class LocalCluster:
    """`size` nodes on `host`; client ports `ports` (free ones when None), stores under
    `base_dir/<node>/store`. `auth` None is open mode."""

    size: int
    base_dir: Path
    host: str = "127.0.0.1"
    ports: list[int] | None = None
    auth: SpaceAuth | None = None
    name: str = CLUSTER_NAME
    nodes: list[ClusterNode] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ClusterError(f"a cluster needs at least one node, not {self.size}")
        ports = self.ports or [free_port(self.host) for _ in range(self.size)]
        if len(ports) != self.size:
            raise ClusterError(f"{self.size} nodes need {self.size} client ports, got {ports}")
        for i, port in enumerate(ports, start=1):
            name = f"n{i}"
            self.nodes.append(
                ClusterNode(
                    name=name,
                    port=port,
                    cluster_port=free_port(self.host),
                    store_dir=Path(self.base_dir) / name / "store",
                )
            )

    @property
    def urls(self) -> list[str]:
        return [f"nats://{self.host}:{n.port}" for n in self.nodes]

    @property
    def routes(self) -> list[str]:
        return [f"nats-route://{self.host}:{n.cluster_port}" for n in self.nodes]

    def node(self, name_or_index: str | int) -> ClusterNode:
        if isinstance(name_or_index, int):
            return self.nodes[name_or_index]
        for n in self.nodes:
            if n.name == name_or_index:
                return n
        raise KeyError(f"no node {name_or_index!r} in the cluster ({[n.name for n in self]})")

    def node_for_port(self, port: int) -> ClusterNode | None:
        return next((n for n in self.nodes if n.port == port), None)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.nodes)

    # -- one node ------------------------------------------------------------------------------

    def _server_for(self, node: ClusterNode) -> EmbeddedServer:
        others = [r for r, n in zip(self.routes, self.nodes, strict=True) if n is not node]
        if self.auth is not None:
            routes = ", ".join(json.dumps(r) for r in others)
            extra = [
                f"server_name: {json.dumps(node.name)}",
                "cluster {",
                f"  name: {json.dumps(self.name)}",
                f"  listen: {json.dumps(f'{self.host}:{node.cluster_port}')}",
                f"  routes: [{routes}]",
                "}",
            ]
            config = self.auth.render_server_config(
                self.host, node.port, node.store_dir, extra=extra, name=f"server.{node.name}.conf"
            )
            return EmbeddedServer(
                host=self.host,
                port=node.port,
                store_dir=str(node.store_dir),
                config_file=str(config),
            )
        args = [
            "-n",
            node.name,
            "--cluster_name",
            self.name,
            "--cluster",
            f"nats://{self.host}:{node.cluster_port}",
            "--routes",
            ",".join(others),
        ]
        return EmbeddedServer(
            host=self.host, port=node.port, store_dir=str(node.store_dir), extra_args=args
        )

    def start_node(self, name_or_index: str | int) -> ClusterNode:
        """Start (or restart, same ports and store) one node; returns once it accepts clients."""
        node = self.node(name_or_index)
        if node.running:
            return node
        if port_open(self.host, node.port):
            raise ClusterError(
                f"port {node.port} on {self.host} is already in use (node {node.name}); stop what "
                "holds it or choose another --port"
            )
        node.server = self._server_for(node)
        node.server.start()
        return node

    def kill_node(self, name_or_index: str | int) -> None:
        """SIGKILL one node (a crash)."""
        node = self.node(name_or_index)
        if node.server is not None:
            node.server.kill()

    def stop_node(self, name_or_index: str | int) -> None:
        node = self.node(name_or_index)
        if node.server is not None:
            node.server.stop()

    # -- all nodes -----------------------------------------------------------------------------

    def start(self) -> LocalCluster:
        started: list[ClusterNode] = []
        try:
            for node in self.nodes:
                self.start_node(node.name)
                started.append(node)
        except EmbeddedServerError:
            for node in started:
                self.stop_node(node.name)
            raise
        return self

    def stop(self) -> None:
        """Stop every node (SIGTERM, then SIGKILL; always reaped)."""
        for node in self.nodes:
            self.stop_node(node.name)

    def kill(self) -> None:
        for node in self.nodes:
            self.kill_node(node.name)

    def log_tail(self, lines: int = 10) -> str:
        return "\n".join(
            f"[{n.name}] {n.server.log_tail(lines) if n.server else '(not started)'}"
            for n in self.nodes
        )

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- facts any server reports -----------------------------------------------------------------


def server_info(nc: Client) -> dict[str, Any]:
    """The INFO the connected server sent (nats-py keeps it; empty when not connected)."""
    info = getattr(nc, "_server_info", None)
    return dict(info) if isinstance(info, dict) else {}


def cluster_size(nc: Client) -> int:
    """How many nodes the connected server says its cluster has: itself plus the client URLs it
    advertises (`connect_urls`, every routed peer's, which includes its own). 1 when the server
    is not clustered. A cluster started with `no_advertise` advertises no peers and counts as 1
    here, so `up --replicas 3` refuses it: keep advertising (the nats-server default)."""
    info = server_info(nc)
    if not info.get("cluster"):
        return 1
    urls = set(info.get("connect_urls") or [])
    own = f"{info.get('host')}:{info.get('port')}"
    return max(1, len(urls | {own}))


async def wait_jetstream(nc: Client, timeout: float = 20.0, *, peers: int = 1) -> None:
    """Until JetStream answers `$JS.API.INFO` without error (a cluster's meta group has a leader)
    and the server reports at least `peers` nodes; raises ClusterError naming what never came."""
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while True:
        try:
            msg = await nc.request("$JS.API.INFO", b"", timeout=2.0)
            data = json.loads(msg.data or b"{}")
            err = data.get("error")
            if err:
                last = f"{err.get('description')} (err_code {err.get('err_code')})"
            elif cluster_size(nc) < peers:
                last = f"{cluster_size(nc)} of {peers} nodes routed"
            else:
                return
        except Exception as exc:  # noqa: BLE001 - reported on timeout
            last = str(exc) or type(exc).__name__
        if time.monotonic() >= deadline:
            raise ClusterError(f"JetStream not ready after {timeout:g}s: {last}")
        await asyncio.sleep(0.2)
