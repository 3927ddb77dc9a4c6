"""A batch that throws (issue 10): unsettled messages are nak'd with a growing delay, and one
that has failed MAX_ROUTE_ATTEMPTS deliveries is dead-lettered instead of coming back forever."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from cotal_tui.delivery.consumer_loop import ConsumerLoop
from cotal_tui.protocol.dead_letter import MAX_ROUTE_ATTEMPTS


class FakeMsg:
    def __init__(self, delivered: int, acked: bool = False) -> None:
        self.metadata = SimpleNamespace(num_delivered=delivered)
        self.is_acked = acked
        self.naks: list[float | None] = []

    async def nak(self, delay: float | None = None) -> None:
        self.naks.append(delay)


def test_failed_batch_backs_off_then_dead_letters() -> None:
    dead: list[tuple[Any, str, str]] = []

    async def dead_letter(m: Any, stream: str, reason: str, detail: str, **_: Any) -> None:
        dead.append((m, reason, detail))

    loop = ConsumerLoop.__new__(ConsumerLoop)
    loop.stream = "CHAT_s"
    loop.ctx = SimpleNamespace(dead_letter=dead_letter, on_error=lambda exc: None)  # type: ignore[assignment]
    first, third, done, last = (
        FakeMsg(1),
        FakeMsg(3),
        FakeMsg(1, acked=True),
        FakeMsg(MAX_ROUTE_ATTEMPTS),
    )
    asyncio.run(loop.fail_batch([first, third, done, last], RuntimeError("boom")))  # type: ignore[list-item]
    assert first.naks == [0.5] and third.naks == [2.0] and done.naks == []
    assert last.naks == [] and [(m, r) for m, r, _ in dead] == [(last, "delivery-failed")]
    assert "boom" in dead[0][2]
