"""`cotal-tui up`: run the embedded nats-server for a space in the foreground, provision it.

Open mode starts `nats-server -js` on the given address; auth mode renders the trust chain's
server config (server/auth.py) and provisions with an allow-all manager cred. If a server already
answers on the address, `up` provisions that one and says so instead of starting another. While
it runs it watches the channel seed file and re-applies edits (a bad edit is reported, nothing is
written). In auth mode it also runs the space's delivery daemon in-process (server/up_delivery.py;
`--no-daemon` skips it). It supervises both (server/up_supervise.py): a nats-server that dies is
started again on the same store and port, and a daemon that stopped (broker gone 15 s, lease
lost) is started again once the broker answers, each with a bounded backoff and a line each
time. SIGINT/SIGTERM stop it cleanly: the daemon (releasing its lease), the
watcher, the client, then the server (SIGTERM, SIGKILL after a grace period, always reaped).

Cluster options live in server/up_cluster.py: `--cluster N` starts a local cluster instead of one
server, `--server URL,...` provisions an existing one and starts nothing, `--replicas N` is
checked against the cluster size the server reports, `--write-server-config` renders a node's
config and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import nats
from nats.aio.client import Client
from watchfiles import awatch

from cotal_tui.delivery.collector import settle_after_start
from cotal_tui.mesh.connection import server_list
from cotal_tui.server.auth import (
    AuthError,
    AuthNotFound,
    SpaceAuth,
    ensure_space_auth,
    load_space_auth,
)
from cotal_tui.server.cluster import ClusterError, LocalCluster
from cotal_tui.server.process import (
    EmbeddedServer,
    EmbeddedServerError,
    port_open,
    port_refusal,
)
from cotal_tui.server.provision import ProvisionError, provision_space
from cotal_tui.server.seed import ChannelSeedError, apply_channel_seed, load_channel_seed
from cotal_tui.server.state import (
    RECORD_FILE,
    UpRecord,
    now_ms,
    read_record,
    remove_record,
    store_holder,
    write_record,
)
from cotal_tui.server.up_cluster import (
    ClusterOptions,
    ClusterUsageError,
    NodeConfigOptions,
    check_cluster,
    cluster_record,
    default_replicas,
    outside_nodes,
    render_node_config,
    server_record,
    start_local_cluster,
    stopped_line,
    validate_options,
    watch_nodes,
)
from cotal_tui.server.up_delivery import UpDelivery
from cotal_tui.server.up_supervise import broker_answers, supervise_delivery, supervise_server

DEFAULT_STATE_DIR = ".cotal"
CHANNELS_FILE = "channels.json"


@dataclass
class UpOptions:
    space: str = "main"
    host: str = "127.0.0.1"
    port: int = 4222
    store_dir: str | None = None
    channels: str | None = None
    state_dir: str = DEFAULT_STATE_DIR
    open: bool = False
    daemon: bool = True
    # Cluster (server/up_cluster.py): a local cluster of N nodes, or an existing one's URLs.
    replicas: int | None = None
    cluster: int | None = None
    server: str | None = None
    node_config: NodeConfigOptions | None = None

    @property
    def cluster_options(self) -> ClusterOptions:
        return ClusterOptions(cluster=self.cluster, server=self.server, replicas=self.replicas)


class UpError(RuntimeError):
    """`up` could not bring the space up; the message says why and what to do."""


class Reporter:
    """Operator-facing lines (`✓`/`✗`/`•`), flushed at once so a supervisor sees them live."""

    def __init__(self, out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.err = err or sys.stderr

    def ok(self, text: str) -> None:
        print(f"✓ {text}", file=self.out, flush=True)

    def info(self, text: str) -> None:
        print(f"• {text}", file=self.out, flush=True)

    def fail(self, text: str) -> None:
        print(f"✗ {text}", file=self.err, flush=True)


def channels_path(options: UpOptions) -> Path | None:
    """`--channels`, else `<state-dir>/channels.json` when it exists (as the reference does)."""
    if options.channels:
        return Path(options.channels)
    default = Path(options.state_dir) / CHANNELS_FILE
    return default if default.is_file() else None


async def _ignore(exc: Exception) -> None:
    return None


async def connect_client(url: str, creds: str | None) -> Client:
    """A long-lived client (reconnects forever), after a fail-fast probe: nats-py's first
    connect retries forever too, so a refused credential would otherwise hang `up`."""
    kwargs: dict[str, Any] = {"user_credentials": creds} if creds else {}
    probe = await nats.connect(
        server_list(url),
        error_cb=_ignore,
        allow_reconnect=False,
        max_reconnect_attempts=1,
        connect_timeout=5,
        **kwargs,
    )
    await probe.close()
    return await nats.connect(
        server_list(url), error_cb=_ignore, max_reconnect_attempts=-1, connect_timeout=5, **kwargs
    )


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return None


async def watch_channels(
    nc: Client,
    space: str,
    path: Path,
    report: Reporter,
    stop: asyncio.Event,
    applied_text: str | None = None,
) -> None:
    """Re-apply the seed file whenever its content changes, until `stop` is set.

    The file's content (not the event's path) decides, so editors that save by rename work, and
    an edit made before the watcher was armed is caught at its first tick. A bad edit is
    reported and writes nothing; the last good content stays applied.
    """
    target = path.resolve()
    last = applied_text
    armed = False
    async for _changes in awatch(
        target.parent,
        stop_event=stop,
        debounce=200,
        step=50,
        yield_on_timeout=True,
        rust_timeout=1000,
    ):
        if not armed:
            armed = True
            report.info(f"watching {path} for edits")
        text = _read_text(target)
        if text is None or text == last:
            continue
        last = text
        try:
            seed = load_channel_seed(target)
        except ChannelSeedError as exc:
            report.fail(f"{exc} — nothing was written; fix the file and save it again")
            continue
        try:
            written = await apply_channel_seed(nc, space, seed)
        except Exception as exc:  # noqa: BLE001 - reported, the watch goes on
            report.fail(f"channels file {path}: could not write the registry ({exc})")
            last = None  # retry on the next tick
            continue
        if written:
            report.ok(f"channels file {path} re-applied: {', '.join(written)}")
        else:
            report.info(f"channels file {path} saved; registry already up to date")


def _refusal(options: UpOptions, url: str, store: str, already: bool) -> str | None:
    """Why `up` must not go on (checked before writing anything), or None."""
    if already:
        if options.open:
            return None
        try:
            load_space_auth(Path(options.state_dir), options.space)
        except AuthNotFound:
            record = read_record(options.state_dir)
            ours = record is not None and record.url == url
            whose = (
                f"`cotal-tui up` (pid {record.pid}) runs it from {options.state_dir}"
                if ours
                else f"it was not started from the trust chain in {options.state_dir}"
            )
            return (
                f"a server already answers on {url} and {whose}; it cannot serve a new space "
                f"{options.space!r} without a restart: stop it, then run `cotal-tui up --space "
                f"{options.space}` (or pick another --port)"
            )
        except AuthError as exc:
            return str(exc)
        return None
    record = read_record(options.state_dir)
    if record is not None and (record.clustered or record.external):  # its up.json: overwritten
        how = "--cluster" if record.clustered else "--server"
        return (
            f"`cotal-tui up {how}` (pid {record.pid}) runs from {options.state_dir} at "
            f"{record.url}; stop it first, or use another --state-dir"
        )
    held = store_holder(store)
    if held is not None:
        return str(held)
    return port_refusal(options.host, options.port)


def _record_server(
    options: UpOptions, url: str, mode: str, replicas: int, report: Reporter
) -> bool:
    """`up --server`: say in the state dir's up.json where the space's server is, as `up` and
    `up --cluster` do, so status, check, console, mint, daemon and agent find it without
    --server; unless another live `up` runs from this state dir (its record stays)."""
    other = read_record(options.state_dir)
    if other is not None and other.pid != os.getpid():
        report.info(
            f"{RECORD_FILE} left as it is: `cotal-tui up` (pid {other.pid}) runs from "
            f"{options.state_dir} at {other.url}"
        )
        return False
    record = server_record(
        url, pid=os.getpid(), space=options.space, mode=mode, replicas=replicas,
        started_at=now_ms(),
    )  # fmt: skip
    try:
        Path(options.state_dir).mkdir(parents=True, exist_ok=True)
        write_record(options.state_dir, record)
    except OSError as exc:  # the space serves on; only the other commands' default is missing
        report.info(f"--state-dir {options.state_dir}: cannot write {RECORD_FILE} ({exc})")
        return False
    return True


async def _first_of(*events: asyncio.Event) -> None:
    waits = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()


async def run_up(options: UpOptions, report: Reporter | None = None) -> int:
    report = report or Reporter()
    try:
        validate_options(options.cluster_options)
    except ClusterUsageError as exc:
        report.fail(f"{exc} — nothing was started or written")
        return 2
    if options.node_config is not None:
        return render_node_config(options.state_dir, options.space, options.node_config, report)
    seed_file = channels_path(options)
    seed = None
    seed_text: str | None = None
    if seed_file is not None:
        seed_text = _read_text(seed_file)
        try:
            seed = load_channel_seed(seed_file)
        except ChannelSeedError as exc:
            report.fail(f"{exc} — nothing was started or written")
            return 2

    url = f"nats://{options.host}:{options.port}"
    store = options.store_dir or str(Path(options.state_dir) / "store")
    # --server starts nothing and --cluster checks its own nodes' ports (server/up_cluster.py):
    # the one-server checks (port, store lock) are for a single local server.
    single = not (options.server or options.cluster)
    already = single and port_open(options.host, options.port)
    # Everything is checked before anything is written: a refusal leaves the state dir as it was.
    refusal = _refusal(options, url, store, already) if single else None
    if refusal is not None:
        report.fail(f"{refusal} — nothing was started or written")
        return 2

    auth: SpaceAuth | None = None
    creds: str | None = None
    if not options.open:
        try:
            if already:
                auth = load_space_auth(Path(options.state_dir), options.space)
            else:
                auth = ensure_space_auth(Path(options.state_dir), options.space)
            creds = str(auth.manager_creds_path())
        except AuthError as exc:
            report.fail(str(exc))
            return 2
        except OSError as exc:
            report.fail(f"--state-dir {options.state_dir}: cannot write the trust chain ({exc})")
            return 2

    server: EmbeddedServer | None = None
    cluster: LocalCluster | None = None
    record_server = False  # `up --server` wrote the state dir's up.json
    nodes_down: set[str] = set()  # nodes of the local cluster watch_nodes holds down
    if options.server:
        url = ",".join(server_list(options.server))
        report.ok(f"provisioning the NATS server(s) at {url} (no server started)")
    elif options.cluster:
        other = read_record(options.state_dir)
        if other is not None:
            report.fail(
                f"`cotal-tui up` (pid {other.pid}) already runs from {options.state_dir} at "
                f"{other.url}; stop it first, or use another --state-dir — nothing was started"
            )
            return 2
        cluster = start_local_cluster(
            options.cluster, options.host, options.port, options.state_dir, auth, report
        )
        if cluster is None:
            return 1
        url = ",".join(cluster.urls)
        mode = "auth" if auth is not None else "open"
        started_at = now_ms()

        def record_cluster(replicas: int) -> None:
            assert cluster is not None
            write_record(
                options.state_dir,
                cluster_record(
                    cluster,
                    pid=os.getpid(),
                    space=options.space,
                    mode=mode,
                    replicas=replicas,
                    started_at=started_at,
                    down=nodes_down,
                ),
            )

        record_cluster(default_replicas(options.cluster_options) or 1)
    elif already:
        report.ok(f"NATS already running on {url}; provisioning it (no new server started)")
    else:
        config_file = None
        if auth is not None:
            config_file = str(auth.render_server_config(options.host, options.port, store))
        server = EmbeddedServer(
            host=options.host, port=options.port, store_dir=store, config_file=config_file
        )
        try:
            server.start()
        except EmbeddedServerError as exc:
            report.fail(str(exc))
            return 1
        mode = "auth" if auth is not None else "open"
        report.ok(f"nats-server started ({mode} mode, pid {server.pid}, store {store})")
        write_record(
            options.state_dir,
            UpRecord(
                pid=os.getpid(),
                url=url,
                host=options.host,
                port=options.port,
                space=options.space,
                store=str(Path(store).absolute()),
                mode=mode,
                started_at=now_ms(),
            ),
        )

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    nc: Client | None = None
    watcher: asyncio.Task[None] | None = None
    delivery: UpDelivery | None = None
    supervisors: list[asyncio.Task[None]] = []
    try:
        try:
            nc = await connect_client(url, creds)
            replicas = await check_cluster(nc, options.cluster_options, report)
            result = await provision_space(nc, options.space, replicas=replicas, channels_seed=seed)
        except (ProvisionError, ChannelSeedError, ClusterError) as exc:
            report.fail(str(exc))
            return 1
        except Exception as exc:  # noqa: BLE001 - e.g. auth refused by a foreign server
            hint = ""
            if "authorization" in str(exc).lower():
                hint = (
                    " — that server refused this identity: run `up` in the mode it was started "
                    "with (and the same --state-dir), or stop it"
                )
            report.fail(f"could not provision space {options.space!r} on {url}: {exc}{hint}")
            return 1
        if cluster is not None:
            record_cluster(result.replicas)  # the count the space has
        created = len(result.created)
        report.ok(
            f"space {options.space!r} provisioned "
            f"at R{result.replicas} "
            f"({created} created, {len(result.existing)} already in place"
            + (f", channels: {', '.join(result.channels_written) or 'up to date'}" if seed else "")
            + ")"
        )
        if options.server:
            mode = "open" if auth is None else "auth"
            record_server = _record_server(options, url, mode, result.replicas, report)
        if auth is not None:
            report.info(f"trust chain in {auth.dir} (mint creds with `cotal-tui mint`)")
        print(f"url: {url}", flush=True)
        if server is None and cluster is None and not options.server:
            return 0
        if server is not None:  # a cluster's nodes are watched below; --server starts none
            supervisors.append(
                asyncio.create_task(supervise_server(server, report, stop), name="up-server")
            )
        if auth is not None and options.daemon:
            delivery = UpDelivery(url, options.space, auth, nc, report)
            first_done = asyncio.Event()
            supervisors.append(
                asyncio.create_task(
                    supervise_delivery(delivery, report, stop, broker_answers(url), first_done),
                    name="up-delivery",
                )
            )
            # "running in the foreground" comes once the first start has ended, as before
            # supervision (the daemon serving, deferring, or said why not); Ctrl-C still stops.
            await _first_of(first_done, stop)
        elif auth is not None:
            report.info("no delivery daemon (--no-daemon): run `cotal-tui daemon` for durability")
        settle_after_start()  # up is a long-running daemon process from here on
        report.info("running in the foreground; Ctrl-C stops it")
        if seed_file is not None:
            watcher = asyncio.create_task(
                watch_channels(nc, options.space, seed_file, report, stop, seed_text),
                name="channels-watch",
            )
        # A single server is restarted by its supervisor (up_supervise.py) when it dies.
        while not stop.is_set():
            if cluster is not None:
                before = set(nodes_down)
                if not watch_nodes(cluster, nodes_down, report, result.replicas):
                    report.fail("every node of the local cluster has exited")
                    return 1
                if nodes_down != before:
                    record_cluster(result.replicas)  # a node's pid is None while it is down
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.5):
                    await stop.wait()
        report.info("stopping")
        return 0
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        stop.set()
        for task in supervisors:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if delivery is not None:
            await delivery.stop()
            report.ok("delivery daemon stopped (lease released)")
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await watcher
        if nc is not None:
            with contextlib.suppress(Exception):
                await nc.close()
        if server is not None:
            await asyncio.to_thread(server.stop)
            remove_record(options.state_dir, os.getpid())
            report.ok("nats-server stopped")
        if cluster is not None:
            outside = outside_nodes(cluster, nodes_down)  # before the stop: who runs by hand
            await asyncio.to_thread(cluster.stop)
            remove_record(options.state_dir, os.getpid())
            if outside:
                report.fail(stopped_line(cluster, outside))
            else:
                report.ok(stopped_line(cluster, outside))
        if record_server:
            remove_record(options.state_dir, os.getpid())
