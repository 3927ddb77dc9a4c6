"""One stage of the delivery daemon in its own process: the fan-out or the trusted reader.

Started by the daemon (``stages.py``) as ``python -m cotal_tui.delivery.stage_main``; never by
hand. It opens its own connection as the daemon's identity, binds what its loop needs (the
fan-out: the members watch feeding its routing index and the presence roster for @mentions;
the reader: the members and ACL caches), runs the loop, and talks to its parent over the pipes
(``stage_wire.py``). It holds no lease: the parent does, and stops it with the lease.

It never outlives its parent: the end of the parent's pipe makes it exit at once, and the
kernel kills it when the parent dies (``PR_SET_PDEATHSIG``), even with its loop busy.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from cotal_tui.delivery.acl import acl_entry
from cotal_tui.delivery.chat_gaps import eviction_stats
from cotal_tui.delivery.collector import settle_after_start
from cotal_tui.delivery.daemon_context import (
    DaemonContext,
    rebind_channels_cache,
    start_channels_cache,
    stop_channels_cache,
)
from cotal_tui.delivery.fanout import FanoutWriter
from cotal_tui.delivery.fresh_cache import FreshKvCache
from cotal_tui.delivery.members import MemberEntry, decode_member, member_entry
from cotal_tui.delivery.reader import TrustedReader
from cotal_tui.delivery.stage_wire import (
    EXIT_PARENT_GONE,
    counters_wire,
    decode,
    encode,
)
from cotal_tui.mesh.connection import Connection
from cotal_tui.mesh.presence import RosterWatch

STATUS_EVERY_S = 0.05  # figures lag the stage by at most this (plus the pipe)
PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int) -> None:
    """Ask the kernel for SIGKILL when the parent dies; exit now if it already has."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:
        os._exit(EXIT_PARENT_GONE)


