"""cancel_and_wait stops tasks that swallow a cancellation (Python 3.11 wait_for does) and never
waits forever on one that cannot be stopped."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from cotal_tui.mesh.tasks import cancel_and_wait


async def _swallows_first_cancel(swallowed: asyncio.Event) -> None:
    """Like a loop around 3.11's ``wait_for`` that lost the cancel: it runs on after one."""
    while True:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            if swallowed.is_set():
                raise
            swallowed.set()


async def _swallows_until(release: asyncio.Event) -> None:
    while True:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            if release.is_set():
                raise


async def test_a_task_that_swallowed_the_first_cancel_is_cancelled_again() -> None:
    swallowed = asyncio.Event()
    task = asyncio.get_running_loop().create_task(_swallows_first_cancel(swallowed))
    await asyncio.sleep(0)
    async with asyncio.timeout(10):  # a single cancel-then-await would hang here
        assert await cancel_and_wait([task, None]) is True
    assert swallowed.is_set() and task.cancelled()


async def test_an_unstoppable_task_is_abandoned_after_the_deadline(
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = asyncio.Event()
    task = asyncio.get_running_loop().create_task(_swallows_until(release), name="stubborn")
    await asyncio.sleep(0)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="cotal_tui.mesh.tasks"):
        async with asyncio.timeout(10):
            assert await cancel_and_wait([task], timeout=0.8) is False
    assert 0.7 <= time.monotonic() - started < 5
    assert "stubborn" in caplog.text
    assert not task.done()
    release.set()  # the test's own cleanup: the task stops at the next cancel
    assert await cancel_and_wait([task]) is True


async def test_errors_of_finished_tasks_are_swallowed() -> None:
    async def boom() -> None:
        raise RuntimeError("on its way out")

    task = asyncio.get_running_loop().create_task(boom())
    await asyncio.sleep(0)
    assert await cancel_and_wait([task]) is True
