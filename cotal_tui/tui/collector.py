"""How the console runs Python's cyclic garbage collector while it is on screen.

At 5,000 peers a tick replaces hundreds of long-lived rows. Each replacement promotes new
objects into the collector's oldest generation, and Python starts a *full* pass once those
promotions reach a quarter of what lives there: every second or two, 30-90 ms over every live
row (and, before `freeze`, over ~10^5 start-up objects too), landing inside ticks. Measured with
`bench/console.py --peers 5000 --channels 500`: the full passes were the whole p99.

So while the console runs: everything built at start-up (modules, the widget tree, styles) is
frozen out of the collector's reach, young collections run as usual (they catch the short-lived
cycles), and the full pass runs from a timer once a minute instead of whenever promotions pile
up. `release` puts the collector back as it was (the console may run inside a larger process,
e.g. the test suite).
"""

from __future__ import annotations

import gc

FULL_PASS_EVERY_S = 60.0
NEVER = 1_000_000_000
"""An oldest-generation threshold no process reaches: no automatic full pass."""


_holders = 0
_saved: tuple[int, int, int] | None = None
"""The thresholds before the first hold (consoles may overlap, e.g. in the test suite)."""


class CollectorPlan:
    """One console's hold on the collector; the last release restores it."""

    def __init__(self) -> None:
        self._holding = False

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
        gc.set_threshold(_saved[0], _saved[1], NEVER)

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
