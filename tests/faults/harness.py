"""The fault suite's parts: real `cotal-tui daemon` processes, load, and exact copy accounting.

Everything is real: a nats-server process (the test's), `cotal-tui daemon` subprocesses killed
by pid, senders publishing CHAT through JetStream. Copies are counted as the member would see
them: a durable consumer on the DLV stream, started before any load, records every (owner,
message id) stored, so a copy stored and later discarded by DLV's per-subject cap still counts
and a copy stored twice is seen twice. Its count is checked against the stream's own sequence
delta, so the observer can never hide a gap of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cli_process import CliProcess, pid_alive
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from plane3_support import chat_message, request_delivery, set_acl, set_channel_class

from cotal_tui.mesh.connection import Connection
from cotal_tui.protocol.names import dlv_stream
from waiting import wait_for

DAEMON_ID = "D-FAULTS"
SERVING = "✓ delivery: serving"
STAGE_PIDS = re.compile(r"fan-out pid (\d+), reader pid (\d+)")


def fault_runs() -> int:
    """How many runs a repeated fault test makes: 1 in `make test`, 3 in `make faults`."""
    try:
        return max(1, int(os.environ.get("COTAL_FAULT_RUNS", "1")))
    except ValueError:
        return 1


def full_suite() -> bool:
    return os.environ.get("COTAL_FAULTS") == "full"


class DaemonProc:
    """`cotal-tui daemon` in open mode with a holder file under ``state_dir``."""

    def __init__(
        self, url: str, space: str, state_dir: Path | None, cwd: Path, stages: str | None = None
    ) -> None:
        args = ["daemon", "--server", url, "--space", space, "--id", DAEMON_ID]
        if stages is not None:
            args += ["--stages", stages]
        if state_dir is not None:
            args += ["--state-dir", str(state_dir)]
        self.proc = CliProcess(args, cwd=cwd)

    @property
    def pid(self) -> int:
        return self.proc.proc.pid

    @property
    def serving(self) -> bool:
        return self.proc.count(SERVING) > 0

    @property
    def exited(self) -> bool:
        return self.proc.proc.poll() is not None

    def stage_pids(self) -> dict[str, int]:
        """The stage processes' pids, from the line the daemon logs when it serves."""
        found = STAGE_PIDS.search(self.proc.output)
        assert found is not None, f"no stage pids logged:\n{self.proc.output}"
        return {"fanout": int(found.group(1)), "reader": int(found.group(2))}

    def sigkill(self) -> None:
        os.kill(self.pid, 9)
        self.proc.proc.wait()

    def close(self) -> None:
        if not self.exited:
            self.proc.terminate()


@dataclass
class Daemons:
    """Starts daemons; a successor is retried every 0.5 s until one serves (a supervisor)."""

    url: str
    space: str
    state_dir: Path | None
    """None: no holder file, so a successor cannot prove the old lease dead and waits it out."""
    cwd: Path
    stages: str | None = None
    """``--stages`` for every daemon started (None: the command's default)."""
    started: list[DaemonProc] = field(default_factory=list)

    def spawn(self) -> DaemonProc:
        d = DaemonProc(self.url, self.space, self.state_dir, self.cwd, self.stages)
        self.started.append(d)
        return d

    async def serving_one(self, timeout: float = 60.0) -> DaemonProc:
        """Start daemons (0.5 s apart when one exits) until one serves."""
        current = self.spawn()

        def check() -> bool:
            nonlocal current
            if current.serving:
                return True
            if current.exited:
                current = self.spawn()
            return False

        await wait_for(check, what="a delivery daemon serving", timeout=timeout, interval=0.5)
        return current

    def close(self) -> None:
        for d in self.started:
            d.close()
        for d in self.started:
            assert not pid_alive(d.pid) or d.exited


