"""Stopping the long-lived asyncio tasks an owner started: one rule, used by every owner.

On Python 3.11 one ``Task.cancel()`` is not enough to stop a task: ``asyncio.wait_for`` drops
the cancellation when its inner future completes in the same loop step (fixed in 3.12), and a
library's cleanup path may catch ``CancelledError`` (nats-py's ``Client._close`` does). A task
that swallowed the cancellation runs on, and an owner that then awaits it waits forever; that
is how a test's teardown used to hang CI. So a stop here cancels again until the task is done,
and gives up after a deadline (logging the task it abandons) instead of waiting forever.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

log = logging.getLogger(__name__)

#: After the first cancel a task gets this long to run its cleanup before it is cancelled again.
GRACE_S = 0.5
#: How often a task that swallowed the cancellation is cancelled again.
RECANCEL_EVERY_S = 0.1


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any] | None], timeout: float = 5.0) -> bool:
    """Cancel every task (again and again if one swallows it) until all are done, for at most
    ``timeout`` seconds; True when all are gone, False (and a logged warning naming them) when
    some outlived the deadline and were abandoned. What a task raises on its way out is
    swallowed (its owner is stopping it). ``None`` entries are skipped.

    Cancelling the caller propagates at once (the tasks were already cancelled)."""
    live = [t for t in tasks if t is not None]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    pending = {t for t in live if not t.done()}
    for t in pending:
        t.cancel()
    wait_s = GRACE_S
    while pending:
        left = deadline - loop.time()
        if left <= 0:
            break
        _done, pending = await asyncio.wait(pending, timeout=min(wait_s, left))
        wait_s = RECANCEL_EVERY_S
        for t in pending:
            t.cancel()
    for t in live:
        if t.done() and not t.cancelled():
            t.exception()  # retrieved: the owner is stopping it, the error is not news
    if pending:
        names = ", ".join(sorted(t.get_name() for t in pending))
        log.warning(
            "abandoned task(s) %s: still running %.1fs after being cancelled (a swallowed "
            "cancellation or an uncancellable await)",
            names,
            timeout,
        )
        return False
    return True
