"""The demo space in motion: simulated agents, the in-process daemon and the scripted cases.

``DemoSimulation(space)`` takes a started auth-mode :class:`~cotal_tui.server.local.LocalSpace`
(for its URL, its trust chain and its mint) and runs, on the caller's event loop:

- the operator's own endpoint (on the roster; the console drives it);
- N simulated agents (:mod:`cotal_tui.demo.agent`), each a real ``Endpoint`` with its own creds;
- the delivery daemon, in-process, bound *after* the first agent booted;
- the timeline (:mod:`cotal_tui.demo.timeline`) of the cases an operator must recognise:

  (a) the early bird boots before any daemon: its durable boot joins wait in the reconcile loop
      (pending boot joins, "no responders") and resolve once the daemon binds;
  (b) the crasher dies without a graceful offline: its presence goes stale and the sweep marks it
      offline a TTL later (and, by default, it reboots later with the same identity);
  (c) the narrowed agent loses ``review`` from its read ACL (ACL row + re-issued creds +
      a kick to reconnect): the broker refuses the channel, and with the daemon's responder paused
      for a moment the refused membership's leave is retried until it lands.

Everything that happens is told as a :class:`DemoNote` (``on_note``) and kept in ``notes``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cotal_tui.delivery.daemon import DeliveryDaemon
from cotal_tui.demo.admin import SpaceAdmin
from cotal_tui.demo.agent import SimAgent
from cotal_tui.demo.cast import (
    ALL_CHANNELS,
    CHANNELS,
    CRASHER,
    EARLY_BIRD,
    NARROWED,
    NARROWED_CHANNEL,
    AgentSpec,
    cast,
)
from cotal_tui.demo.tasks import bounded, cancel_and_wait
from cotal_tui.demo.timeline import Timeline
from cotal_tui.mesh.connection import Connection
from cotal_tui.mesh.durable import PendingOp
from cotal_tui.mesh.endpoint import Endpoint
from cotal_tui.mesh.plane3_agent import Plane3Agent
from cotal_tui.server.local import LocalSpace

OPERATOR_CHANNELS = ("general", "review", "lounge")
OPERATOR_BOOT = ("lounge",)
"""The operator boots on the live channel only and joins the durable ones once the daemon is
bound (runtime joins, "durable backstop active"), so the early bird is the one boot join that
waits."""


def channel_seed() -> dict[str, object]:
    """The registry seed for ``start_local_space(channels_seed=...)``."""
    return {"channels": {name: dict(cfg) for name, cfg in CHANNELS.items()}}


def agent_rngs(seed: int, specs: list[AgentSpec]) -> dict[str, random.Random]:
    """One ``Random`` per agent, derived from the demo seed in cast order: an agent's sequence of
    actions depends on the seed alone, never on how the agents' tasks interleave."""
    root = random.Random(seed)
    return {spec.name: random.Random(root.random()) for spec in specs}


@dataclass(frozen=True)
class DemoNote:
    at: float
    """Epoch seconds."""
    kind: str
    """``seed``, ``boot``, ``daemon``, ``join``, ``crash``, ``narrow``, ``responder``, ``reboot``,
    ``error``."""
    text: str


@dataclass(frozen=True)
class OwnedPending:
    """A pending boot join or leave retry, with the agent whose retry loop holds it."""

    owner: str
    owner_id: str
    op: PendingOp


