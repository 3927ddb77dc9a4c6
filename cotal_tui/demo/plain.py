"""The demo's own lines in the ``--plain`` stream: what the timeline just did, marked ``[demo]``
so a reader tells the scripted from the observed (the rest is the console's `PlainStream`)."""

from __future__ import annotations

import time

from cotal_tui.demo.simulation import DemoNote


def clock(at: float | None = None) -> str:
    at = time.time() if at is None else at
    return time.strftime("%H:%M:%S", time.localtime(at)) + f".{int(at * 1000) % 1000:03d}"


def note_line(n: DemoNote) -> str:
    return f"{clock(n.at)} [demo] {n.kind}: {n.text}"
