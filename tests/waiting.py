"""Wait on conditions, never on fixed sleeps; a timeout says what never happened."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


async def wait_for(
    predicate: Callable[[], Any | Awaitable[Any]],
    *,
    what: str,
    timeout: float = 10.0,
    interval: float = 0.02,
) -> Any:
    """Poll `predicate` (sync or async) until it returns a truthy value; return that value.

    Exceptions raised by the predicate count as "not yet" and are reported on timeout.
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    last_exc: BaseException | None = None
    while True:
        try:
            value = predicate()
            if inspect.isawaitable(value):
                value = await value
            last, last_exc = value, None
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - reported below
            last_exc = exc
        if time.monotonic() >= deadline:
            detail = f"last error: {last_exc!r}" if last_exc else f"last value: {last!r}"
            raise AssertionError(f"timed out after {timeout}s waiting for: {what} ({detail})")
        await asyncio.sleep(interval)


async def wait_event(event: asyncio.Event, *, what: str, timeout: float = 10.0) -> None:
    try:
        await asyncio.wait_for(event.wait(), timeout)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout}s waiting for: {what}") from None


def wait_for_sync(
    predicate: Callable[[], Any],
    *,
    what: str,
    timeout: float = 10.0,
    interval: float = 0.02,
    describe: Callable[[], str] | None = None,
) -> Any:
    """The blocking twin of `wait_for`, for subprocess and terminal tests.

    `describe` (optional) adds what to show on timeout, e.g. the screen or the log.
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() >= deadline:
            detail = describe() if describe else f"last value: {last!r}"
            raise AssertionError(f"timed out after {timeout}s waiting for: {what} ({detail})")
        time.sleep(interval)
