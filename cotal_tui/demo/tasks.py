"""Cancel tasks and be sure they are gone.

On Python 3.11 a cancellation can be swallowed (``asyncio.wait_for`` racing a completing inner
future, or a ``suppress(BaseException)`` in a cleanup path), and a task that swallowed it runs on:
the demo's timeline would then keep going while it is being stopped. So a stop here cancels
again until the task is done, within a deadline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any]], timeout: float = 5.0) -> bool:
    """Cancel (repeatedly) until every task is done; False if some outlived ``timeout``."""
    pending = {t for t in tasks if not t.done()}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while pending:
        for t in pending:
            t.cancel()
        left = deadline - loop.time()
        if left <= 0:
            return False
        _, pending = await asyncio.wait(pending, timeout=min(0.2, left))
    return True


async def bounded(coro: Any, timeout: float) -> bool:
    """Run ``coro`` for at most ``timeout`` seconds, then cancel it for good; never raises.

    True when it finished in time (even with an error, which is dropped: a stop step that fails
    must not stop the next one)."""
    task = asyncio.get_running_loop().create_task(coro)
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        await cancel_and_wait([task], 2.0)
        return False
    if not task.cancelled():
        task.exception()  # retrieved, so it is not reported as never retrieved
    return True