class Stage:
    def __init__(self, cfg: dict[str, Any], out: Callable[[dict[str, Any]], None]) -> None:
        self.cfg = cfg
        self.role: str = cfg["role"]
        self.out = out
        self.conn = Connection(
            cfg["servers"], "delivery", cfg["daemon_id"], creds=cfg.get("creds") or None
        )
        self.ctx = DaemonContext(self.conn, cfg["space"], cfg["daemon_id"], on_error=self.error)
        self.batch = int(cfg.get("batch") or 256)
        self.bind_timeout_s = float(cfg.get("bind_timeout_s") or 10.0)
        self.fanout: FanoutWriter | None = None
        self.reader: TrustedReader | None = None
        self.roster: RosterWatch | None = None
        self.caches: list[FreshKvCache[Any]] = []
        self.go: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.stopping = asyncio.Event()
        self.bound = False
        self.peer: Callable[[dict[str, Any]], None] = out  # the reader's line to the fan-out
        self._last_status: Any = None
        self._inbox_decided = 0

    def error(self, exc: Exception) -> None:
        self.out({"t": "error", "text": str(exc) or type(exc).__name__})
        # the figures behind it (an eviction's count) follow at once, not at the next tick
        asyncio.get_running_loop().call_soon(self.status)

    # -- commands from the parent ------------------------------------------------------------

    def command(self, msg: dict[str, Any]) -> None:
        t = msg.get("t")
        if t == "member":
            record = decode_member(str(msg.get("value", "")).encode())
            if record is not None:
                self.ctx.index.apply_entry(MemberEntry(record, int(msg.get("revision") or 0)))
            self.out({"t": "applied", "id": msg.get("id")})
        elif t == "inbox":
            inbox = self.ctx.inbox
            inbox.written(int(msg.get("written") or 0))
            inbox.settled(int(msg.get("settled") or 0))
            decided = int(msg.get("decided") or 0)
            if decided:
                inbox.decided(decided)
        elif t == "routed" and self.fanout is not None:
            for seq in msg.get("seqs") or []:
                self.fanout.evictions.routed(int(seq))
        elif t == "go" and not self.go.done():
            self.go.set_result(msg.get("window"))
        elif t == "stop":
            if not self.bound:  # nothing taken yet (e.g. the other stage failed to start)
                os._exit(0)
            self.stopping.set()

    # -- binding -----------------------------------------------------------------------------

    async def bind(self) -> None:
        await self.conn.connect()
        ctx = self.ctx
        if self.role == "fanout":
            members = FreshKvCache(ctx.members, member_entry, listener=ctx.index.on_kv)
            self.caches = [members]
            await self._load(members, "members index")
            await start_channels_cache(ctx, self.bind_timeout_s)
            await ctx.acker.start()
            self.roster = RosterWatch(self.conn, ctx.space, on_error=self.error)
            await self.roster.start()
            ctx.mention_names = self._mention_names
            self.fanout = FanoutWriter(ctx, batch=self.batch)
            await self.fanout.start()
            report = self.fanout.evictions.window_report()
            window = [report["ackFloor"], report["delivered"]] if report else None
            self.status(force=True)  # deliveryStats answers from the first request on
            self.out({"t": "ready", "window": window})
        else:
            members = FreshKvCache(ctx.members, member_entry)
            acls = FreshKvCache(ctx.acls, acl_entry)
            self.caches = [members, acls]
            ctx.members_cache, ctx.acl_cache = members, acls
            await self._load(members, "members index")
            await self._load(acls, "ACL cache")
            await ctx.acker.start()
            self.reader = TrustedReader(ctx, batch=self.batch)
            window = await self.go
            self._forward_to_fanout(window)
            await self.reader.start()
            self.out({"t": "ready"})
        self.conn.register_rearm(f"delivery {self.role} stage", self._rearm)
        self.bound = True

    async def _load(self, cache: FreshKvCache[Any], name: str) -> None:
        try:
            await cache.start(self.bind_timeout_s)
        except TimeoutError:
            raise RuntimeError(
                f"the {name} did not load within {self.bind_timeout_s:.0f}s"
            ) from None

    def _forward_to_fanout(self, window: Any) -> None:
        """The reader's INBOX decisions and routed CHAT sequences go to the fan-out (via the
        parent): its INBOX backpressure and its eviction count use them (inline, they are calls
        on the shared context)."""
        ctx = self.ctx
        lo, hi = (int(window[0]), int(window[1])) if isinstance(window, list) else (0, 0)
        local_decided = ctx.entries_decided

        def decided(n: int) -> None:
            local_decided(n)
            if n:
                self._inbox_decided += n
                self.peer({"t": "inbox", "decided": n})

        def routed(seq: int) -> None:
            if lo < seq <= hi:
                self.peer({"t": "routed", "seqs": [seq]})

        ctx.entries_decided = decided  # type: ignore[method-assign]
        ctx.chat_seq_routed = routed

    def _mention_names(self) -> dict[str, list[str]]:
        names: dict[str, list[str]] = {}
        if self.roster is not None:
            for p in self.roster.entries():
                names.setdefault(p.card.name.lower(), []).append(p.card.id)
        return names

    async def _rearm(self) -> None:
        loop = self.fanout or self.reader
        if loop is not None:
            await loop.rearm()
        for cache in self.caches:
            await cache.rebind()
        await rebind_channels_cache(self.ctx)

    # -- status ------------------------------------------------------------------------------

    def status(self, *, force: bool = False) -> None:
        snapshot: dict[str, Any] = {"counters": counters_wire(replace(self.ctx.counters))}
        if self.fanout is not None:
            snapshot["stats"] = eviction_stats(self.fanout.evictions)
        if force or snapshot != self._last_status:
            self._last_status = snapshot
            self.out({"t": "status", **snapshot})

    async def status_loop(self) -> None:
        while True:
            await asyncio.sleep(STATUS_EVERY_S)
            self.status()

    async def stop(self) -> None:
        loop = self.fanout or self.reader
        if loop is not None:
            with contextlib.suppress(Exception):
                await loop.stop()
        if self.roster is not None:
            with contextlib.suppress(Exception):
                await self.roster.stop()
        for cache in self.caches:
            with contextlib.suppress(Exception):
                await cache.stop()
        with contextlib.suppress(Exception):
            await stop_channels_cache(self.ctx)
        with contextlib.suppress(Exception):
            await self.ctx.acker.stop()
        self.status(force=True)


