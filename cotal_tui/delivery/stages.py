"""The delivery daemon past one core: its fan-out and its reader as two child processes.

The parent (``DeliveryDaemon`` with ``stages="processes"``) keeps what must be single: the
lease and the ``ctl.delivery`` responder. :class:`StageProcesses` starts the two stages
(``stage_main.py``), relays what inline would be calls on a shared context (``stage_wire.py``),
and keeps their figures (counters, the deliveryStats of the fan-out) for the daemon's state.

Binding order is the inline one: the fan-out reads INBOX's figures and CHAT's floor before the
reader takes anything; the reader is told ``go`` only after the fan-out is ready.

A stage that exits while the daemon serves is the daemon's crash: ``on_crash`` is told, and the
daemon stops the other stage and releases the lease (``daemon.py``). A stage never outlives the
parent (``stage_main.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import sys
from collections.abc import Callable
from typing import Any

from cotal_tui.delivery.daemon_context import Counters
from cotal_tui.delivery.members import MemberEntry
from cotal_tui.delivery.stage_wire import (
    ROLE_NAMES,
    counters_from_wire,
    decode,
    encode,
    merge_counters,
)
from cotal_tui.mesh.tasks import cancel_and_wait

STOP_TIMEOUT_S = 4.5
APPLY_TIMEOUT_S = 5.0
STAGES_ENV = "COTAL_DELIVERY_STAGES"


class StageFailed(RuntimeError):
    """A stage could not start, or exited while the daemon served."""


class StageReport(RuntimeError):
    """An error a stage reported (its text is what the stage's listener was told)."""


def default_stages() -> str:
    """``$COTAL_DELIVERY_STAGES`` if it names a mode, else ``inline``.

    Inline is the default because two processes did not measure better (README, "Benchmarks":
    bench/daemon.py, 6 interleaved runs each: the same copies/s within the noise, the same CPU
    per copy, a slower join); ``processes`` is there to be chosen and measured again."""
    raw = os.environ.get(STAGES_ENV, "")
    return raw if raw in ("inline", "processes") else "inline"


class StageProcess:
    """One child: its pipes, its reader task, its latest figures."""

    def __init__(
        self,
        role: str,
        on_message: Callable[[StageProcess, dict[str, Any]], None],
        stderr: int | None = None,
    ):
        self.role = role
        self.stderr = stderr
        self.name = ROLE_NAMES[role]
        self.on_message = on_message
        self.proc: asyncio.subprocess.Process | None = None
        self.ready: asyncio.Future[dict[str, Any]] | None = None
        self.exited: asyncio.Future[int] | None = None
        self.counters = Counters()
        self.stats: dict[str, Any] = {}
        self.stopped = False
        self._task: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    async def spawn(self, config: dict[str, Any], peer_fd: int | None = None) -> None:
        loop = asyncio.get_running_loop()
        self.ready, self.exited = loop.create_future(), loop.create_future()
        self.ready.add_done_callback(lambda f: f.cancelled() or f.exception())  # retrieved
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "cotal_tui.delivery.stage_main",
            self.role,  # for `ps` only: the stage reads its config from stdin
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=self.stderr,
            limit=1 << 24,
            start_new_session=True,  # no terminal signals: the parent stops it (stage_main.py)
            pass_fds=(peer_fd,) if peer_fd is not None else (),
        )
        self.send({"role": self.role, **config, "peer_fd": peer_fd})
        self._task = loop.create_task(self._read(), name=f"delivery-stage-{self.role}")

    def send(self, msg: dict[str, Any]) -> None:
        proc = self.proc
        if proc is None or proc.stdin is None or proc.stdin.is_closing():
            return
        with contextlib.suppress(Exception):
            proc.stdin.write(encode(msg))

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        out = self.proc.stdout
        try:
            while True:
                line = await out.readline()
                if not line:
                    break
                msg = decode(line)
                if msg is None:
                    continue
                t = msg.get("t")
                if t == "status":
                    self.counters = counters_from_wire(msg.get("counters"))
                    if isinstance(msg.get("stats"), dict):
                        self.stats = msg["stats"]
                elif t == "ready" and self.ready is not None and not self.ready.done():
                    self.ready.set_result(msg)
                elif t == "failed" and self.ready is not None and not self.ready.done():
                    self.ready.set_exception(
                        StageFailed(f"the {self.name} stage could not start: {msg.get('error')}")
                    )
                elif t == "stopped":
                    self.stopped = True
                else:
                    self.on_message(self, msg)
        finally:
            code = await self.proc.wait()
            if self.ready is not None and not self.ready.done():
                self.ready.set_exception(
                    StageFailed(f"the {self.name} stage (pid {self.pid}) exited with code {code}")
                )
            if self.exited is not None and not self.exited.done():
                self.exited.set_result(code)

    async def stop(self, timeout: float) -> None:
        """Ask for a clean stop; kill it if it has not exited within ``timeout``."""
        proc = self.proc
        if proc is None:
            return
        self.send({"t": "stop"})
        assert self.exited is not None
        if not await _within(self.exited, timeout):
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await _within(self.exited, 5.0)
        if self.proc is not None and self.proc.stdin is not None:
            with contextlib.suppress(Exception):
                self.proc.stdin.close()
        await cancel_and_wait([self._task])

    def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()


