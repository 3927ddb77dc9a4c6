"""Stopping the long-lived asyncio tasks an owner started: one rule, used by every owner."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from typing import Any


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any] | None]) -> None:
    """Cancel every task, then wait for each to finish; what a task raises on its way out is
    swallowed (its owner is stopping it). ``None`` entries are skipped."""
    live = [t for t in tasks if t is not None]
    for t in live:
        t.cancel()
    for t in live:
        with contextlib.suppress(BaseException):
            await t
