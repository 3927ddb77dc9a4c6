"""`cotal-tui check`: one line about a space's health; exit 0 healthy, 1 degraded, 2 critical,
3 unknown (critical outranks unknown; unknown outranks degraded).

It connects as an observer (no presence, no consumers), waits until it has evidence — the roster
current, the lease read and the responder probed — or until --timeout, then judges one console
snapshot with the same verdict table the console draws. Missing evidence is reported as what it
is (unknown), never as healthy.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from cotal_tui.commands.console import ConsoleUsageError, add_connection_args, check_files
from cotal_tui.console.model import ConsoleModel
from cotal_tui.console.plain import CRITICAL, UNKNOWN, CheckResult, check_snapshot
from cotal_tui.console.session import ConsoleSession, SessionOptions


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "check",
        help="one-line health of a space; exit 0 healthy/1 degraded/2 critical/3 unknown",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_connection_args(p)
    p.add_argument(
        "--timeout", type=float, default=8.0, help="seconds to gather evidence (default 8)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        check_files(args)
    except ConsoleUsageError as exc:
        print(f"UNKNOWN: {exc}")
        return UNKNOWN
    options = SessionOptions(
        server=args.server or "nats://127.0.0.1:4222",
        space=args.space,
        creds=args.creds or (None if args.server else local_manager_creds(args)),
        name="cotal-tui-check",
        observer=True,
        read_only=True,
        state_dir=args.state_dir,
        connect_timeout=min(5.0, args.timeout),
    )
    result = asyncio.run(check(options, timeout=args.timeout))
    print(result.line)
    return result.code


def local_manager_creds(args: argparse.Namespace) -> str | None:
    """With no --server and no --creds: the space's own manager cred, when --state-dir has it."""
    from cotal_tui.server.auth import AuthNotFound, load_space_auth

    try:
        path = load_space_auth(args.state_dir, args.space).manager_creds_path()
    except (AuthNotFound, OSError, ValueError):
        return None
    return str(path) if path.exists() else None


def evidence_complete(session: ConsoleSession) -> bool:
    lease = session.source.lease()
    return (
        session.ep.connected
        and session.source.roster().view == "current"
        and lease.read.outcome != "pending"
        and lease.responder.outcome != "unchecked"
        and (lease.progress is None or lease.progress.outcome != "pending")
    )


async def check(options: SessionOptions, *, timeout: float = 8.0) -> CheckResult:
    session = ConsoleSession(options)
    model = ConsoleModel(session.source)
    deadline = time.monotonic() + timeout
    try:
        await session.start()
        while time.monotonic() < deadline and not evidence_complete(session):
            await asyncio.sleep(0.05)
        snap = model.tick()
        if not session.ep.connected and session.source.start_error:
            link = "unreachable" if session.source.start_unreachable else "closed"
            return CheckResult(
                CRITICAL,
                f"CRITICAL: space={options.space} link={link} — {session.source.start_error}",
            )
        return check_snapshot(snap)
    finally:
        await session.stop()
