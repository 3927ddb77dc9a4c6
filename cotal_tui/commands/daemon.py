"""`cotal-tui daemon`: run the delivery daemon (the Plane-3 durable backstop) of one space.

Exit codes: 0 after a clean stop (SIGINT/SIGTERM; the lease is released so a successor binds at
once); 1 when a live lease is held by another daemon (named, with its age; never retried into
a split), when the lease is lost, when the broker has been unreachable for 15 s, and for a
permission denial, a missing space or an unreadable creds file (each reported as what it is).

With ``--state-dir`` the daemon keeps a holder file there (server/holder_file.py): a restart of
the same identity after a crash then takes over the lease its dead predecessor left (proven:
same identity, same lease revision, process gone) instead of refusing for up to 30 s. Without
it, or when that is not proven, a lease held by anyone is refused as above. Restarting is left to
the supervisor (systemd and the like; see the README).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import time
import uuid
from typing import Any

from cotal_tui.commands.common import (
    DEFAULT_STATE_DIR,
    add_server_arg,
    add_space_arg,
    resolve_target,
)
from cotal_tui.delivery.collector import settle_after_start
from cotal_tui.delivery.daemon import DaemonError, DeliveryDaemon
from cotal_tui.delivery.event_loop import run as run_loop
from cotal_tui.delivery.stages import default_stages
from cotal_tui.mesh.connection import Connection, ConnectionError_, CredsUnreadable, Unreachable
from cotal_tui.mesh.endpoint import creds_identity
from cotal_tui.mesh.failures import classify
from cotal_tui.mesh.kv import KvError
from cotal_tui.mesh.lease import LeaseHeld
from cotal_tui.server.holder_file import HolderFile
from cotal_tui.server.stale_lease import HolderBusy, claim_holder, start_daemon

BROKER_GONE_ENV = "COTAL_DELIVERY_BROKER_GONE_MS"
OPEN_MODE_WARNING = (
    "⚠ delivery: OPEN MODE (no --creds). Sender identity is SELF-ASSERTED: any client can "
    "claim any id, join or leave for anyone and read what it joins. Use this only for "
    "development and demos; run with --creds <delivery.creds> on a real space."
)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "daemon",
        help="run the delivery daemon (the durable backstop for offline members) of a space",
        description=(
            "Run the delivery daemon of one space: the durable backstop that keeps messages of "
            "durable-class channels for members who are offline. Exit 0 after a clean stop "
            "(Ctrl-C/SIGTERM; the lease is released so a successor binds at once); exit 1 when "
            "another daemon holds a live lease (named, with its age), when the lease is lost, "
            "when the server has been unreachable for 15 s, or for refused credentials, a "
            "missing space or an unreadable creds file (each said as what it is)."
        ),
        epilog="example: cotal-tui daemon --creds .cotal/auth/delivery.main.creds",
    )
    add_server_arg(p)
    add_space_arg(p)
    p.add_argument(
        "--creds", help="a delivery-profile .creds file (default: $COTAL_CREDS; none: open mode)"
    )
    p.add_argument("--id", dest="daemon_id", help="open mode only: the daemon id (default: uuid)")
    # One flag, two uses: where `up` records its server (looked up in .cotal when not given),
    # and — only when given — where the holder file lives (a default would make every daemon
    # started from the same folder claim to be one process's successor).
    p.add_argument(
        "--state-dir",
        metavar="DIR",
        help=f"where cotal-tui up records its server (default: {DEFAULT_STATE_DIR}); when "
        "given, also keep a holder file here, so a restart after a crash takes over its own "
        "stale lease",
    )
    p.add_argument(
        "--stages",
        choices=("processes", "inline"),
        default=None,
        help="inline: everything in one process (the default, or $COTAL_DELIVERY_STAGES); "
        "processes: the fan-out and the reader run as two child processes (two cores)",
    )
    p.set_defaults(func=run)


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    target = resolve_target(args)
    args.server, args.space, args.creds = target.server, target.space, target.creds
    try:
        return run_loop(_main(args))
    except KeyboardInterrupt:
        return 130


def _broker_gone_s() -> float:
    raw = os.environ.get(BROKER_GONE_ENV)
    try:
        return float(raw) / 1000 if raw else 15.0
    except ValueError:
        return 15.0


async def _main(args: argparse.Namespace) -> int:
    if args.creds:
        try:
            daemon_id = creds_identity(args.creds)
        except (OSError, ValueError, KeyError, IndexError) as exc:
            _say(f"✗ delivery: cannot read the creds file {args.creds} ({exc})")
            return 1
        if args.daemon_id and args.daemon_id != daemon_id:
            _say(f"✗ delivery: --id {args.daemon_id} differs from the creds' identity {daemon_id}")
            return 1
    else:
        _say(OPEN_MODE_WARNING)
        daemon_id = args.daemon_id or str(uuid.uuid4())

    conn = Connection(args.server, "delivery", daemon_id, creds=args.creds)
    try:
        await conn.connect()
    except (CredsUnreadable, Unreachable, ConnectionError_) as exc:
        _say(f"✗ delivery: {classify(exc, server=args.server, space=args.space).text}")
        return 1

    holder = (
        HolderFile.for_daemon(args.state_dir, args.space, daemon_id) if args.state_dir else None
    )
    try:
        claim_holder(holder)
    except (HolderBusy, OSError) as exc:
        _say(f"✗ delivery: {exc}")
        await conn.close()
        return 1
    daemon = DeliveryDaemon(
        conn,
        args.space,
        daemon_id,
        on_error=lambda e: _say(f"! delivery: {e}"),
        on_lease=holder.record if holder is not None else None,
        stages=args.stages or default_stages(),
    )
    try:
        await start_daemon(daemon, holder, lambda t: _say(f"· delivery: {t}"), wait=False)
    except LeaseHeld as exc:
        _say(f"✗ delivery: {exc}")
        await conn.close()
        return 1
    except DaemonError as exc:
        _say(f"✗ delivery: {type(exc).__name__}: {exc}")
        await conn.close()
        return 1
    except KvError as exc:  # e.g. the account's consumer limit refused a registry watch
        _say(f"✗ delivery: could not bind the space's registries: {exc}")
        await conn.close()
        return 1
    settle_after_start()
    mode = "auth" if args.creds else "OPEN (self-asserted identities)"
    pids = daemon.stage_pids
    if pids:
        _say(
            f"· delivery: stages in their own processes: fan-out pid {pids.get('fanout')}, "
            f"reader pid {pids.get('reader')} (this process, pid {os.getpid()}, holds the lease)"
        )
    _say(f"✓ delivery: serving space {args.space!r} as {daemon_id} — lease.0 ready ({mode})")

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)

    gone_after = _broker_gone_s()

    async def broker_watch() -> str:
        since: float | None = None
        while True:
            await asyncio.sleep(0.5)
            if conn.is_connected:
                since = None
                continue
            since = since or time.monotonic()
            if time.monotonic() - since >= gone_after:
                return f"the broker at {args.server} has been unreachable for {gone_after:.0f}s"

    tasks = {
        "signal": asyncio.ensure_future(stop.wait()),
        "done": asyncio.ensure_future(daemon.wait_done()),
        "broker": asyncio.ensure_future(broker_watch()),
    }
    done, _ = await asyncio.wait(tasks.values(), return_when=asyncio.FIRST_COMPLETED)
    for t in tasks.values():
        if t not in done:
            t.cancel()
    code = 0
    if tasks["signal"] in done:
        _say("· delivery: stopping — releasing lease.0")
        with contextlib.suppress(Exception):
            await asyncio.wait_for(daemon.stop(), 6.0)
    elif tasks["done"] in done:
        _say(f"✗ delivery: {daemon.state.stopped_reason}")
        code = 1
    else:
        _say(f"✗ delivery: {tasks['broker'].result()} — exiting")
        with contextlib.suppress(Exception):
            await asyncio.wait_for(daemon.stop(release=False), 2.0)
        code = 1
    with contextlib.suppress(Exception):
        await asyncio.wait_for(conn.close(), 2.0)
    return code