async def _main() -> int:
    loop = asyncio.get_running_loop()
    # stdout is ours alone: anything printed by a library goes to stderr instead
    proto_fd = os.dup(1)
    os.dup2(2, 1)
    stdin = asyncio.StreamReader(limit=1 << 24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin.buffer)
    transport, _ = await loop.connect_write_pipe(
        asyncio.Protocol, os.fdopen(proto_fd, "wb", buffering=0)
    )

    def out(msg: dict[str, Any]) -> None:
        if not transport.is_closing():
            transport.write(encode(msg))

    first = await stdin.readline()
    cfg = decode(first)
    if cfg is None:
        print("cotal-tui delivery stage: started without a config line", file=sys.stderr)
        return 2
    die_with_parent(int(cfg.get("parent_pid") or 0))
    stage = Stage(cfg, out)

    async def commands() -> None:
        while True:
            line = await stdin.readline()
            if not line:  # the parent is gone: never run half a pipeline
                os._exit(EXIT_PARENT_GONE)
            msg = decode(line)
            if msg is not None:
                stage.command(msg)

    listener = loop.create_task(commands(), name="stage-commands")
    peer_task = await _peer_pipe(cfg, stage)
    try:
        await stage.bind()
    except Exception as exc:  # noqa: BLE001 - told to the parent, which fails the daemon's start
        out({"t": "failed", "error": f"{type(exc).__name__}: {exc}"})
        await _flush(transport)
        return 1
    settle_after_start()
    status = loop.create_task(stage.status_loop(), name="stage-status")
    await stage.stopping.wait()
    status.cancel()
    await stage.stop()
    out({"t": "stopped"})
    await _flush(transport)
    listener.cancel()
    if peer_task is not None:
        peer_task.cancel()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(stage.conn.close(), 2.0)
    return 0


async def _peer_pipe(cfg: dict[str, Any], stage: Stage) -> asyncio.Task[None] | None:
    """The direct pipe between the stages (the reader's INBOX decisions reach the fan-out's
    backpressure without a hop through the parent): the reader writes, the fan-out reads."""
    loop = asyncio.get_running_loop()
    fd = cfg.get("peer_fd")
    if not isinstance(fd, int):
        return None
    if stage.role == "reader":
        transport, _ = await loop.connect_write_pipe(
            asyncio.Protocol, os.fdopen(fd, "wb", buffering=0)
        )

        def peer(msg: dict[str, Any]) -> None:
            if not transport.is_closing():
                transport.write(encode(msg))

        stage.peer = peer
        return None
    lines = asyncio.StreamReader(limit=1 << 24)
    await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(lines), os.fdopen(fd, "rb", buffering=0)
    )

    async def read() -> None:
        while line := await lines.readline():  # EOF: the reader is gone (the parent acts)
            msg = decode(line)
            if msg is not None:
                stage.command(msg)

    return loop.create_task(read(), name="stage-peer")


async def _flush(transport: asyncio.WriteTransport) -> None:
    deadline = time.monotonic() + 2.0
    while transport.get_write_buffer_size() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)


def main() -> int:
    # Stopped by its parent only (a stop line, or the parent's death): a Ctrl-C to the terminal
    # or a SIGTERM to the whole group must not kill a stage ahead of the parent's clean stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    from cotal_tui.delivery.event_loop import run

    return run(_main())


if __name__ == "__main__":
    sys.exit(main())
