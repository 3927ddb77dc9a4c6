"""`cotal-tui up`: the embedded nats-server for a space, provisioned, in the foreground."""

from __future__ import annotations

import argparse
import asyncio

from cotal_tui.commands.common import UsageError, check_state_dir, resolve_space
from cotal_tui.server.up import DEFAULT_STATE_DIR, UpOptions, run_up
from cotal_tui.server.up_cluster import NodeConfigOptions


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "up",
        help="run nats-server for a space and provision it (auth mode unless --open)",
        description=(
            "Start the embedded nats-server with JetStream, provision the space's streams and "
            "buckets, print the URL, and run until Ctrl-C/SIGTERM. If a server already answers "
            "on the address, provision it instead. Auth mode (the default) creates or reuses "
            "the trust chain under --state-dir and runs the space's delivery daemon in-process "
            "(reported once it serves; --no-daemon skips it); --open runs without auth. "
            "While it runs, <state-dir>/up.json says where it listens, so the other commands "
            "find it without --server."
        ),
        epilog="example: cotal-tui up --port 4333 --state-dir .cotal",
    )
    parser.add_argument(
        "--open", action="store_true", help="open mode: no auth, anyone can do anything"
    )
    parser.add_argument("--space", help="space name (default: $COTAL_SPACE, else main)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=4222, help="port (default: 4222)")
    parser.add_argument("--store-dir", help="JetStream store folder (default: <state-dir>/store)")
    parser.add_argument(
        "--channels",
        metavar="FILE",
        help='channel seed JSON {"defaults": {...}, "channels": {...}}, watched and re-applied '
        "on save (default: <state-dir>/channels.json when present)",
    )
    parser.add_argument(
        "--state-dir",
        default=DEFAULT_STATE_DIR,
        help=f"trust chain, creds and store (default: {DEFAULT_STATE_DIR})",
    )
    parser.add_argument(
        "--no-daemon",
        dest="daemon",
        action="store_false",
        help="auth mode: do not run the delivery daemon in-process (run cotal-tui daemon)",
    )
    add_cluster_args(parser)
    parser.set_defaults(func=_run)


def add_cluster_args(parser: argparse.ArgumentParser) -> None:
    """The cluster options (server/up_cluster.py)."""
    group = parser.add_argument_group("cluster")
    group.add_argument(
        "--replicas",
        type=int,
        metavar="N",
        help="replicas of every stream and bucket: 1 or 3 (checked against the cluster size the "
        "server reports). Default: an existing space keeps its own; a new one gets 1 (3 under "
        "--cluster)",
    )
    group.add_argument(
        "--cluster",
        type=int,
        metavar="N",
        help="run a local cluster of N nats-server nodes on --host (client ports --port, "
        "--port+1, ...; one store each under <state-dir>/cluster/), provision at R3, run the "
        "daemon; all nodes stop on exit",
    )
    group.add_argument(
        "--server",
        metavar="URL[,URL...]",
        help="provision an existing server or cluster (all its URLs, comma-separated) and run "
        "the daemon against it; no server is started",
    )
    group.add_argument(
        "--write-server-config",
        metavar="FILE",
        help="write one node's nats-server config for a cluster on several machines (this state "
        "dir's trust chain, JetStream, server_name, cluster routes) and exit; with --node-name, "
        "--routes, and optionally --host/--port, --cluster-listen, --store-dir",
    )
    group.add_argument("--node-name", default="", help="the node's server_name (with --write-…)")
    group.add_argument(
        "--routes",
        default="",
        metavar="URL[,URL...]",
        help="every node's nats-route://host:port (with --write-server-config)",
    )
    group.add_argument(
        "--cluster-listen",
        default="0.0.0.0:6222",
        metavar="HOST:PORT",
        help="where the node listens for routes (default 0.0.0.0:6222)",
    )


def _node_config(args: argparse.Namespace) -> NodeConfigOptions | None:
    if not args.write_server_config:
        return None
    return NodeConfigOptions(
        out=args.write_server_config,
        node_name=args.node_name,
        routes=[r.strip() for r in args.routes.split(",") if r.strip()],
        host=args.host,
        port=args.port,
        cluster_listen=args.cluster_listen,
        store_dir=args.store_dir or "/var/lib/nats/jetstream",
    )


def _run(args: argparse.Namespace) -> int:
    space = resolve_space(args.space)
    if not 1 <= args.port <= 65535:
        raise UsageError(f"--port {args.port}: must be between 1 and 65535")
    if not args.host.strip():
        raise UsageError("--host: must not be empty")
    check_state_dir(args.state_dir)
    if args.store_dir:
        check_state_dir(args.store_dir, "--store-dir")
    options = UpOptions(
        space=space,
        host=args.host,
        port=args.port,
        store_dir=args.store_dir,
        channels=args.channels,
        state_dir=args.state_dir,
        open=args.open,
        daemon=args.daemon,
        replicas=args.replicas,
        cluster=args.cluster,
        server=args.server,
        node_config=_node_config(args),
    )
    return asyncio.run(run_up(options))
