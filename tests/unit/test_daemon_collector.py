"""The daemon processes' collector plan (delivery/collector.py), run in a fresh interpreter so
the test process's own collector is never frozen or retuned."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import gc, json, weakref
from cotal_tui.delivery.collector import YOUNG_THRESHOLD, settle_after_start
before = gc.get_threshold()
first = settle_after_start()
frozen = gc.get_freeze_count()
second = settle_after_start()
class Node: pass
a, b = Node(), Node()
a.other, b.other = b, a          # a cycle made after the freeze
ref = weakref.ref(a)
del a, b
gc.collect()
print(json.dumps({"before": before, "after": gc.get_threshold(), "first": first,
                  "second": second, "frozen": frozen, "frozen_after": gc.get_freeze_count(),
                  "cycle_collected": ref() is None, "young": YOUNG_THRESHOLD}))
"""


def _probe() -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=True
    )
    return json.loads(out.stdout)


def test_settling_freezes_start_up_objects_once_and_raises_only_the_young_threshold() -> None:
    seen = _probe()
    assert seen["first"] is True and seen["second"] is False  # once per process
    assert seen["frozen"] > 1000  # the modules and objects alive at start-up
    assert seen["frozen_after"] == seen["frozen"]  # the second call froze nothing more
    before, after = seen["before"], seen["after"]
    assert after == [max(seen["young"], before[0]), before[1], before[2]]
    assert seen["cycle_collected"] is True  # garbage made later is still collected
