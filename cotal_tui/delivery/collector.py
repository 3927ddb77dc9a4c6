"""How a daemon process runs Python's cyclic garbage collector once it serves.

Measured in `bench/daemon.py`'s capacity phases (~155,000 copies, ~8 s of daemon CPU): with the
default thresholds the collector took 0.59-0.72 s of it, over half in ten full passes of 30-40
ms, each walking the ~51,000 objects the process had built since it started (modules, pydantic
models, the registries), almost none of them ever garbage; and ~1,200 young passes, one per 700
allocations. So once the daemon has bound and its start-up garbage is collected, what exists is
frozen out of the collector's reach (`gc.freeze`: a full pass then walks ~6,000 objects), and the
young threshold is raised so a pass walks a few batches' worth of short-lived objects at a time:
0.06 s in the same phases. Cyclic garbage made later is still collected by automatic passes.

Once per process: a process that starts its daemon again (``up`` after a lost lease) does not
freeze again, so nothing that was alive at a later start is pinned for good.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000
"""A young pass per this many allocations (the default is 700)."""

_settled = False


def settle_after_start() -> bool:
    """Collect, freeze what lives, raise the young threshold; the first call only (True then).

    For processes that are daemons (``cotal-tui daemon``, its stage processes, ``up``); the
    console runs its own plan (``tui/collector.py``) and never calls this.
    """
    global _settled
    if _settled:
        return False
    _settled = True
    gc.collect()
    gc.freeze()
    young, middle, old = gc.get_threshold()
    gc.set_threshold(max(YOUNG_THRESHOLD, young), middle, old)
    return True
