"""How the console runs Python's cyclic garbage collector while it is on screen.

At 5,000 peers a tick replaces hundreds of long-lived rows. Each replacement promotes new
objects into the collector's oldest generation, and Python starts a *full* pass once those
promotions reach a quarter of what lives there: every second or two, 30-90 ms over every live
row (and, before `freeze`, over ~10^5 start-up objects too), landing inside ticks. Measured with
`bench/console.py --peers 5000 --channels 500`: the full passes were the whole p99.

Young passes are not cheap at that size either: each tick leaves a few big containers in the
youngest generation (the source's 5,000-entry roster tuple, the snapshot's rows), and a pass
walks every reference they hold: 2.4-5.2 ms for a young pass, ~5 ms for a middle one, measured
inside model ticks that cost 2-6 ms without them. With the default young threshold (700) one
model tick in ten carried one, and with the screen about one tick in two: the p99 was made of
them.

So while the console runs: everything built at start-up (modules, the widget tree, whatever the
source holds at the first tick) is frozen out of the collector's reach; the young generation is
collected by the app right after each tick has been painted (`between_ticks`, in the idle time
before the next tick: the work that used to land inside ticks, moved out of them), the middle
one with every `MIDDLE_EVERY`th of those; the young threshold is high (`YOUNG_THRESHOLD`), so an
automatic pass starts only if that many objects pile up between two ticks; and the full pass
runs from a timer once a minute instead of whenever promotions pile up. `release` puts the
collector back as it was (the console may run inside a larger process, e.g. the test suite).
"""

from __future__ import annotations

import gc

FULL_PASS_EVERY_S = 60.0
MIDDLE_EVERY = 10
"""Every this many between-tick passes collects the middle generation too (about once a second,
as the default thresholds did). Collecting it every tick promoted the screen's short-lived
cyclic garbage (Textual's `Strip`s hold caches that refer back to them) into the oldest
generation within 100 ms: 400,000 uncollected objects after 45 s at 5,000 peers and a 550 ms
full pass, against 84,000 and 51 ms this way."""
YOUNG_THRESHOLD = 20_000
"""Objects allocated between two ticks stay well under this (~1,000 at 5,000 peers); it only
bounds the young generation when nothing ticks (then a pass walks at most this many)."""
NEVER = 1_000_000_000
"""An oldest-generation threshold no process reaches: no automatic full pass."""


_holders = 0
_saved: tuple[int, int, int] | None = None
"""The thresholds before the first hold (consoles may overlap, e.g. in the test suite)."""


class CollectorPlan:
    """One console's hold on the collector; the last release restores it."""

    def __init__(self) -> None:
        self._holding = False
        self._young_passes = 0

    def hold(self) -> None:
        """Freeze what exists now and stop automatic full passes (call `full_pass` on a timer)."""
        global _holders, _saved
        if self._holding:
            return
        self._holding = True
        _holders += 1
        if _holders == 1:
            _saved = gc.get_threshold()
        gc.freeze()  # garbage frozen with it is collected after `release` unfreezes it
        assert _saved is not None
        gc.set_threshold(max(_saved[0], YOUNG_THRESHOLD), _saved[1], NEVER)

    def between_ticks(self) -> None:
        """Collect the young generation, and every `MIDDLE_EVERY`th time the middle one too
        (call after a tick's paint)."""
        self._young_passes += 1
        if self._young_passes >= MIDDLE_EVERY:
            self._young_passes = 0
            gc.collect(1)
        else:
            gc.collect(0)

    @staticmethod
    def full_pass() -> None:
        gc.collect()

    def release(self) -> None:
        global _holders, _saved
        if not self._holding:
            return
        self._holding = False
        _holders -= 1
        if _holders == 0 and _saved is not None:
            gc.set_threshold(*_saved)
            gc.unfreeze()
            _saved = None
