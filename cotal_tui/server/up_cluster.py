"""What `cotal-tui up` does for a cluster, kept apart from the single-server path in up.py.

- `--cluster N`: start a :class:`~cotal_tui.server.cluster.LocalCluster` of N nodes on loopback
  (client ports `--port`, `--port`+1, ...; stores under `<state-dir>/cluster/<node>/store`), wait
  until JetStream's meta group has a leader and all N nodes are routed, provision at R3 (R1 for a
  one-node cluster), stop all of them on exit.
- `--server URL[,URL...]`: provision a cluster (or server) someone else runs, and keep running
  the daemon against it; no server is started.
- `--replicas N`: 1 or 3, checked against the cluster size the server reports before anything
  is written. Without it an existing space keeps its own count and a new one gets R1 (R3 under
  `--cluster`).
- The state dir's ``up.json`` (server/state.py) for a local cluster: every node's URL (the server
  list the other commands connect with), store, pids, and the replica count
  (:func:`cluster_record`), rewritten when a node stops or comes back, removed on exit; for
  `--server`, the server list as given (:func:`server_record`), written once the space is
  provisioned unless another live `up` runs from the state dir, removed on exit.
- `--write-server-config FILE`: render one node's config for a cluster on several machines (the
  state dir's trust chain, JetStream, `server_name`, `cluster {}` with routes) and exit.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from nats.aio.client import Client

from cotal_tui.server.auth import SpaceAuth
from cotal_tui.server.cluster import (
    CLUSTER_NAME,
    SUPPORTED_REPLICAS,
    ClusterError,
    ClusterNode,
    LocalCluster,
    cluster_size,
    wait_jetstream,
)
from cotal_tui.server.process import EmbeddedServerError, port_open
from cotal_tui.server.state import NodeRecord, UpRecord

CLUSTER_DIR = "cluster"
JS_READY_TIMEOUT_S = 30.0


class Reporter(Protocol):
    def ok(self, text: str) -> None: ...
    def info(self, text: str) -> None: ...
    def fail(self, text: str) -> None: ...


class ClusterUsageError(ValueError):
    """Bad cluster options; the message is the one line to print."""


@dataclass(frozen=True)
class ClusterOptions:
    cluster: int | None = None
    server: str | None = None
    replicas: int | None = None


def validate_options(opts: ClusterOptions) -> None:
    """Refuse bad combinations before anything is started or written."""
    if opts.replicas is not None and opts.replicas not in SUPPORTED_REPLICAS:
        raise ClusterUsageError(
            f"--replicas {opts.replicas} is not supported: use 1 (one copy) or 3 (survives the "
            "loss of one node)"
        )
    if opts.cluster is not None:
        if opts.server:
            raise ClusterUsageError(
                "--cluster starts a local cluster and --server uses an existing one: pass one"
            )
        if opts.cluster < 1 or opts.cluster > 9:
            raise ClusterUsageError(f"--cluster {opts.cluster}: give a node count from 1 to 9")
        if opts.replicas is not None and opts.replicas > opts.cluster:
            raise ClusterUsageError(
                f"--replicas {opts.replicas} needs at least {opts.replicas} nodes; --cluster "
                f"{opts.cluster} has {opts.cluster}"
            )


def default_replicas(opts: ClusterOptions) -> int | None:
    """The count to provision at: explicit, else R3 on a local cluster of 3+, else the space's
    own (None: an existing space keeps its count, a new one gets R1)."""
    if opts.replicas is not None:
        return opts.replicas
    if opts.cluster is not None:
        return 3 if opts.cluster >= 3 else 1
    return None


def start_local_cluster(
    size: int, host: str, port: int, state_dir: str, auth: SpaceAuth | None, report: Reporter
) -> LocalCluster | None:
    """Start the nodes; None (said why) when one cannot start."""
    cluster = LocalCluster(
        size,
        Path(state_dir) / CLUSTER_DIR,
        host=host,
        ports=[port + i for i in range(size)],
        auth=auth,
    )
    try:
        cluster.start()
    except EmbeddedServerError as exc:
        report.fail(f"local cluster not started: {exc}")
        return None
    mode = "auth" if auth is not None else "open"
    nodes = ", ".join(f"{n.name} pid {n.pid} :{n.port}" for n in cluster)
    report.ok(f"local cluster of {size} nats-server nodes started ({mode} mode: {nodes})")
    return cluster


async def check_cluster(nc: Client, opts: ClusterOptions, report: Reporter) -> int | None:
    """Wait for JetStream (and, for a local cluster, every node routed), then check the replica
    count against the cluster size the server reports. Returns the count to provision at (None:
    the space's own), or raises ClusterError with the reason."""
    peers = opts.cluster or 1
    await wait_jetstream(nc, JS_READY_TIMEOUT_S, peers=peers)
    size = cluster_size(nc)
    replicas = default_replicas(opts)
    if replicas is not None and replicas > size:
        raise ClusterError(
            f"--replicas {replicas} needs a cluster of at least {replicas} nodes; the server "
            f"reports {size} (a single server holds R1 only)"
        )
    if size > 1:
        report.info(f"cluster of {size} nodes answering (JetStream ready)")
    return replicas


def cluster_record(
    cluster: LocalCluster,
    *,
    pid: int,
    space: str,
    mode: str,
    replicas: int,
    started_at: int,
    down: Collection[str] = (),
) -> UpRecord:
    """The ``up.json`` of `up --cluster`: ``url`` is every node's URL (the server list), ``host``
    and ``port`` the first node's, ``store`` the folder holding every node's store. ``down``:
    the nodes :func:`watch_nodes` holds down (its ``seen_down``); a node whose own process is
    gone and is not down runs outside this `up` (``outside``, pid unknown)."""
    outside = {n.name for n in outside_nodes(cluster, down)}
    nodes = tuple(
        NodeRecord(
            name=n.name,
            url=url,
            port=n.port,
            cluster_port=n.cluster_port,
            store=str(n.store_dir.absolute()),
            pid=n.pid if n.running else None,
            outside=n.name in outside,
        )
        for n, url in zip(cluster.nodes, cluster.urls, strict=True)
    )
    return UpRecord(
        pid=pid,
        url=",".join(cluster.urls),
        host=cluster.host,
        port=cluster.nodes[0].port,
        space=space,
        store=str(Path(cluster.base_dir).absolute()),
        mode=mode,
        started_at=started_at,
        replicas=replicas,
        nodes=nodes,
    )


def outside_nodes(cluster: LocalCluster, down: Collection[str]) -> list[ClusterNode]:
    """Nodes this `up` started whose process is gone but that :func:`watch_nodes` saw answer
    again on their port (started by hand, not held down): they run, but not as this `up`'s
    processes, so it knows no pid for them and does not stop them."""
    return [n for n in cluster if n.server is not None and not n.running and n.name not in down]


def stopped_line(cluster: LocalCluster, outside: Sequence[ClusterNode]) -> str:
    """What `up` says once it stopped its nodes: never "all stopped" while one it did not start
    (``outside``, from :func:`outside_nodes` before the stop) still runs."""
    if not outside:
        return f"all {cluster.size} nats-server nodes stopped"
    still = ", ".join(f"{n.name} (:{n.port})" for n in outside)
    return (
        f"{cluster.size - len(outside)} of {cluster.size} nats-server nodes stopped; {still} "
        f"still run{'s' if len(outside) == 1 else ''}: started again outside this up, which "
        "knows no pid for it and does not stop it — stop it yourself"
    )


def server_record(
    url: str, *, pid: int, space: str, mode: str, replicas: int, started_at: int
) -> UpRecord:
    """The ``up.json`` of `up --server`: ``url`` the server list as given, ``host`` and ``port``
    the first URL's, no nodes and no store (it started no server: ``external``)."""
    first = urlsplit(url.split(",")[0])
    return UpRecord(
        pid=pid,
        url=url,
        host=first.hostname or "",
        port=first.port or 4222,
        space=space,
        store="",
        mode=mode,
        started_at=started_at,
        replicas=replicas,
        external=True,
    )


QUORUM_LOST = ":quorum-lost"
"""Kept in ``seen_down`` (beside node names) while the quorum loss has been said."""


def watch_nodes(
    cluster: LocalCluster, seen_down: set[str], report: Reporter, replicas: int = 3
) -> bool:
    """Report each node that stopped (once) and each that came back (restarted by hand from
    its config and store counts: its port answers again), and when so few run that the space's
    R``replicas`` streams have no quorum (and when they have it again); False when none runs."""
    nodes = list(cluster)
    quorum = replicas // 2 + 1
    up = {
        n.name: n.running or (n.name in seen_down and port_open(cluster.host, n.port))
        for n in nodes
    }
    running = sum(up.values())
    for node in nodes:
        if not up[node.name] and node.name not in seen_down:
            seen_down.add(node.name)
            tail = node.server.log_tail(5) if node.server else ""
            still = (
                "the space keeps serving while a quorum of its streams' replicas is up"
                if replicas < 2 or running >= quorum
                else f"{len(nodes) - running} of {len(nodes)} nodes are down"
            )
            report.fail(f"node {node.name} (:{node.port}) exited; {still}. Log tail:\n{tail}")
        elif up[node.name] and node.name in seen_down:
            seen_down.discard(node.name)
            by = (
                ""
                if node.running
                else " (started outside this up: up.json has no pid for it, and up will not "
                "stop it)"
            )
            report.ok(f"node {node.name} (:{node.port}) is running again{by}")
    if replicas >= 2 and 0 < running < quorum and QUORUM_LOST not in seen_down:
        seen_down.add(QUORUM_LOST)
        report.fail(
            f"quorum lost: {running} of {len(nodes)} nodes run, and the space's R{replicas} "
            f"streams need {quorum} replicas up — none has a leader, nothing is stored, and the "
            "delivery daemon cannot renew its lease or move; start the nodes that exited "
            "again (same ports and stores)"
        )
    elif running >= quorum and QUORUM_LOST in seen_down:
        seen_down.discard(QUORUM_LOST)
        report.ok(f"quorum back: {running} of {len(nodes)} nodes run")
    return running > 0


@dataclass(frozen=True)
class NodeConfigOptions:
    """`--write-server-config FILE` and the node it is for."""

    out: str
    node_name: str
    routes: list[str]
    host: str = "0.0.0.0"
    port: int = 4222
    cluster_listen: str = "0.0.0.0:6222"
    store_dir: str = "/var/lib/nats/jetstream"


def render_node_config(
    state_dir: str, space: str, opts: NodeConfigOptions, report: Reporter
) -> int:
    """Write one node's config (the state dir's trust chain, created if new) and say what next."""
    from cotal_tui.server.auth import AuthError, ensure_space_auth

    if not opts.node_name or not opts.routes:
        report.fail(
            "--write-server-config needs --node-name NAME and --routes URL,... (every node's "
            "nats-route://host:port, this one's included) — nothing was written"
        )
        return 2
    try:
        auth = ensure_space_auth(state_dir, space)
        path = write_node_config(
            auth,
            Path(opts.out),
            host=opts.host,
            port=opts.port,
            store_dir=opts.store_dir,
            node_name=opts.node_name,
            cluster_listen=opts.cluster_listen,
            routes=opts.routes,
        )
    except (AuthError, OSError) as exc:
        report.fail(f"could not write {opts.out}: {exc}")
        return 1
    report.ok(
        f"wrote {path} for node {opts.node_name!r} (trust chain of {auth.dir}); run "
        f"`nats-server -c {path.name}` on that machine"
    )
    return 0


def write_node_config(
    auth: SpaceAuth,
    out: Path,
    *,
    host: str,
    port: int,
    store_dir: str,
    node_name: str,
    cluster_listen: str,
    routes: list[str],
) -> Path:
    """One node's nats-server config for a cluster on several machines (same trust chain)."""
    extra = [
        f"server_name: {json.dumps(node_name)}",
        "cluster {",
        f"  name: {json.dumps(CLUSTER_NAME)}",
        f"  listen: {json.dumps(cluster_listen)}",
        f"  routes: [{', '.join(json.dumps(r) for r in routes)}]",
        "}",
    ]
    rendered = auth.render_server_config(
        host, port, store_dir, extra=extra, name=f"server.{node_name}.conf"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(rendered.read_text(encoding="utf-8"), encoding="utf-8")
    out.chmod(0o600)
    return out
