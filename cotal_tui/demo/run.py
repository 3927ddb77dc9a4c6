"""`cotal-tui demo` end to end: a throwaway auth-mode space, the simulation, and a console.

Ownership, in start order (stopped in reverse, each step bounded, in ``finally``):

1. a fresh temp state dir (trust chain, creds, JetStream store), removed at the end;
2. the embedded nats-server (``start_local_space``, auth mode, provisioned, channels seeded) —
   a child process, stopped by pid (SIGTERM, then SIGKILL) and reaped;
3. the simulation (operator endpoint, agents, in-process daemon, timeline);
4. the console: the Textual app (DEMO badge) or, with ``--plain``, the console's line stream.

``q``, Ctrl-C, SIGTERM and SIGHUP all end it the same way; ``--duration`` ends it after S seconds.
A second signal while stopping stops the server at once and exits (130).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from cotal_tui.demo.plain import note_line
from cotal_tui.demo.simulation import DemoNote, DemoSimulation, channel_seed
from cotal_tui.demo.tasks import bounded
from cotal_tui.demo.timeline import Timeline
from cotal_tui.server.local import LocalSpace, start_local_space

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
SIM_STOP_S = 20.0


@dataclass
class DemoOptions:
    agents: int = 8
    space: str = "demo"
    seed: int | None = None
    plain: bool = False
    duration: float | None = None
    port: int = 0
    theme: str | None = None
    timeline: Timeline = field(default_factory=Timeline)


class DemoRun:
    """The owner of everything a demo starts."""

    def __init__(self, options: DemoOptions) -> None:
        self.options = options
        self.tmp: Path | None = None
        self.space: LocalSpace | None = None
        self.sim: DemoSimulation | None = None

    async def start_space(self, on_note: Callable[[DemoNote], None] | None = None) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="cotal-demo-"))
        self.space = await start_local_space(
            self.options.space,
            auth=True,
            state_dir=self.tmp / "state",
            store_dir=self.tmp / "store",
            port=self.options.port,
            channels_seed=channel_seed(),
        )
        self.sim = DemoSimulation(
            self.space,
            agents=self.options.agents,
            seed=self.options.seed,
            timeline=self.options.timeline,
            on_note=on_note,
        )
        await self.sim.prepare()

    async def stop_sim(self, timeout: float = SIM_STOP_S) -> None:
        """Stop the simulation, bounded: past ``timeout`` the server is stopped regardless."""
        if self.sim is not None:
            await bounded(self.sim.stop(), timeout)

    def stop_space(self) -> None:
        """Stop the server (by pid: SIGTERM, then SIGKILL) and remove the temp dir. Idempotent."""
        space, self.space = self.space, None
        if space is not None:
            space.stop()
        tmp, self.tmp = self.tmp, None
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)

    @property
    def server_pid(self) -> int | None:
        return self.space.server.pid if self.space else None


def _install_stop(loop: asyncio.AbstractEventLoop, stop: Callable[[], None], run: DemoRun) -> None:
    """First signal: ``stop`` (a clean stop, as ``q``). A second one while stopping: the server
    goes now (by pid), the temp dir too, and the process ends at once with 130."""
    signals = 0

    def on_signal() -> None:
        nonlocal signals
        signals += 1
        if signals == 1:
            stop()
            return
        run.stop_space()
        os._exit(130)

    for sig in STOP_SIGNALS:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, on_signal)


def _remove_stop(loop: asyncio.AbstractEventLoop) -> None:
    for sig in STOP_SIGNALS:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.remove_signal_handler(sig)


# -- plain ------------------------------------------------------------------------------------


async def run_plain(options: DemoOptions, out: IO[str] | None = None) -> int:
    """The console's ``--plain`` line stream over the demo, with the timeline's notes."""
    from cotal_tui.console.model import TICK_MS, ConsoleModel, ModelOptions
    from cotal_tui.console.plain import PlainStream
    from cotal_tui.demo.console import DemoSource

    stream_out = out or sys.stdout

    def write(lines: list[str]) -> None:
        if lines:
            stream_out.write("\n".join(lines) + "\n")
            stream_out.flush()

    run = DemoRun(options)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    _install_stop(loop, stop.set, run)
    source = model = None
    try:
        await run.start_space(on_note=lambda n: write([note_line(n)]))
        assert run.sim is not None
        source = DemoSource(run.sim)
        model = ConsoleModel(source, options=ModelOptions(demo=True))
        plain = PlainStream()
        await run.sim.start()
        await source.start()
        model.start()
        deadline = None if options.duration is None else loop.time() + options.duration
        while not stop.is_set():
            write(plain.lines(model.tick()))
            if deadline is not None and loop.time() >= deadline:
                break
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(TICK_MS / 1000):
                    await stop.wait()
    except BrokenPipeError:
        pass
    finally:
        if model is not None:
            await bounded(model.stop(), 5)
        if source is not None:
            await bounded(source.stop(), 5)
        await run.stop_sim()
        run.stop_space()
        _remove_stop(loop)
    return 0


# -- TUI --------------------------------------------------------------------------------------


def run_tui(options: DemoOptions) -> int:
    """The Textual console with the DEMO badge, in one event loop with the simulation."""
    from textual.binding import Binding

    from cotal_tui.console.commands import Dispatcher
    from cotal_tui.console.model import ConsoleModel, ModelOptions
    from cotal_tui.demo.console import DemoSource
    from cotal_tui.tui.app import ConsoleApp

    class DemoConsoleApp(ConsoleApp):
        TITLE = "cotal-tui demo"
        BINDINGS = [Binding("ctrl+c", "quit", "Quit", show=False, priority=True)]

    run = DemoRun(options)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    app: DemoConsoleApp | None = None
    try:
        notes: list[DemoNote] = []

        def on_note(n: DemoNote) -> None:
            notes.append(n)
            if app is not None and n.kind != "seed":
                outcome = "invalid" if n.kind == "error" else "info"
                app.set_notice(f"DEMO · {n.text}", outcome)

        loop.run_until_complete(run.start_space(on_note=on_note))
        sim = run.sim
        assert sim is not None and run.space is not None
        source = DemoSource(sim)
        model = ConsoleModel(source, options=ModelOptions(demo=True))

        async def on_start() -> None:
            await sim.start()
            await source.start()
            if options.duration is not None and app is not None:
                app.set_timer(options.duration, app.exit)

        async def on_stop() -> None:
            await bounded(source.stop(), 5)
            await run.stop_sim()

        app = DemoConsoleApp(
            model,
            Dispatcher(source),
            theme=options.theme,
            on_start=on_start,
            on_stop=on_stop,
            notice=(
                f"DEMO · seed {sim.seed} · {len(sim.specs)} simulated agents on {run.space.url} "
                "(throwaway space) · ? for keys, : for commands, q quits and cleans up"
            ),
        )
        _install_stop(loop, app.exit, run)
        loop.run_until_complete(app.run_async())
        return app.return_code or 0
    finally:
        with contextlib.suppress(BaseException):
            loop.run_until_complete(run.stop_sim())
        run.stop_space()
        _remove_stop(loop)
        with contextlib.suppress(Exception):
            loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