async def _within(fut: asyncio.Future[Any], timeout: float) -> bool:
    """Wait for ``fut`` at most ``timeout`` seconds (never cancelling it); True if done."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            await asyncio.shield(fut)
    return fut.done()


class StageProcesses:
    def __init__(
        self,
        *,
        servers: str,
        creds: str | None,
        space: str,
        daemon_id: str,
        batch: int,
        bind_timeout_s: float,
        on_error: Callable[[Exception], None],
        on_crash: Callable[[str], None],
        stderr: int | None = None,
    ) -> None:
        self.config = {
            "servers": servers,
            "creds": creds,
            "space": space,
            "daemon_id": daemon_id,
            "batch": batch,
            "bind_timeout_s": bind_timeout_s,
            "parent_pid": os.getpid(),
        }
        self.on_error = on_error
        self.on_crash = on_crash
        self.fanout = StageProcess("fanout", self._on_message, stderr)
        self.reader = StageProcess("reader", self._on_message, stderr)
        self._applied: dict[int, asyncio.Future[None]] = {}
        self._ids = itertools.count(1)
        self._watch: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def stages(self) -> tuple[StageProcess, StageProcess]:
        return self.fanout, self.reader

    @property
    def pids(self) -> dict[str, int | None]:
        return {s.role: s.pid for s in self.stages}

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self, timeout: float) -> None:
        """Both stages bound and taking messages; raises :class:`StageFailed` otherwise."""
        self._stopping = False
        # the reader's INBOX decisions go straight to the fan-out (no hop through this process)
        peer_in, peer_out = os.pipe()
        try:
            await asyncio.gather(
                self.fanout.spawn(self.config, peer_in), self.reader.spawn(self.config, peer_out)
            )
        finally:
            os.close(peer_in)
            os.close(peer_out)
        assert self.fanout.ready is not None and self.reader.ready is not None
        try:
            async with asyncio.timeout(timeout):  # not wait_for: mesh/tasks.py
                ready = await self.fanout.ready
                self.reader.send({"t": "go", "window": ready.get("window")})
                await self.reader.ready
        except TimeoutError:
            raise StageFailed(f"the delivery stages did not bind within {timeout:.0f}s") from None
        self._watch = asyncio.get_running_loop().create_task(
            self._watch_exits(), name="delivery-stage-watch"
        )

    async def stop(self) -> None:
        """Stop both (clean stop, then kill after a bound); never leaves one running."""
        self._stopping = True
        watch, self._watch = self._watch, None
        await cancel_and_wait([watch])
        await asyncio.gather(*(s.stop(STOP_TIMEOUT_S) for s in self.stages), return_exceptions=True)
        for s in self.stages:
            s.kill()
        for fut in self._applied.values():
            if not fut.done():
                fut.cancel()
        self._applied.clear()

    async def _watch_exits(self) -> None:
        assert self.fanout.exited is not None and self.reader.exited is not None
        by_future = {self.fanout.exited: self.fanout, self.reader.exited: self.reader}
        done, _ = await asyncio.wait(by_future, return_when=asyncio.FIRST_COMPLETED)
        if self._stopping:
            return
        stage = by_future[next(iter(done))]
        code = next(iter(done)).result()
        self.on_crash(
            f"the {stage.name} stage (pid {stage.pid}) exited with code {code} — stopping the "
            "whole daemon so no half a pipeline runs"
        )

    # -- relays ------------------------------------------------------------------------------

    def _on_message(self, stage: StageProcess, msg: dict[str, Any]) -> None:
        t = msg.get("t")
        if t == "error":
            self.on_error(StageReport(str(msg.get("text"))))
        elif t in ("inbox", "routed") and stage is self.reader:
            self.fanout.send(msg)
        elif t == "applied":
            fut = self._applied.pop(int(msg.get("id") or 0), None)
            if fut is not None and not fut.done():
                fut.set_result(None)

    async def member_written(self, entry: MemberEntry | None) -> None:
        """Into the fan-out's routing index before the caller goes on (a join's fence)."""
        if entry is None:
            return
        ident = next(self._ids)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._applied[ident] = fut
        self.fanout.send(
            {
                "t": "member",
                "id": ident,
                "value": entry.record.to_json().decode(),
                "revision": entry.revision,
            }
        )
        try:
            async with asyncio.timeout(APPLY_TIMEOUT_S):
                await fut
        except TimeoutError:
            self._applied.pop(ident, None)
            raise StageFailed(
                f"the fan-out stage did not take a membership record within {APPLY_TIMEOUT_S:.0f}s"
            ) from None

    def inbox(self, written: int = 0, settled: int = 0, decided: int = 0) -> None:
        """INBOX entries the parent's catch-up wrote: the fan-out's backpressure counts them."""
        self.fanout.send({"t": "inbox", "written": written, "settled": settled, "decided": decided})

    # -- figures -----------------------------------------------------------------------------

    def counters(self, own: Counters) -> Counters:
        return merge_counters([own, self.fanout.counters, self.reader.counters])

    @property
    def delivery_stats(self) -> dict[str, Any]:
        stats = {
            "evictedBeforeRouting": {},
            "since": None,
            "predecessorWindow": None,
            "belowFloorAtBind": None,
            "belowFloorAtBindUnknown": "the fan-out stage has not reported it yet",
        }
        return {**stats, **self.fanout.stats}


class ForwardedInbox:
    """The parent's stand-in for ``DaemonContext.inbox``: its counts go to the fan-out stage."""

    def __init__(self, stages: StageProcesses) -> None:
        self.stages = stages
        self.estimate = 0

    def written(self, n: int) -> None:
        if n:
            self.stages.inbox(written=n)

    def settled(self, n: int) -> None:
        if n:
            self.stages.inbox(settled=n)

    def decided(self, n: int) -> None:
        if n:
            self.stages.inbox(decided=n)

    async def refresh(self) -> bool:
        return True

    async def room(self, batch: int) -> None:
        return None
