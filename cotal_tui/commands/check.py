"""`cotal-tui check`: one line about a space's health; exit 0 healthy, 1 degraded, 2 critical,
3 unknown (critical outranks unknown; unknown outranks degraded).

It connects as an observer (no presence, no durable consumers; the KV watches it reads the roster
and registry with are deleted on exit when the cred may, mesh/kv.py), waits until it has
evidence — the roster current, the lease read and the responder probed — or until --timeout,
then judges one console snapshot with the same verdict table the console draws. Missing evidence
is reported as what it is (unknown), never as healthy. When no evidence came (a cluster that
lost quorum answers no KV watch and no lease read), it reads the cluster on a connection of its
own from 3 s before --timeout and names a lost quorum (critical) instead of a watch failure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
import uuid

from cotal_tui.commands.common import UsageError, local_space_creds, resolve_target
from cotal_tui.commands.console import add_connection_args
from cotal_tui.console.model import ConsoleModel
from cotal_tui.console.plain import CRITICAL, UNKNOWN, CheckResult, check_snapshot
from cotal_tui.console.session import ConsoleSession, SessionOptions
from cotal_tui.mesh.cluster_view import read_cluster_view
from cotal_tui.mesh.connection import Connection
from cotal_tui.mesh.lease_table import QUORUM_LOST_CONSEQUENCE


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "check",
        help="one-line health of a space; exit 0 healthy/1 degraded/2 critical/3 unknown",
        description=(
            "One line about a space's health; exit 0 healthy, 1 degraded, 2 critical, 3 unknown "
            "(critical outranks unknown; unknown outranks degraded). It connects without a "
            "presence of its own, waits until it has evidence (the roster current, the "
            "delivery lease read and its daemon probed) or until --timeout, and judges it with "
            "the console's own verdicts. Missing evidence is reported as unknown, never as "
            "healthy. It never starts a server."
        ),
        epilog="example: cotal-tui check --timeout 5 || echo 'space needs attention'",
    )
    add_connection_args(p, starts_server=False)
    p.add_argument(
        "--timeout", type=float, default=8.0, help="seconds to gather evidence (default 8)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        target = resolve_target(args)
        if args.timeout <= 0:
            raise UsageError(f"--timeout {args.timeout:g}: must be more than 0 seconds")
        creds = target.creds
        if creds is None and target.local:
            creds = local_space_creds(args.state_dir, target.space)
    except UsageError as exc:
        print(f"UNKNOWN: {exc}")
        return UNKNOWN
    options = SessionOptions(
        server=target.server,
        space=target.space,
        creds=creds,
        name="cotal-tui-check",
        observer=True,
        read_only=True,
        one_shot=True,
        state_dir=args.state_dir,
        connect_timeout=min(5.0, args.timeout),
    )
    result = asyncio.run(check(options, timeout=args.timeout))
    print(result.line)
    return result.code


def evidence_complete(session: ConsoleSession) -> bool:
    lease = session.source.lease()
    return (
        session.ep.connected
        and session.source.roster().view == "current"
        and lease.read.outcome != "pending"
        and lease.responder.outcome != "unchecked"
        and (lease.progress is None or lease.progress.outcome != "pending")
        and cluster_read(session)
    )


def cluster_read(session: ConsoleSession) -> bool:
    """The cluster's view was read at least once (a single server answers at once)."""
    read = getattr(session.source, "cluster", None)
    return read is None or read() is not None


async def check(options: SessionOptions, *, timeout: float = 8.0) -> CheckResult:
    session = ConsoleSession(options)
    model = ConsoleModel(session.source)
    deadline = time.monotonic() + timeout
    probe: asyncio.Task[str | None] | None = None
    try:
        await session.start()
        while time.monotonic() < deadline and not evidence_complete(session):
            if session.source.start_error and not session.ep.connected:
                break  # the first attempt failed: said at once, not after the timeout
            if probe is None and deadline - time.monotonic() < LEAD_S:
                # no evidence yet this close to the deadline: ask the cluster meanwhile (a lost
                # quorum holds every KV watch and lease read until its requests time out)
                probe = asyncio.create_task(quorum_lost(session, LEAD_S + 1.0))
            await asyncio.sleep(0.05)
        snap = model.tick()
        started = session.ep.connected
        if (started and not evidence_complete(session)) or (
            not started and session.source.start_kind in (None, "error")
        ):
            # the server answered (or has not said no), yet no verdict: a lost quorum?
            if probe is None:
                probe = asyncio.create_task(
                    quorum_lost(session, max(deadline - time.monotonic(), LEAD_S))
                )
            lost = await probe
            if lost is not None:
                return CheckResult(CRITICAL, quorum_lost_line(options.space, lost, session))
        if not session.ep.connected and session.source.start_error:
            link = session.source.start_kind or "unreachable"
            return CheckResult(
                CRITICAL,
                f"CRITICAL: space={options.space} link={link} — {session.source.start_error}",
            )
        return check_snapshot(snap)
    finally:
        if probe is not None and not probe.done():
            probe.cancel()
        await session.stop()


LEAD_S = 3.0
"""How long before the deadline a check that has not started asks the cluster whether it lost
quorum (one read, its requests bounded by ``cluster_view.READ_TIMEOUT_S``): the verdict then
comes about when the --timeout ends, not a read later."""


async def quorum_lost(session: ConsoleSession, budget: float) -> str | None:
    """Whether the space's cluster has lost quorum, in the cluster view's own words (``no
    leader for …``), read on a connection of its own (the session's endpoint has not started:
    a KV watch's consumer create waits on the leaderless stream). None when it has not, when the
    server is not clustered, or when nothing could be read."""
    conn = Connection(
        session.server_url,
        "cotal-tui-check",
        f"cotal-tui-check-{uuid.uuid4().hex[:12]}",
        creds=session.creds,
        connect_timeout=min(budget, 5.0),
    )
    try:
        async with asyncio.timeout(budget):
            await conn.connect()
            view = await read_cluster_view(conn, session.options.space)
    except Exception:  # noqa: BLE001 - no evidence either way: the start error stands
        return None
    finally:
        with contextlib.suppress(Exception):
            await conn.close(timeout=2.0)
    return view.detail() if view.word() == "lost" else None


def quorum_lost_line(space: str, detail: str, session: ConsoleSession) -> str:
    return (
        f"CRITICAL: space={space} link=up delivery=quorum-lost cluster=lost — the cluster has "
        f"lost quorum ({detail}): {QUORUM_LOST_CONSEQUENCE}"
        + (f" (the check could not start: {why})" if (why := session.source.start_error) else "")
    )
