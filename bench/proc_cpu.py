"""Per-process CPU while a benchmark runs: which process (stage, server) uses how much of a core.

Run beside a benchmark, e.g.:
    .venv/bin/python bench/proc_cpu.py --seconds 40 > /tmp/cpu.txt &
    .venv/bin/python bench/daemon.py --capacity-only --runs 1 --stages processes

Every ``--interval`` seconds it reads user + system time of each process whose command line
contains one of ``--match`` (default: the daemon, its stage processes and nats-server) from
``/proc`` and prints one line per process that used more than 5 % of a core in that interval:
``<unix time> <pid> <share of one core> <command line>``. Linux only (``/proc``). It matches
every process on the machine, other users' runs too: read the command lines.

`bench/daemon.py` reports the daemon's whole process tree only; this says whether one stage (or
the server) is the one near a full core.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

DEFAULT_MATCH = ("cotal_tui daemon", "cotal_tui.delivery.stage_main", "nats-server")


def cpu_seconds(pid: str, tick: int) -> tuple[float, str] | None:
    """User + system seconds of ``pid`` and its command line; None when it is gone."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / tick, cmd


def sample(matches: tuple[str, ...], seconds: float, interval: float) -> None:
    tick = os.sysconf("SC_CLK_TCK")
    before: dict[str, tuple[float, float]] = {}
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        now: dict[str, tuple[float, float]] = {}
        stamp = time.monotonic()
        for pid in (p for p in os.listdir("/proc") if p.isdigit()):
            got = cpu_seconds(pid, tick)
            if got is None or not any(m in got[1] for m in matches):
                continue
            used, cmd = got
            now[pid] = (used, stamp)
            if pid in before:
                share = (used - before[pid][0]) / max(stamp - before[pid][1], 1e-6)
                if share > 0.05:
                    print(f"{time.time():.1f} {pid} {share:.2f} {cmd[:100]}", flush=True)
        before = now
        time.sleep(interval)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to sample")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between samples")
    parser.add_argument(
        "--match",
        action="append",
        help="a command-line substring to follow (repeatable; default: daemon, stages, server)",
    )
    args = parser.parse_args()
    if args.seconds <= 0 or args.interval <= 0:
        print("error: --seconds and --interval must be positive", file=sys.stderr)
        return 2
    if not Path("/proc/self/stat").exists():
        print("error: /proc is not available (Linux only)", file=sys.stderr)
        return 2
    try:
        sample(tuple(args.match or DEFAULT_MATCH), args.seconds, args.interval)
    except (BrokenPipeError, KeyboardInterrupt):
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