class DlvObserver:
    """Every copy stored in DLV, as (owner, message id) counts; started before the load.

    A durable push consumer (file-backed, no acks, flow control): it survives a broker
    SIGKILL + restart, where an ordered push consumer (memory-backed, gone with the broker)
    stalled silently and made thousands of stored copies look lost. A restored consumer may
    hand back what it had already delivered (its state is flushed lazily), so copies are
    counted once per DLV stream sequence; a sequence it never saw (discarded by DLV's
    per-subject cap before it got there) is counted in ``missed``.
    """

    DURABLE = "faults-observer"

    def __init__(self, conn: Connection, space: str) -> None:
        self.conn = conn
        self.space = space
        self.copies: Counter[tuple[str, str]] = Counter()
        self.seen = 0
        self.base_seq = 0
        self._seqs: set[int] = set()
        self._sub: Any = None

    async def start(self) -> None:
        js = self.conn.js
        stream = dlv_stream(self.space)
        self.base_seq = int((await js.stream_info(stream)).state.last_seq)
        prefix = f"cotal.{self.space}.dlv."

        async def on_msg(msg: Any) -> None:
            seq = int(msg.metadata.sequence.stream)
            if seq in self._seqs:
                return  # handed again by a restored consumer
            self._seqs.add(seq)
            self.seen += 1
            owner = msg.subject[len(prefix) :]
            self.copies[(owner, json.loads(msg.data)["id"])] += 1

        self._sub = await js.subscribe(
            f"{prefix}>",
            stream=stream,
            durable=self.DURABLE,
            cb=on_msg,
            manual_ack=True,
            config=ConsumerConfig(
                ack_policy=AckPolicy.NONE,
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                opt_start_seq=self.base_seq + 1,
                flow_control=True,
                idle_heartbeat=2.0,
            ),
        )

    @property
    def missed(self) -> int:
        """DLV sequences above the start the observer never saw (so far)."""
        top = max(self._seqs, default=self.base_seq)
        return (top - self.base_seq) - len(self._seqs)

    async def stored(self) -> int:
        info = await self.conn.js.stream_info(dlv_stream(self.space))
        return int(info.state.last_seq) - self.base_seq

    async def settled(self, want: int, *, timeout: float, quiet_s: float = 3.0) -> None:
        """Until ``want`` copies were stored and observed, or nothing new arrived for a while
        after ``timeout`` (then the accounting says what is missing)."""
        deadline = time.monotonic() + timeout
        last, last_change = -1, time.monotonic()
        while True:
            try:
                stored = await self.stored()
            except Exception:  # noqa: BLE001 - the broker is restarting: ask again
                await asyncio.sleep(0.25)
                continue
            if stored != last:
                last, last_change = stored, time.monotonic()
            if stored >= want and self.seen >= stored:
                return
            if time.monotonic() >= deadline and time.monotonic() - last_change >= quiet_s:
                return
            await asyncio.sleep(0.25)

    async def stop(self) -> None:
        sub, self._sub = self._sub, None
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        with contextlib.suppress(Exception):
            await self.conn.js.delete_consumer(dlv_stream(self.space), self.DURABLE)


async def setup_members(
    tools: Connection, space: str, channel: str, members: list[str], senders: list[str]
) -> None:
    await set_channel_class(tools, space, channel, "durable")
    for ident in [*members, *senders]:
        await set_acl(tools, space, ident, [channel])
    for m in members:
        reply = await request_delivery(tools, space, m, "durableJoin", {"channel": channel})
        assert reply.get("ok") and reply["data"]["durable"], reply


class Load:
    """Senders publishing through JetStream at a total rate; every published id recorded."""

    def __init__(self, tools: Connection, space: str, channel: str, senders: list[str]) -> None:
        self.tools = tools
        self.space = space
        self.channel = channel
        self.senders = senders
        self.published: list[tuple[str, str]] = []  # (sender, id), PubAck received
        self.retries = 0
        self.acked_seq: dict[str, int] = {}  # id -> the stream sequence its PubAck named

    def lost_by_broker(self) -> list[str]:
        """Ids whose PubAck named a stream sequence that a later PubAck named again: the
        broker acknowledged them and then lost them (unsynced when it was SIGKILLed)."""
        by_seq: dict[int, list[str]] = {}
        for mid, seq in self.acked_seq.items():
            by_seq.setdefault(seq, []).append(mid)
        return [mid for mids in by_seq.values() if len(mids) > 1 for mid in mids[:-1]]

    async def run(self, total: int, rate: float, *, unpaced: bool = False) -> None:
        js = self.tools.js
        start = time.perf_counter()
        pending: list[Any] = []
        for i in range(total):
            sender = self.senders[i % len(self.senders)]
            if not unpaced:
                delay = start + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            subject, data, mid = chat_message(self.space, sender, self.channel, f"m{i}")
            fut = await js.publish_async(subject, data, headers={"Nats-Msg-Id": mid})
            pending.append((fut, sender, mid))
            if len(pending) >= 200:
                await self._settle(pending)
        await self._settle(pending)

    async def run_retrying(self, total: int, rate: float) -> None:
        """Like :meth:`run`, but a publish that fails (broker gone) is retried with the same
        message id until it is acked, as an agent's outbox would; sent ones are recorded."""
        js = self.tools.js
        start = time.perf_counter()
        for i in range(total):
            sender = self.senders[i % len(self.senders)]
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            subject, data, mid = chat_message(self.space, sender, self.channel, f"m{i}")
            while True:
                try:
                    ack = await js.publish(subject, data, headers={"Nats-Msg-Id": mid}, timeout=2)
                    self.acked_seq[mid] = int(ack.seq)
                    break
                except Exception:  # noqa: BLE001 - broker gone: retry, as an outbox does
                    self.retries += 1
                    await asyncio.sleep(0.1)
            self.published.append((sender, mid))

    async def _settle(self, pending: list[Any]) -> None:
        for fut, sender, mid in pending:
            await fut  # a failed publish fails the test: the sender would know and retry
            self.published.append((sender, mid))
        pending.clear()


