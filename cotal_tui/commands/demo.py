"""`cotal-tui demo`: a throwaway auth-mode space with simulated agents, under the console.

    cotal-tui demo [--agents N] [--space S] [--seed N] [--port P] [--plain] [--duration S]
                   [--fast] [--theme T]

Starts an embedded nats-server (auth mode, fresh temp state and store, a free port unless
--port), provisions the space, runs N simulated agents (default 8) and the delivery daemon
in-process, and opens the console with a DEMO badge. Scripted on a timeline, the cases an
operator must recognise: a boot join waiting for the daemon (then resolving), an agent that
crashes without going offline (swept offline), an agent whose read ACL is narrowed (a leave
retry, then cleanup). `q` or Ctrl-C stops everything; no process is left behind.

What to watch (default timeline; --fast compresses it to ~6 s):
  +0s   ada boots with no daemon: Pending shows "join #general (ada)", lease says no-lease
  +6s   the daemon binds: lease SERVING, ada's joins resolve, the others boot and chat
  +22s  gus crashes without an offline record: its heartbeat ages, then the sweep marks it offline
  +36s  ivy loses #review (ACL row, re-issued creds, kick) while the daemon's responder is
        paused for 7 s: lease NO-RESPONDER, Pending shows "leave #review (ivy)" retrying,
        then it lands and clears
  +60s  gus reboots with the same identity and gets back what it missed on durable channels
The operator (you) is on the roster: `:join`, `:post` with @mentions (a mentioned agent answers),
`:dm`, `:status`; every note of the timeline appears on the notice line.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from cotal_tui.commands.common import UsageError, plain_help
from cotal_tui.demo.cast import MAX_AGENTS, MIN_AGENTS
from cotal_tui.protocol.errors import InvalidName
from cotal_tui.protocol.operator_input import check_space_name
from cotal_tui.server.mint import MintError
from cotal_tui.server.process import EmbeddedServerError


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "demo",
        help="a throwaway space with simulated agents, under the console (DEMO badge)",
        description=plain_help(__doc__ or ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example: cotal-tui demo --fast --agents 5",
    )
    p.add_argument(
        "--agents",
        type=int,
        default=8,
        help=f"simulated agents, {MIN_AGENTS}..{MAX_AGENTS} (default 8)",
    )
    p.add_argument("--space", default="demo", help="space name (default demo)")
    p.add_argument("--seed", type=int, help="seed for the agents' behaviour (default: random)")
    p.add_argument("--port", type=int, default=0, help="server port (default: a free one)")
    p.add_argument(
        "--plain",
        action="store_true",
        help="timestamped line stream instead of the TUI (automatic when stdout is not a tty)",
    )
    p.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    p.add_argument(
        "--fast",
        action="store_true",
        help="compress the timeline (every scripted case within ~6 s; short presence TTL)",
    )
    p.add_argument("--theme", help="a Textual theme name, e.g. cotal-mono, nord")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cotal_tui.demo.run import DemoOptions, run_plain, run_tui
    from cotal_tui.demo.timeline import Timeline

    if not MIN_AGENTS <= args.agents <= MAX_AGENTS:
        print(
            f"cotal-tui demo: --agents must be {MIN_AGENTS}..{MAX_AGENTS} (the first three play "
            f"the scripted cases); got {args.agents}",
            file=sys.stderr,
        )
        return 2
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port {args.port}: must be between 1 and 65535 (0: a free one)")
    options = DemoOptions(
        agents=args.agents,
        space=check_space(args.space),
        seed=args.seed,
        plain=args.plain or not sys.stdout.isatty(),
        duration=args.duration,
        port=args.port,
        theme=args.theme,
        timeline=Timeline.fast() if args.fast else Timeline(),
    )
    try:
        if options.plain:
            return asyncio.run(run_plain(options))
        return run_tui(options)
    except KeyboardInterrupt:
        return 130
    except (EmbeddedServerError, MintError, OSError) as exc:
        print(f"cotal-tui demo: could not start the demo space: {exc}", file=sys.stderr)
        return 1


def check_space(space: str) -> str:
    try:
        return check_space_name(space)
    except InvalidName as exc:
        raise UsageError(str(exc)) from None
