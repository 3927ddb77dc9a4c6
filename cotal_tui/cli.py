"""`cotal-tui` entry point.

Each subcommand lives in its own module under `cotal_tui.commands` and exposes
`register(subparsers) -> None`; the parser it adds sets `func(args) -> int`.
Modules are listed here so that a missing optional one never breaks the others.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback

from cotal_tui import __version__

DEBUG_ENV = "COTAL_DEBUG"
COMMAND_MODULES = ("up", "mint", "status", "check", "daemon", "console", "agent", "demo")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cotal-tui",
        description="Operate a Cotal 0.6.0 space: embedded server, delivery daemon, console.",
        epilog="example: cotal-tui up --port 4333   (then, in another terminal: cotal-tui console)",
    )
    add_version(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"cotal_tui.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"cotal_tui.commands.{name}":
                continue
            raise
        module.register(sub)
    for child in sub.choices.values():
        add_version(child)
    return parser


def add_version(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--version", action="version", version=f"cotal-tui {__version__} (Cotal 0.6.0 protocol)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    from cotal_tui.commands.common import UsageError

    command = f"cotal-tui {args.command}"
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `| head`: the reader left; nothing more to say
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except UsageError as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - the last guard: one line, never a traceback
        if os.environ.get(DEBUG_ENV):
            traceback.print_exc()
        text = str(exc).splitlines()[0] if str(exc) else ""
        print(
            f"{command}: {type(exc).__name__}: {text} (set {DEBUG_ENV}=1 for the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
