"""Where the daemon's loops waited during each drain, from a ``COTAL_DELIVERY_WAIT_STATS`` file.

```
COTAL_DELIVERY_WAIT_STATS=/tmp/ws.jsonl .venv/bin/python bench/daemon.py --capacity-only --runs 1
.venv/bin/python bench/wait_stats.py /tmp/ws.jsonl [--min-msgs 5000]
```

The daemon appends its cumulative per-phase seconds (``cotal_tui/delivery/wait_stats.py``). With
``bench/daemon.py``'s phase markers in the file, each (k) phase is one drain (from the resume to
the last copy, to within the dump interval); without, a drain is a stretch in which the loops
kept taking messages (no gap over ``--gap`` seconds). For each drain of at least
``--min-msgs`` messages taken it prints the wall time, the process's CPU share, and each
phase's seconds and share of the wall time. A loop's phases add up to its wall time
(before_take + take + dispatch + slot + idle); the fan-out's ``before_take`` is its wait for
INBOX room, and its registry reads (``fanout.reads``) are part of its dispatch. Completions
overlap, so their figures (``reader.reads``, ``*.pubacks``) are summed over batches in flight
together: divide by ``n`` for the mean wait of one batch.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

TAKEN = ("reader.msgs", "fanout.msgs")


def taken(line: dict[str, Any]) -> int:
    return sum(line["n"].get(k, 0) for k in TAKEN)


def drains(lines: list[dict[str, Any]], gap: float) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(line before the drain, last line of it) for every stretch of taking messages."""
    out: list[tuple[dict[str, Any], dict[str, Any]]] = []
    start: dict[str, Any] | None = None
    last: dict[str, Any] | None = None
    prev: dict[str, Any] | None = None
    for line in lines:
        if prev is not None and taken(line) > taken(prev):
            if start is not None and last is not None and line["t"] - last["t"] > gap:
                out.append((start, last))
                start = None
            if start is None:
                start = prev
            last = line
        prev = line
    if start is not None and last is not None:
        out.append((start, last))
    return out


def at(lines: list[dict[str, Any]], t: float) -> dict[str, Any] | None:
    """The last dump at or before ``t`` (the figures as they stood then, to within DUMP_S)."""
    before = [line for line in lines if line["t"] <= t]
    return before[-1] if before else None


def report(a: dict[str, Any], b: dict[str, Any]) -> None:
    wall = b["t"] - a["t"]
    cpu = b["cpu"] - a["cpu"]
    msgs = {k: b["n"].get(k, 0) - a["n"].get(k, 0) for k in TAKEN}
    print(
        f"drain: {wall:.2f} s wall, process CPU {cpu:.2f} s ({100 * cpu / max(wall, 1e-9):.0f} % "
        f"of a core); taken: reader {msgs['reader.msgs']}, fan-out {msgs['fanout.msgs']}"
    )
    for name in sorted(b["s"]):
        secs = b["s"][name] - a["s"].get(name, 0.0)
        n = b["n"].get(name, 0) - a["n"].get(name, 0)
        if not secs and not n:
            continue
        if name.endswith((".msgs", ".busy_slots_at_take")):
            print(f"  {name:28s} n={n}")
            continue
        print(
            f"  {name:28s} {secs:7.3f} s  {100 * secs / max(wall, 1e-9):5.1f} % of wall  n={n}"
            f"  mean {1000 * secs / max(n, 1):.2f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--gap", type=float, default=0.5)
    parser.add_argument("--min-msgs", type=int, default=5000)
    args = parser.parse_args()
    by_pid: dict[int, list[dict[str, Any]]] = {}
    marks: list[dict[str, Any]] = []
    for raw in args.file.read_text().splitlines():
        line = json.loads(raw)
        if "mark" in line:
            marks.append(line)
        else:
            by_pid.setdefault(line["pid"], []).append(line)
    if marks:  # bench/daemon.py's (k) phases: from its resume to its last copy
        for start, end in zip(marks[::2], marks[1::2], strict=False):
            for pid, lines in by_pid.items():
                a, b = at(lines, start["t"]), at(lines, end["t"])
                if a is not None and b is not None and taken(b) > taken(a):
                    print(f"pid {pid}: {start['mark'].removeprefix('start ')}")
                    report(a, b)
        return
    for pid, lines in by_pid.items():
        for a, b in drains(lines, args.gap):
            if taken(b) - taken(a) >= args.min_msgs:
                print(f"pid {pid}")
                report(a, b)


if __name__ == "__main__":
    main()