@dataclass
class Accounting:
    want: int
    delivered: int
    lost: list[tuple[str, str]]
    duplicated: list[tuple[tuple[str, str], int]]
    unexpected: int

    def describe(self) -> str:
        return (
            f"{self.delivered}/{self.want} copies delivered, {len(self.lost)} lost, "
            f"{len(self.duplicated)} duplicated, {self.unexpected} unexpected"
            + (f"; first lost: {self.lost[:3]}" if self.lost else "")
            + (f"; first duplicated: {self.duplicated[:3]}" if self.duplicated else "")
        )


EVICTED_LINE = re.compile(
    r"! delivery: (\d+) message\(s\) on (?:#(\S+)|an unknown channel) were evicted from CHAT"
)


def logged_evictions(daemon: DaemonProc) -> int:
    """The evictions a daemon process reported on stderr (each detection is one line)."""
    return sum(int(m.group(1)) for m in EVICTED_LINE.finditer(daemon.proc.output))


def status_evictions(url: str, space: str, cwd: Path) -> dict[str, int] | None:
    """``delivery.evictedBeforeRouting`` of `cotal-tui status --json` (open mode)."""
    done = subprocess.run(
        [sys.executable, "-m", "cotal_tui", "status", "--server", url, "--space", space, "--json"],
        cwd=cwd, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    delivery = json.loads(done.stdout)["delivery"]
    LAST_STATUS_DELIVERY.clear()
    LAST_STATUS_DELIVERY.update(delivery)
    return delivery["evictedBeforeRouting"]


LAST_STATUS_DELIVERY: dict[str, Any] = {}


@dataclass
class MessageAccounting:
    """Per message: delivered to every member, to some, or to none."""

    published: int
    members: int
    copies: int
    full: int
    partial: int
    none: int

    def describe(self, evicted: int) -> str:
        return (
            f"{self.published} published x {self.members} members: {self.copies} copies "
            f"delivered, {evicted} messages counted evictedBeforeRouting; messages delivered to "
            f"all {self.full}, to some {self.partial}, to none {self.none}"
        )


def account_messages(
    published: list[tuple[str, str]], members: list[str], observer: DlvObserver
) -> MessageAccounting:
    got = observer.copies
    full = partial = none = copies = 0
    for _s, mid in published:
        n = sum(1 for m in members if got[(m, mid)] > 0)
        copies += n
        if n == len(members):
            full += 1
        elif n:
            partial += 1
        else:
            none += 1
    return MessageAccounting(len(published), len(members), copies, full, partial, none)


def account(
    published: list[tuple[str, str]], members: list[str], observer: DlvObserver
) -> Accounting:
    wanted = {(m, mid) for _s, mid in published for m in members}
    got = observer.copies
    lost = sorted(w for w in wanted if got[w] == 0)
    dup = sorted((k, n) for k, n in got.items() if n > 1)
    unexpected = sum(n for k, n in got.items() if k not in wanted)
    delivered = sum(1 for w in wanted if got[w] > 0)
    return Accounting(len(wanted), delivered, lost, dup, unexpected)


ACK_WAIT_S = 60.0  # the daemon's consumers' ack_wait: a dead daemon's copies return after it


async def assert_every_copy_once(
    total: int, published: list[tuple[str, str]], members: list[str], observer: DlvObserver
) -> None:
    """Wait until the DLV copies settle (redeliveries after ack_wait included), then: all
    ``total`` messages published, each stored once per member, nothing lost, duplicated or
    unexpected, and the observer saw every copy DLV stored."""
    assert len(published) == total, f"{len(published)} of {total} messages published"
    want = total * len(members)
    await observer.settled(want, timeout=ACK_WAIT_S + 45)
    acc = account(published, members, observer)
    assert not acc.lost and not acc.duplicated and not acc.unexpected, acc.describe()
    assert acc.delivered == want
    stored = await observer.stored()
    assert observer.seen == stored, f"observer saw {observer.seen} of {stored} stored"
