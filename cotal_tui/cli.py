"""`cotal-tui` entry point.

Each subcommand lives in its own module under `cotal_tui.commands` and exposes
`register(subparsers) -> None`; the parser it adds sets `func(args) -> int`.
Modules are listed here so that a missing optional one never breaks the others.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMAND_MODULES = ("up", "mint", "status", "check", "daemon", "console", "agent", "demo")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cotal-tui",
        description="Operate a Cotal 0.6.0 space: embedded server, delivery daemon, console.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"cotal_tui.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"cotal_tui.commands.{name}":
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
