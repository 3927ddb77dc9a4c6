"""`ConsoleSession.stop` never hangs on a start step that swallows its cancel."""

from __future__ import annotations

import asyncio
import time

from cotal_tui.console import session as session_mod
from cotal_tui.console.session import ConsoleSession, SessionOptions
from cotal_tui.server.process import free_port


async def test_stop_goes_on_when_the_start_task_ignores_its_cancel(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(session_mod, "STARTER_STOP_S", 0.5)
    url = f"nats://127.0.0.1:{free_port()}"  # nothing listens: the start never connects
    session = ConsoleSession(
        SessionOptions(server=url, space="s", state_dir=str(tmp_path), connect_timeout=0.5)
    )
    release = asyncio.Event()
    cancels = 0

    async def stubborn() -> None:  # a step that swallows the cancel and goes on waiting
        nonlocal cancels
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                cancels += 1

    session._starter = asyncio.get_running_loop().create_task(stubborn())
    await asyncio.sleep(0)  # the task runs up to its first wait
    began = time.monotonic()
    try:
        await asyncio.wait_for(session.stop(), 20)
    finally:
        release.set()
    assert cancels == 1  # stop cancelled it once, then went on without it
    assert time.monotonic() - began < 15
    assert any("did not stop within 0.5s" in note for note in session.notes), session.notes
    await asyncio.wait_for(session._starter, 5)
