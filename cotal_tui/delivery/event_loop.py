"""The event loop the daemon's processes run on: asyncio's, or uvloop's when asked for.

``COTAL_DELIVERY_UVLOOP=1`` runs `cotal-tui daemon` and its stage processes on uvloop if it is
installed (it is not a dependency: measured in bench/daemon.py, see the README). Anything else
is asyncio's own loop.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
UVLOOP_ENV = "COTAL_DELIVERY_UVLOOP"


def uvloop_wanted() -> bool:
    return os.environ.get(UVLOOP_ENV, "") == "1"


def run(coro: Coroutine[Any, Any, T]) -> T:
    if uvloop_wanted():
        try:
            import uvloop  # type: ignore[import-not-found]
        except ImportError:
            pass
        else:
            return uvloop.run(coro)  # type: ignore[no-any-return]
    return asyncio.run(coro)
