"""Where the daemon's loops spend their wall-clock time (a measuring aid; off by default).

``COTAL_DELIVERY_WAIT_STATS=<file>`` turns it on: every loop adds the seconds it spent in each
phase of its turn (waiting for room, waiting for messages from the pump, routing/gating, the
registry reads inside that, waiting for a pipeline slot) and every batch completion adds the
time it waited for its PubAcks. While anything changed, the cumulative figures are appended to
the file as one JSON line every ``DUMP_S`` seconds, with the process's CPU seconds beside the
monotonic clock, so ``bench/wait_stats.py`` can split them into drains and say where each went.

Off (the variable unset), :data:`STATS` is ``None`` and every call site skips its clock reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from pathlib import Path

DUMP_S = 0.1


class WaitStats:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.seconds: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None
        self._dumped: tuple[float, ...] = ()

    def add(self, name: str, seconds: float, n: int = 1) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds
        self.counts[name] = self.counts.get(name, 0) + n

    def start(self) -> None:
        """Start the dumper on the running loop (once per process)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._dump_loop())

    async def _dump_loop(self) -> None:
        with self.path.open("a") as out:
            while True:
                await asyncio.sleep(DUMP_S)
                now = tuple(self.seconds.values()) + tuple(self.counts.values())
                if now == self._dumped:
                    continue
                self._dumped = now
                line = {
                    "pid": os.getpid(),
                    "t": time.monotonic(),
                    "cpu": time.process_time(),
                    "s": self.seconds,
                    "n": self.counts,
                }
                with contextlib.suppress(Exception):
                    out.write(json.dumps(line) + "\n")
                    out.flush()


def _from_env() -> WaitStats | None:
    path = os.environ.get("COTAL_DELIVERY_WAIT_STATS")
    return WaitStats(Path(path)) if path else None


STATS: WaitStats | None = _from_env()