class DemoSimulation:
    def __init__(
        self,
        space: LocalSpace,
        *,
        agents: int = 8,
        seed: int | None = None,
        timeline: Timeline | None = None,
        operator_name: str = "operator",
        on_note: Callable[[DemoNote], None] | None = None,
    ) -> None:
        if space.auth is None:
            raise ValueError("the demo needs an auth-mode space (start_local_space(auth=True))")
        self.space = space
        self.timeline = timeline or Timeline()
        self.seed = seed if seed is not None else random.SystemRandom().randrange(2**31)
        self.specs: list[AgentSpec] = cast(agents)
        self.operator_name = operator_name
        self.on_note = on_note
        self.notes: list[DemoNote] = []
        self.agents: dict[str, SimAgent] = {}
        self.operator: Endpoint | None = None
        self.operator_creds: Path | None = None
        self.daemon: DeliveryDaemon | None = None
        self.daemon_conn: Connection | None = None
        self.admin = SpaceAdmin(space.url, space.space, space.auth, Path(space.state_dir))
        self.scenario_done = asyncio.Event()
        self._t0 = 0.0
        self._tasks: list[asyncio.Task[None]] = []
        self._stopped = False

    # -- observation ---------------------------------------------------------------------------

    def note(self, kind: str, text: str) -> None:
        n = DemoNote(time.time(), kind, text)
        self.notes.append(n)
        if self.on_note is not None:
            with contextlib.suppress(Exception):
                self.on_note(n)

    def pending_ops(self) -> list[OwnedPending]:
        """Every boot join and leave retry still pending, across the operator and the agents."""
        out: list[OwnedPending] = []
        eps: list[tuple[str, Endpoint]] = []
        if self.operator is not None:
            eps.append((self.operator_name, self.operator))
        eps += [(a.name, a.endpoint) for a in self.agents.values() if not a.crashed]
        for name, ep in eps:
            for op in [*ep.pending_boot_joins(), *ep.pending_leaves()]:
                out.append(OwnedPending(name, ep.id, op))
        return out

    def is_simulated(self, peer_id: str) -> bool:
        return any(a.id == peer_id for a in self.agents.values())

    def elapsed(self) -> float:
        return time.monotonic() - self._t0

    # -- lifecycle -----------------------------------------------------------------------------

    async def prepare(self) -> None:
        """Mint and provision everyone and build the operator's endpoint (not started yet)."""
        if self.operator is not None:
            return
        self._t0 = time.monotonic()
        self.note("seed", f"demo seed {self.seed} · {len(self.specs)} agents · space "
                  f"{self.space.space!r} at {self.space.url}")  # fmt: skip
        await self.admin.start()
        rngs = agent_rngs(self.seed, self.specs)
        roles = sorted({s.role for s in self.specs})
        names = [s.name for s in self.specs] + [self.operator_name]  # the operator gets pinged too
        for spec in self.specs:
            minted = await self.space.mint(
                spec.name,
                "agent",
                role=spec.role,
                subscribe=list(spec.channels),
                allow_subscribe=list(spec.allow_subscribe),
                allow_publish=list(spec.allow_publish),
            )
            agent = SimAgent(
                spec,
                url=self.space.url,
                space=self.space.space,
                creds=minted.path,
                rng=rngs[spec.name],
                timeline=self.timeline,
                roles=roles,
                peers=names,
                note=self.note,
            )
            agent.is_sim = self.is_simulated
            self.agents[spec.name] = agent
        op = await self.space.mint(
            self.operator_name,
            "agent",
            subscribe=list(OPERATOR_CHANNELS),
            allow_subscribe=list(ALL_CHANNELS),
            allow_publish=list(ALL_CHANNELS),
        )
        self.operator_creds = op.path
        self.operator = self.make_endpoint(
            self.operator_name, op.path, OPERATOR_BOOT, kind="endpoint",
            description="the operator's console",
        )  # fmt: skip

    async def start(self) -> None:
        """Start the operator and the early bird; the timeline then runs on its own task."""
        await self.prepare()
        assert self.operator is not None
        self._t0 = time.monotonic()
        await self.operator.start()
        early = self.agents[EARLY_BIRD]
        await early.start()
        durable = [c for c in early.spec.channels if CHANNELS[c]["deliveryClass"] == "durable"]
        self.note(
            "boot",
            f"{early.name} booted before any daemon: its durable boot joins ({', '.join(durable)}) "
            "wait in the Pending pane until one binds",
        )
        self._spawn(self._scenario(), "demo-scenario")

    def make_endpoint(
        self,
        name: str,
        creds: Path,
        channels: tuple[str, ...],
        *,
        kind: str = "agent",
        description: str | None = None,
    ) -> Endpoint:
        t = self.timeline
        return Endpoint(
            self.space.url,
            self.space.space,
            name=name,
            kind=kind,
            description=description,
            creds=str(creds),
            channels=list(channels),
            ttl_ms=t.ttl_ms,
            heartbeat_ms=t.heartbeat_ms,
            sweep_ms=t.sweep_ms,
            watch_heartbeat_ms=t.watch_heartbeat_ms,
            durable=lambda ep: Plane3Agent(
                ep, backoff_base_s=t.backoff_base_s, backoff_max_s=t.backoff_max_s
            ),
        )

    async def stop(self) -> None:
        """Stop everything this simulation started; bounded, never raises."""
        if self._stopped:
            return
        self._stopped = True
        tasks, self._tasks = self._tasks, []
        await cancel_and_wait(tasks)
        live = [a for a in self.agents.values() if not a.crashed]
        await asyncio.gather(*(self._quietly(a.stop()) for a in live))
        if self.operator is not None:
            await self._quietly(self.operator.stop())
        if self.daemon is not None:
            await self._quietly(self.daemon.stop())
        if self.daemon_conn is not None:
            await self._quietly(self.daemon_conn.close())
        await self._quietly(self.admin.stop())

    @staticmethod
    async def _quietly(coro: object, timeout: float = 10.0) -> None:
        await bounded(coro, timeout)

    def _spawn(self, coro: object, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)  # type: ignore[arg-type]
        self._tasks.append(task)

    # -- the timeline --------------------------------------------------------------------------

    async def _at(self, offset_s: float) -> None:
        delay = offset_s - self.elapsed()
        if delay > 0:
            await asyncio.sleep(delay)

    async def _step(self, what: str, coro: object) -> None:
        if self._stopped:  # a swallowed cancellation must not let the timeline go on
            coro.close()  # type: ignore[attr-defined]
            raise asyncio.CancelledError
        try:
            await coro  # type: ignore[misc]
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the demo goes on; the operator is told
            self.note("error", f"{what} failed: {type(exc).__name__}: {exc}")

    async def _scenario(self) -> None:
        t = self.timeline
        await self._at(t.daemon_after_s)
        await self._step("starting the delivery daemon", self.start_daemon())
        await self._step("the operator's joins", self._operator_joins())
        for spec in self.specs:
            if spec.name == EARLY_BIRD:
                continue
            await self._step(f"booting {spec.name}", self.agents[spec.name].start())
            await asyncio.sleep(t.stagger_s)
        self.note("boot", f"{len(self.agents)} agents up; chatter at a few messages per second")
        steps = [
            self._step("the crash", self._crash()),
            self._step("the narrowing", self._narrow()),
        ]
        if t.reboot_after_s is not None:
            steps.append(self._step("the reboot", self._reboot()))
        await asyncio.gather(*steps)
        self.scenario_done.set()

    async def start_daemon(self) -> None:
        cred = await self.space.mint("delivery", "delivery")
        self.daemon_conn = Connection(
            self.space.url, "delivery", cred.public_key, creds=str(cred.path)
        )
        await self.daemon_conn.connect()
        self.daemon = DeliveryDaemon(
            self.daemon_conn,
            self.space.space,
            cred.public_key,
            on_error=lambda e: None,
        )
        await self.daemon.start()
        self.note(
            "daemon",
            "delivery daemon bound in-process: the pending boot joins resolve at their next retry",
        )

    async def _operator_joins(self) -> None:
        assert self.operator is not None
        for channel in OPERATOR_CHANNELS:
            if channel in OPERATOR_BOOT:
                continue
            res = await self.operator.join_channel(channel)
            how = "durable backstop active" if res.durable else f"LIVE only — {res.reason}"
            self.note("join", f"{self.operator_name} joined #{channel} ({how})")

    async def _crash(self) -> None:
        await self._at(self.timeline.crash_after_s)
        agent = self.agents[CRASHER]
        await agent.crash()
        ttl = self.timeline.ttl_ms / 1000
        self.note(
            "crash",
            f"{agent.name} crashed (no offline record): the roster sweep marks it offline {ttl:g}s "
            "after its last heartbeat",
        )

    async def _reboot(self) -> None:
        assert self.timeline.reboot_after_s is not None
        await self._at(self.timeline.reboot_after_s)
        agent = self.agents[CRASHER]
        await agent.reboot()
        self.note("reboot", f"{agent.name} restarted with the same identity: back on the roster")

    async def _narrow(self) -> None:
        await self._at(self.timeline.narrow_after_s)
        agent = self.agents[NARROWED]
        ep = agent.endpoint
        deadline = time.monotonic() + 15
        while not ep.has_durable_membership(NARROWED_CHANNEL):
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{agent.name} never got a durable membership of {NARROWED_CHANNEL}"
                )
            await asyncio.sleep(0.05)
        assert self.daemon is not None
        pause = self.timeline.responder_pause_s
        await self.daemon.service.stop()
        self.note(
            "responder",
            f"daemon hiccup: ctl.delivery stops answering for {pause:g}s (the lease is still held: "
            "no-responder)",
        )
        narrower = [c for c in agent.spec.allow_subscribe if c != NARROWED_CHANNEL]
        try:
            await self.admin.commit_acl(agent.id, narrower)
            self.admin.reissue_agent_creds(
                agent.creds,
                agent.id,
                allow_subscribe=narrower,
                allow_publish=narrower,
                role=agent.spec.role,
            )
            await self.admin.kick(ep.conn.nc.client_id or 0)
            self.note(
                "narrow",
                f"{agent.name} loses #{NARROWED_CHANNEL} (ACL row, re-issued creds, kick): the "
                "broker refuses it and the leave retries in the Pending pane",
            )
            await asyncio.sleep(pause)
        finally:
            await self.daemon.service.start()
            self.note("responder", "daemon answering again: the pending leave lands and closes")
