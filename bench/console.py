"""Console bench: tick cost and CPU of the model + screen, against the model alone.

Load: 1,000 roster entries heartbeating every 2 s, 200 channels, 100 messages/s (defaults).
Each run is a child process on its own pseudo-terminal, so the screen run pays for the real
terminal path (Textual's Linux driver writing escape sequences that the parent drains), not a
headless shortcut. The parent prints one table: p50/p99/max tick cost and the process's CPU share
of one core for both runs, the GC passes and time inside ticks and between them (the console
collects the young generation after each painted tick: that CPU is in the process's share, not in
the tick times), the worst screen ticks split into model and panes with the CPU each spent (far
below its wall time: it lost its core), and (timed after the screen run) what the console's
one-minute full GC pass costs at this size, over how many objects, and the peak RSS; the full
pass runs on its own timer between ticks (inside the window only with --seconds over 57). The
load generator (`feed`) is a task on the console's own event loop, as the real source is: never
inside a tick, but its CPU is in the process's share. Targets:
p99 tick < 16 ms, CPU < 25 % of one core. The machine may be shared: the load average is printed
before each run; `--runs 3` repeats and prints worst / median.

    .venv/bin/python bench/console.py [--seconds 20] [--peers 1000] [--channels 200] [--rate 100]
    .venv/bin/python bench/console.py --peers 5000 --channels 500 --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import gc
import json
import os
import pty
import random
import resource
import select
import statistics
import struct
import sys
import tempfile
import termios
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cotal_tui.console.commands import Dispatcher  # noqa: E402
from cotal_tui.console.fixtures import FixtureData, FixtureSource  # noqa: E402
from cotal_tui.console.model import ConsoleModel, ModelOptions, wall_clock  # noqa: E402
from cotal_tui.console.source import (  # noqa: E402
    ChannelInput,
    ChannelsInput,
    ConnectionInput,
    Identity,
    LeaseInput,
    LeaseRead,
    MessageInput,
    PeerInput,
    PendingInput,
    PendingOp,
    ResponderCheck,
    RosterInput,
)
from cotal_tui.tui.collector import CollectorPlan  # noqa: E402

TICK_S = 0.1
COLS, ROWS = 200, 60
STATUSES = ("working", "waiting", "idle", "idle", "working")
TARGET_P99_MS = 16.0
TARGET_CPU = 25.0


class LoadSource(FixtureSource):
    """A FixtureSource whose roster heartbeats and whose lease/probe stay current."""

    def __init__(self, peers: int, channels: int) -> None:
        now = wall_clock()
        rng = random.Random(7)
        self.rng = rng
        peer_rows = [
            PeerInput(
                id=f"ag-{i:05d}",
                name=f"agent-{i:04d}",
                kind="agent" if i % 10 else "endpoint",
                status=STATUSES[i % len(STATUSES)],  # type: ignore[arg-type]
                ts=now - rng.randrange(0, 2000),
                role=("builder", "reviewer", "tester", "planner")[i % 4],
                activity=f"task {i}",
            )
            for i in range(peers)
        ]
        chans = tuple(
            ChannelInput(
                f"ch-{i:03d}",
                "durable" if i % 3 else "live",
                retained=rng.randrange(0, 5000),
                joined=i % 2 == 0,
                durable_membership=i % 2 == 0,
                generation=1,
            )
            for i in range(channels)
        )
        data = FixtureData(
            identity=Identity("bench", "ag-00000", "agent-0000", "auth", "nats://127.0.0.1:4222"),
            connection=ConnectionInput("connected", since=now),
            roster=RosterInput("current", tuple(peer_rows), observed_at=now),
            channels=ChannelsInput(chans, observed_at=now),
            lease=self._lease(now),
            pending=PendingInput(
                (
                    PendingOp(
                        "ch-001", "join", 2, now + 4000, since=now, last_error="no responders"
                    ),
                ),
                observed_at=now,
            ),
            daemon=None,
        )
        super().__init__(data)
        self.peers = peer_rows
        self.channel_names = [c.name for c in chans]
        self.phase = 0
        self.sent = 0

    @staticmethod
    def _lease(now: int) -> LeaseInput:
        return LeaseInput(
            LeaseRead("present", read_at=now, holder="dlv-bench", since=now - 1000, ready=True),
            ResponderCheck("answered", checked_at=now, latency_ms=1.0),
        )

    def heartbeat(self, slices: int) -> None:
        """Re-stamp 1/slices of the peers, as their 2 s heartbeats would."""
        now = wall_clock()
        for i in range(self.phase, len(self.peers), slices):
            self.peers[i] = replace(self.peers[i], ts=now)
        self.phase = (self.phase + 1) % slices
        self.data.roster = RosterInput("current", tuple(self.peers), observed_at=now)
        self.data.lease = self._lease(now)
        self.data.channels = replace(self.data.channels, observed_at=now)
        self.data.pending = replace(self.data.pending, observed_at=now)

    def message(self) -> MessageInput:
        self.sent += 1
        sender = self.peers[self.rng.randrange(len(self.peers))]
        return MessageInput(
            id=f"m-{self.sent}",
            ts=wall_clock(),
            sender_id=sender.id,
            sender_name=sender.name,
            mode="channel",
            target=self.channel_names[self.rng.randrange(len(self.channel_names))],
            text=f"message {self.sent} from {sender.name} with a little text in it",
        )


async def feed(model: ConsoleModel, source: LoadSource, rate: int, stop: asyncio.Event) -> None:
    """Messages at `rate`/s in 10 ms batches; heartbeats in 20 slices of 100 ms (= every 2 s)."""
    per_10ms = rate / 100
    owed = 0.0
    step = 0
    while not stop.is_set():
        owed += per_10ms
        while owed >= 1:
            model.ingest(source.message())
            owed -= 1
        if step % 10 == 0:
            source.heartbeat(20)
        step += 1
        await asyncio.sleep(0.01)


class GcWatch:
    """Time the cyclic collector spends inside measured ticks, by generation."""

    def __init__(self) -> None:
        self.started = 0.0
        self.in_tick = False
        self.tick_gc = 0.0
        self.passes = [0, 0, 0]
        self.full_passes: list[float] = []
        """Every full (oldest-generation) pass while measuring, in or out of a tick (s)."""
        self.measuring = False
        self.between_gc = 0.0
        self.between_passes = [0, 0, 0]
        """Collector time and passes outside the ticks while measuring (the console's own
        between-tick passes included): CPU the process pays, not inside a tick."""
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self.started = time.perf_counter()
            return
        spent = time.perf_counter() - self.started
        if self.measuring and info["generation"] == 2:
            self.full_passes.append(spent)
        if self.in_tick:
            self.tick_gc += spent
            if self.measuring:
                self.passes[info["generation"]] += 1
        elif self.measuring:
            self.between_gc += spent
            self.between_passes[info["generation"]] += 1

    def begin(self) -> None:
        self.in_tick, self.tick_gc = True, 0.0

    def end(self) -> float:
        self.in_tick = False
        return self.tick_gc


def cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def summarize(
    samples: list[float], cpu: float, wall: float, gcs: list[float], watch: GcWatch
) -> dict[str, Any]:
    ordered = sorted(samples)
    worst = max(range(len(samples)), key=samples.__getitem__) if samples else None

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000 if ordered else 0.0

    return {
        "ticks": len(ordered),
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "max_ms": ordered[-1] * 1000 if ordered else 0.0,
        "cpu_pct": 100 * cpu / wall if wall else 0.0,
        "gc_in_ticks_ms": sum(gcs) * 1000,
        "gc_in_worst_tick_ms": gcs[worst] * 1000 if worst is not None else 0.0,
        "gc_passes_in_ticks": watch.passes,
        "gc_between_ticks_ms": watch.between_gc * 1000,
        "gc_passes_between_ticks": watch.between_passes,
        "full_gc_ms": [t * 1000 for t in watch.full_passes],
    }


async def run_model_only(args: argparse.Namespace) -> dict[str, Any]:
    source = LoadSource(args.peers, args.channels)
    model = ConsoleModel(source, options=ModelOptions(feed_window=300))
    stop = asyncio.Event()
    feeder = asyncio.create_task(feed(model, source, args.rate, stop))
    samples: list[float] = []
    gcs: list[float] = []
    watch = GcWatch()
    collector = CollectorPlan()  # as the app runs the model: the same collector settings
    model.tick()
    collector.hold()
    warm_until = time.perf_counter() + args.warmup
    while time.perf_counter() < warm_until:  # ticking, as the app does while it warms up
        await asyncio.sleep(TICK_S)
        model.tick()
        collector.between_ticks()
    watch.measuring = True
    cpu0, wall0 = cpu_seconds(), time.perf_counter()
    deadline = wall0 + args.seconds
    next_tick = wall0
    while time.perf_counter() < deadline:
        t0 = time.perf_counter()
        watch.begin()
        model.tick()
        samples.append(time.perf_counter() - t0)
        gcs.append(watch.end())
        collector.between_ticks()  # as the app does once the tick is painted
        next_tick += TICK_S
        await asyncio.sleep(max(0.0, next_tick - time.perf_counter()))
    result = summarize(samples, cpu_seconds() - cpu0, time.perf_counter() - wall0, gcs, watch)
    collector.release()
    stop.set()
    await feeder
    result["messages"] = source.sent
    return result


def run_with_screen(args: argparse.Namespace) -> dict[str, Any]:
    from cotal_tui.tui.app import ConsoleApp

    source = LoadSource(args.peers, args.channels)
    model = ConsoleModel(source, options=ModelOptions(feed_window=300))
    samples: list[float] = []
    gcs: list[float] = []
    watch = GcWatch()
    window: dict[str, float] = {}

    class TimedApp(ConsoleApp):
        measuring = False

        def tick(self):  # type: ignore[override]
            t0, c0 = time.perf_counter(), time.thread_time()
            watch.begin()
            snap = super().tick()
            spent = watch.end()
            if self.measuring:
                samples.append(time.perf_counter() - t0)
                cpus.append(time.thread_time() - c0)
                gcs.append(spent)
                models.append(model_time[0])
            return snap

        async def on_mount(self) -> None:
            # Textual also runs ConsoleApp.on_mount (handlers run for every class in the MRO).
            self.stop = asyncio.Event()
            self.feeder = asyncio.create_task(feed(model, source, args.rate, self.stop))
            self.set_timer(args.warmup, self.begin)

        def begin(self) -> None:
            self.measuring = True
            watch.measuring = True
            window["cpu0"], window["wall0"] = cpu_seconds(), time.perf_counter()
            self.set_timer(args.seconds, self.finish)

        def finish(self) -> None:
            self.measuring = False
            watch.measuring = False
            collected0 = gc.get_stats()[2]["collected"]
            window["cpu"] = cpu_seconds() - window["cpu0"]
            window["wall"] = time.perf_counter() - window["wall0"]
            window["old_objects"] = len(gc.get_objects(2))
            t0 = time.perf_counter()
            self.collector.full_pass()  # what the one-minute timer costs at this size
            window["full_pass"] = time.perf_counter() - t0
            window["full_pass_found"] = gc.get_stats()[2]["collected"] - collected0
            self.stop.set()
            self.exit()

    models: list[float] = []
    cpus: list[float] = []
    """CPU time of this thread inside each measured tick: a tick whose wall time is far above
    it lost its core mid-way (the machine is shared)."""
    model_time = [0.0]
    model_tick = model.tick

    def timed_model_tick():
        t0 = time.perf_counter()
        snap = model_tick()
        model_time[0] = time.perf_counter() - t0
        return snap

    model.tick = timed_model_tick  # type: ignore[method-assign]
    app = TimedApp(model, Dispatcher(None), tick_interval=TICK_S)
    app.run()
    result = summarize(samples, window["cpu"], window["wall"], gcs, watch)
    worst = sorted(range(len(samples)), key=samples.__getitem__)[-3:]
    result["worst_ticks"] = [
        {
            "ms": samples[i] * 1000,
            "model_ms": models[i] * 1000,
            "gc_ms": gcs[i] * 1000,
            "cpu_ms": cpus[i] * 1000,
        }
        for i in reversed(worst)
    ]
    result["messages"] = source.sent
    result["full_pass_ms"] = window["full_pass"] * 1000
    result["full_pass_objects"] = window["old_objects"]
    result["full_pass_found"] = window["full_pass_found"]
    result["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def child(args: argparse.Namespace) -> None:
    if args.child == "model":
        result = asyncio.run(run_model_only(args))
    else:
        result = run_with_screen(args)
    Path(args.out).write_text(json.dumps(result))


def run_child(mode: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run one measurement in a child on its own pty; drain its output; return its numbers."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as tmp:
        out = tmp.name
    argv = [
        sys.executable, __file__, "--child", mode, "--out", out,
        "--seconds", str(args.seconds), "--warmup", str(args.warmup),
        "--peers", str(args.peers), "--channels", str(args.channels), "--rate", str(args.rate),
    ]  # fmt: skip
    pid, fd = pty.fork()
    if pid == 0:
        os.environ["TERM"] = "xterm-256color"
        os.environ.pop("NO_COLOR", None)
        os.execv(sys.executable, argv)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
    drained = 0
    while True:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            drained += len(chunk)
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
    else:  # pragma: no cover
        pass
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
    os.close(fd)
    try:
        result = json.loads(Path(out).read_text())
    except (OSError, ValueError) as exc:
        raise SystemExit(
            f"bench child {mode!r} produced no result ({exc}); rerun to see why"
        ) from None
    finally:
        Path(out).unlink(missing_ok=True)
    result["terminal_bytes"] = drained
    return result


def load_text() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.2f}/{five:.2f} (1/5 min, {os.cpu_count()} cores)"


def print_run(n: int, model: dict[str, Any], screen: dict[str, Any], load: str) -> bool:
    print(f"-- run {n}: {load} before it")
    print(
        f"{'run':<16} {'ticks':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'CPU % core':>11} "
        f"{'GC in ticks':>12} {'GC worst tick':>14}"
    )
    for name, r in (("model only", model), ("model + screen", screen)):
        print(
            f"{name:<16} {r['ticks']:>6} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} "
            f"{r['max_ms']:>8.2f} {r['cpu_pct']:>11.1f} {r['gc_in_ticks_ms']:>9.1f} ms "
            f"{r['gc_in_worst_tick_ms']:>11.1f} ms"
        )
    ok_p99 = screen["p99_ms"] < TARGET_P99_MS
    ok_cpu = screen["cpu_pct"] < TARGET_CPU
    print(
        f"targets (with screen): p99 tick < {TARGET_P99_MS:.0f} ms: "
        f"{'PASS' if ok_p99 else 'FAIL'} ({screen['p99_ms']:.2f}); CPU < {TARGET_CPU:.0f}% of "
        f"one core: {'PASS' if ok_cpu else 'FAIL'} ({screen['cpu_pct']:.1f}%); "
        f"messages fed: model {model['messages']}, screen {screen['messages']}; "
        f"terminal output drained: {screen['terminal_bytes'] / 1e6:.1f} MB"
    )
    for name, r in (("model only", model), ("model + screen", screen)):
        print(
            f"   {name}: GC passes (young/middle/full) inside ticks {r['gc_passes_in_ticks']}, "
            f"between ticks {r['gc_passes_between_ticks']} "
            f"({r['gc_between_ticks_ms']:.1f} ms, outside the tick times above)"
        )
    full = screen.get("full_gc_ms", [])
    print(
        f"   full GC passes while measuring: {len(full)}"
        + (f" (longest {max(full):.1f} ms)" if full else "")
        + f"; the console's one-minute full pass (its own timer, between ticks) timed after "
        f"the run: {screen['full_pass_ms']:.1f} ms over {screen['full_pass_objects']} objects "
        f"not frozen, {screen['full_pass_found']} of them garbage; peak RSS "
        f"{screen['rss_mb']:.0f} MB"
    )
    for w in screen.get("worst_ticks", []):
        print(
            f"   worst screen tick {w['ms']:.1f} ms: model {w['model_ms']:.1f} ms, "
            f"GC {w['gc_ms']:.1f} ms, panes {w['ms'] - w['model_ms']:.1f} ms (GC included); "
            f"CPU spent in it {w.get('cpu_ms', float('nan')):.1f} ms"
        )
    return ok_p99 and ok_cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--peers", type=int, default=1000)
    parser.add_argument("--channels", type=int, default=200)
    parser.add_argument("--rate", type=int, default=100, help="messages per second")
    parser.add_argument("--runs", type=int, default=1, help="repeat; prints worst and median")
    parser.add_argument("--child", choices=("model", "screen"), help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    print(
        f"console bench: {args.peers} peers heartbeating every 2 s, {args.channels} channels, "
        f"{args.rate} msgs/s, {args.seconds:.0f} s measured after {args.warmup:.0f} s warm-up, "
        f"tick {TICK_S * 1000:.0f} ms, terminal {COLS}x{ROWS} (pty), {args.runs} run(s)"
    )
    results: list[tuple[dict[str, Any], dict[str, Any]]] = []
    passed = 0
    for n in range(1, args.runs + 1):
        load = load_text()
        model = run_child("model", args)
        screen = run_child("screen", args)
        results.append((model, screen))
        passed += print_run(n, model, screen, load)
    if args.runs > 1:
        print(f"-- over {args.runs} runs (worst / median); {load_text()} after")
        for i, name in ((0, "model only"), (1, "model + screen")):
            parts = []
            keys = (("p50_ms", "ms"), ("p99_ms", "ms"), ("max_ms", "ms"), ("cpu_pct", "%"))
            for key, unit in keys:
                values = sorted(r[i][key] for r in results)
                parts.append(
                    f"{key[:-3] if unit == 'ms' else 'CPU'} {values[-1]:.1f} / "
                    f"{statistics.median(values):.1f} {unit}"
                )
            print(f"{name:<16} " + " · ".join(parts))
    print(f"targets met in {passed} of {args.runs} run(s)")


if __name__ == "__main__":
    main()
