"""`cotal-tui console`: the Textual control console of a space, or its `--plain` line stream.

    cotal-tui console [--server URL] [--space S] [--creds F] [--name N] [--channel CH ...]
                      [--daemon] [--read-only] [--theme T] [--plain] [--config FILE]

With no --server it uses the space's embedded server on 127.0.0.1:4222, starting it when nothing
answers there (and then stopping it on exit). `--plain` (automatic when stdout is not a terminal)
prints timestamped lines of presence changes, messages, and link/delivery verdict changes.

Settings may also come from a JSON config file (`--config FILE`, default <state-dir>/console.json
when it exists: theme, name, channels, readOnly, daemon); flags win over it. While the console
runs it watches that file and its creds file and applies edits live (console/watch.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from typing import TYPE_CHECKING

from cotal_tui.commands.common import (
    LOCAL_HOSTS,
    UsageError,
    add_server_arg,
    add_space_arg,
    add_state_dir_arg,
    check_creds_file,
    resolve_target,
)
from cotal_tui.console.commands import Dispatcher
from cotal_tui.console.config import (
    ConsoleConfigError,
    ConsoleFlags,
    config_path,
    effective,
    load_console_config,
)
from cotal_tui.console.model import TICK_MS, ConsoleModel, ModelOptions
from cotal_tui.console.plain import PlainStream
from cotal_tui.console.session import ConsoleSession, SessionOptions
from cotal_tui.console.watch import WatchedConfig

if TYPE_CHECKING:
    from cotal_tui.tui.app import ConsoleApp


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "console",
        help="the control console of a space (Textual), or --plain line stream",
        description=(
            "The control console of a space: roster, channels, delivery lease, pending joins "
            "and leaves, feed; join, leave, post, direct messages. With no --server it finds "
            "the server cotal-tui up runs from --state-dir, and starts the space's own server "
            "only when none runs. --plain (automatic when stdout is not a terminal) prints "
            "timestamped lines of presence changes, messages and verdict changes instead. "
            "Settings may also come from a JSON file (--config, default "
            "<state-dir>/console.json when it exists); flags win, and edits apply live."
        ),
        epilog="example: cotal-tui console --channel general",
    )
    add_connection_args(p)
    p.add_argument("--name", help="your name on the roster (default operator)")
    p.add_argument(
        "--channel", action="append", default=[], metavar="CH", help="join at start (repeatable)"
    )
    p.add_argument(
        "--daemon",
        action="store_true",
        help="host the delivery daemon in the console (if another holds the lease, say so and "
        "keep running as a console)",
    )
    p.add_argument(
        "--daemon-creds", help="a delivery-profile .creds for --daemon (default --creds)"
    )
    p.add_argument(
        "--read-only", action="store_true", help="refuse every write verb; no presence of your own"
    )
    p.add_argument("--theme", help="a Textual theme name, e.g. cotal-mono, textual-light, nord")
    p.add_argument(
        "--plain",
        action="store_true",
        help="timestamped line stream instead of the TUI (automatic when stdout is not a tty)",
    )
    p.add_argument(
        "--config",
        metavar="FILE",
        help="console settings as JSON (theme, name, channels, readOnly, daemon; flags win); "
        "default <state-dir>/console.json when it exists; edits apply live",
    )
    p.set_defaults(func=run)


def add_connection_args(p: argparse.ArgumentParser, *, starts_server: bool = True) -> None:
    extra = (
        "; with none of these and nothing answering, the space's own server is started from "
        "--state-dir"
        if starts_server
        else ""
    )
    add_server_arg(p, extra)
    add_space_arg(p)
    p.add_argument(
        "--creds",
        help="a .creds file (default: $COTAL_CREDS, else an operator cred of the space's trust "
        "chain under --state-dir, minted on first use; never the allow-all manager)",
    )
    add_state_dir_arg(p)


def session_options(args: argparse.Namespace) -> SessionOptions:
    """The file (`--config` or the state dir's console.json) merged under the flags; raises
    ConsoleConfigError (one line naming the file, field and rule) for a file that cannot work."""
    path = config_path(getattr(args, "config", None), args.state_dir)
    config, text = load_console_config(path, required=getattr(args, "config", None) is not None)
    flags = ConsoleFlags(
        theme=getattr(args, "theme", None),
        name=args.name,
        channels=tuple(args.channel),
        read_only=args.read_only,
        daemon=args.daemon,
    )
    eff = effective(config, flags)
    target = resolve_target(args)
    server: str | None = target.server if target.explicit_server else None
    port = 4222
    if target.record is not None and not target.explicit_server:
        record = target.record
        if record.host in LOCAL_HOSTS and not (record.clustered or record.external):
            port = record.port  # the space's own server, found from --state-dir
        else:
            # a local cluster: every node's URL (fails over); `up --server`: the list it was
            # given (a server the console must never start itself)
            server = record.url
    return SessionOptions(
        server=server,
        embedded_port=port,
        # up.json's server list (a cluster, `up --server`): its operator identity, not none
        state_server=server is not None and not target.explicit_server,
        space=target.space,
        creds=target.creds,
        name=eff.name,
        channels=list(eff.channels),
        daemon=eff.daemon,
        daemon_creds=args.daemon_creds,
        read_only=eff.read_only,
        state_dir=args.state_dir,
        watch=True,
        config=WatchedConfig(path=path, flags=flags, running=eff, text=text),
    )


def run(args: argparse.Namespace) -> int:
    try:
        if args.daemon_creds:
            check_creds_file(args.daemon_creds, "--daemon-creds")
        options = session_options(args)
    except (UsageError, ConsoleConfigError) as exc:
        print(f"cotal-tui {args.command}: {exc}", file=sys.stderr)
        return 1
    plain = args.plain or not sys.stdout.isatty()
    if plain:
        try:
            return asyncio.run(run_plain(options))
        except KeyboardInterrupt:
            return 130
    return run_tui(options, flag_theme=args.theme)


async def console_app(
    session: ConsoleSession, *, demo: bool = False, theme: str | None = None
) -> ConsoleApp:
    """A ConsoleApp that starts `session` in its own loop and stops it on exit.

    The demo uses this too: build a session on its local space (daemon=True), then
    `app = await console_app(session, demo=True); await app.run_async()`.
    """
    from cotal_tui.tui.app import ConsoleApp

    await session.prepare()
    read_only = session.options.read_only
    model = ConsoleModel(session.source, options=ModelOptions(read_only=read_only, demo=demo))
    app = ConsoleApp(
        model,
        Dispatcher(session.source, read_only=read_only),
        theme=theme,
        on_start=lambda: session.start(),
        on_stop=session.stop,
        notice="; ".join(session.notes) or None,
    )
    session.hooks.notice = app.set_notice
    session.hooks.themes = lambda: app.available_themes
    session.hooks.set_theme = app.apply_theme
    return app


class UnknownTheme(ConsoleConfigError):
    """The config file names a theme this console does not have."""


def known_themes() -> set[str]:
    """What `--theme` / the config's `theme` may name: Textual's built-ins and cotal-mono."""
    from textual.theme import BUILTIN_THEMES

    from cotal_tui.tui.app import MONO_THEME

    return set(BUILTIN_THEMES) | {MONO_THEME.name}


def file_theme(options: SessionOptions, flag_theme: str | None) -> str | None:
    """The theme to start with; raise UnknownTheme when the config file names an unknown one
    (an unknown `--theme` flag is said on the notice line instead, as before)."""
    if flag_theme:
        return flag_theme
    theme = options.config.running.theme if options.config else None
    if theme and theme not in (known := known_themes()):
        where = options.config.path if options.config else "config"
        raise UnknownTheme(
            f"{where}: theme: {theme!r} is not a known theme (known: {', '.join(sorted(known))})"
        )
    return theme


def run_tui(options: SessionOptions, *, flag_theme: str | None = None) -> int:
    try:
        theme = file_theme(options, flag_theme)
    except UnknownTheme as exc:
        print(f"cotal-tui console: {exc}", file=sys.stderr)
        return 1

    async def build() -> ConsoleApp:
        return await console_app(ConsoleSession(options), theme=theme)

    # prepare() may start the embedded server; the app then runs in its own loop.
    loop = asyncio.new_event_loop()
    try:
        asyncio.set_event_loop(loop)
        try:
            app = loop.run_until_complete(build())
        except Exception as exc:  # noqa: BLE001 - e.g. the embedded server could not start
            print(f"cotal-tui console: cannot start: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
        loop.run_until_complete(app.run_async())
    finally:
        finish_loop(loop)
    return app.return_code or 0


def finish_loop(loop: asyncio.AbstractEventLoop, timeout: float = 3.0) -> None:
    """Cancel what is still running (e.g. a client's reader abandoned while reconnecting) and
    let it unwind before the loop closes, so quitting never prints "Event loop is closed"."""
    with contextlib.suppress(Exception):
        tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            loop.run_until_complete(asyncio.wait(tasks, timeout=timeout))
    with contextlib.suppress(Exception):
        loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()


async def run_plain(options: SessionOptions, *, out=None) -> int:
    """Print snapshot changes as lines until SIGINT/SIGTERM (or stdout closes)."""
    out = out or sys.stdout
    session = ConsoleSession(options)
    model = ConsoleModel(session.source, options=ModelOptions(read_only=options.read_only))
    stream = PlainStream()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    session.hooks.notice = lambda text, _outcome: print(f"# {text}", file=out, flush=True)
    await session.start()
    for note in session.notes:
        print(f"# {note}", file=out, flush=True)
    model.start()
    try:
        while not stop.is_set():
            lines = stream.lines(model.tick())
            if lines:
                try:
                    out.write("\n".join(lines) + "\n")
                    out.flush()
                except BrokenPipeError:
                    break
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(TICK_MS / 1000):
                    await stop.wait()
    finally:
        await model.stop()
        await session.stop()
    return 0
