"""`cotal-tui agent`: one agent, headless, driven by JSON lines (for scripts and tool harnesses).

    cotal-tui agent --creds F [--server URL] [--space S] [--name N]

Reads one JSON command per line on stdin, writes one JSON object per line on stdout (the
`hello` event first, then replies and events; nothing else), logs to stderr. EOF on stdin,
`{"op":"quit"}`, SIGTERM and SIGINT all leave presence gracefully and exit 0. The protocol is in
cotal_tui/agent/lines.py and the README ("Agents").
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import threading
from typing import Any

from cotal_tui.agent.lines import encode
from cotal_tui.agent.session import (
    DEFAULT_SERVER,
    AgentOptions,
    AgentSession,
    AgentSetupError,
    stderr_log,
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "agent",
        help="run one agent headless: JSON-lines commands on stdin, events on stdout",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--creds", required=True, help="the agent's .creds (`cotal-tui mint NAME`)")
    p.add_argument("--server", default=DEFAULT_SERVER, help=f"NATS URL (default {DEFAULT_SERVER})")
    p.add_argument("--space", default="main", help="space name (default main)")
    p.add_argument("--name", help="the agent's name, only when the cred carries none")
    p.set_defaults(func=run)


class _Stdout:
    """Writes one JSON line per object; a closed stdout stops the agent."""

    def __init__(self, closed: asyncio.Event) -> None:
        self.closed = closed

    def __call__(self, obj: dict[str, Any]) -> None:
        if self.closed.is_set():
            return
        try:
            sys.stdout.write(encode(obj) + "\n")
            sys.stdout.flush()
        except (BrokenPipeError, ValueError, OSError):
            self.closed.set()


def _read_stdin(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[str | None]) -> None:
    """A daemon thread: any stdin (pipe, file, terminal) line by line; None at EOF."""
    try:
        for line in sys.stdin:
            loop.call_soon_threadsafe(queue.put_nowait, line)
    except (OSError, ValueError):
        pass
    loop.call_soon_threadsafe(queue.put_nowait, None)


async def run_agent(options: AgentOptions) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        session = AgentSession(options, _Stdout(stop), stderr_log)
    except AgentSetupError as exc:
        stderr_log(str(exc))
        return 2
    try:
        await session.start()
    except Exception as exc:  # noqa: BLE001 - one line, no traceback
        stderr_log(f"cannot start on {options.server} (space {options.space}): {exc}")
        with contextlib.suppress(Exception):
            await session.ep.stop(graceful=False)
        return 1
    lines: asyncio.Queue[str | None] = asyncio.Queue()
    threading.Thread(target=_read_stdin, args=(loop, lines), daemon=True).start()
    stopped = loop.create_task(stop.wait())
    try:
        while not stop.is_set():
            getter = loop.create_task(lines.get())
            done, _ = await asyncio.wait({getter, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                break
            line = getter.result()
            if line is None:
                break  # EOF: leave gracefully
            handler = loop.create_task(session.handle_line(line))
            done, _ = await asyncio.wait({handler, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if handler not in done:
                handler.cancel()
                with contextlib.suppress(BaseException):
                    await handler
                break
            if not handler.result():
                break
    finally:
        stopped.cancel()
        await session.stop()
    return 0


def run(args: argparse.Namespace) -> int:
    options = AgentOptions(creds=args.creds, server=args.server, space=args.space, name=args.name)
    try:
        return asyncio.run(run_agent(options))
    except KeyboardInterrupt:
        return 0
