"""One simulated agent: a real auth-mode ``Endpoint`` with the Plane-3 agent side, and a
seeded behaviour loop (post, @mention, DM, anycast, go working/waiting/idle)."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cotal_tui.demo.cast import (
    ACTIVITIES,
    ANYCAST_LINES,
    DM_LINES,
    LINES,
    MENTION_LINES,
    REPLY_LINES,
    WAITING,
    AgentSpec,
)
from cotal_tui.demo.tasks import cancel_and_wait
from cotal_tui.demo.timeline import Timeline
from cotal_tui.mesh.endpoint import Endpoint
from cotal_tui.mesh.events import EndpointEvent, MessageReceived
from cotal_tui.mesh.plane3_agent import Plane3Agent

Note = Callable[[str, str], None]


@dataclass
class Sent:
    """What an agent published, by kind: for tests and the closing summary."""

    channel: dict[str, int] = field(default_factory=dict)
    dm: int = 0
    anycast: int = 0
    mentions: int = 0
    status_changes: int = 0
    failures: int = 0


class SimAgent:
    def __init__(
        self,
        spec: AgentSpec,
        *,
        url: str,
        space: str,
        creds: Path,
        rng: random.Random,
        timeline: Timeline,
        roles: list[str],
        peers: list[str],
        note: Note,
    ) -> None:
        self.spec = spec
        self.url = url
        self.space = space
        self.creds = creds
        self.rng = rng
        self.reply_rng = random.Random(rng.random())  # human-driven replies keep `rng` intact
        self.timeline = timeline
        self.roles = roles
        self.peer_names = [p for p in peers if p != spec.name] or ["team"]
        self.note = note
        self.sent = Sent()
        self.endpoint = self._endpoint()
        self._loop: asyncio.Task[None] | None = None
        self._replies: set[asyncio.Task[None]] = set()
        self.crashed = False
        self.received = 0
        self.received_durable = 0
        self.durable_sent_at: list[int] = []
        """Send times (epoch ms) of the messages that reached this agent through its DLV."""

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def id(self) -> str:
        return self.endpoint.id

    def _endpoint(self) -> Endpoint:
        t = self.timeline
        return Endpoint(
            self.url,
            self.space,
            name=self.spec.name,
            role=self.spec.role,
            description=f"simulated {self.spec.role}",
            creds=str(self.creds),
            channels=list(self.spec.channels),
            ttl_ms=t.ttl_ms,
            heartbeat_ms=t.heartbeat_ms,
            sweep_ms=t.sweep_ms,
            watch_heartbeat_ms=t.watch_heartbeat_ms,
            durable=lambda ep: Plane3Agent(
                ep, backoff_base_s=t.backoff_base_s, backoff_max_s=t.backoff_max_s
            ),
        )

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        self.endpoint.on_event(self._on_event)
        await self.endpoint.start()
        self.crashed = False
        self._loop = asyncio.get_running_loop().create_task(
            self._run(), name=f"demo-agent:{self.name}"
        )

    async def _halt_loop(self) -> None:
        tasks = [t for t in (self._loop, *self._replies) if t is not None]
        self._loop = None
        await cancel_and_wait(tasks)

    async def stop(self) -> None:
        await self._halt_loop()
        await asyncio.wait_for(self.endpoint.stop(), 10)

    async def crash(self) -> None:
        """Die as a killed process would: no offline record, no leave; the link just drops."""
        await self._halt_loop()
        self.crashed = True
        await asyncio.wait_for(self.endpoint.stop(graceful=False), 10)

    async def reboot(self) -> None:
        """Come back with the same identity (a fresh endpoint on the same creds)."""
        self.endpoint = self._endpoint()
        await self.start()

    # -- behaviour -----------------------------------------------------------------------------

    def _live(self, name: str) -> bool:
        """Whether ``name`` is on the roster now (a DM to a peer never seen would go nowhere)."""
        return any(p.card.name == name for p in self.endpoint.roster_entries())

    def _fill(self, template: str) -> str:
        return template.format(
            n=self.rng.randint(100, 999),
            task=self.rng.choice(ACTIVITIES[self.spec.role]),
            role=self.rng.choice(self.roles),
            peer=self.rng.choice(self.peer_names),
        )

    async def _run(self) -> None:
        lo, hi = self.timeline.chatter_every_s
        while True:
            await asyncio.sleep(self.rng.uniform(lo, hi))
            try:
                await self.act()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a refused or failed action is counted, not fatal
                self.sent.failures += 1

    async def act(self) -> None:
        """One seeded action. Every draw comes from the agent's own ``Random`` over static
        lists (its boot channels, the cast's names), so a seed gives the same sequence."""
        roll = self.rng.random()
        channel = self.rng.choice(self.spec.channels)
        peer = self.rng.choice(self.peer_names)
        if channel not in self.endpoint.joined_channels():
            channel = "general"  # refused (narrowed) channels fall back to the common room
        if roll < 0.45:
            await self.endpoint.send(channel, self._fill(self.rng.choice(LINES[channel])))
            self.sent.channel[channel] = self.sent.channel.get(channel, 0) + 1
        elif roll < 0.60:
            text = self.rng.choice(MENTION_LINES).replace("{peer}", peer)
            await self.endpoint.send(channel, self._fill(text), mentions=[peer])
            self.sent.channel[channel] = self.sent.channel.get(channel, 0) + 1
            self.sent.mentions += 1
        elif roll < 0.70:
            text = self._fill(self.rng.choice(DM_LINES))
            if self._live(peer):
                await self.endpoint.send_dm(peer, text)
                self.sent.dm += 1
        elif roll < 0.80:
            role = self.rng.choice(self.roles)
            text = self.rng.choice(ANYCAST_LINES).replace("{role}", role)
            await self.endpoint.send_anycast(role, self._fill(text))
            self.sent.anycast += 1
        else:
            await self._change_status()

    async def _change_status(self) -> None:
        pick = self.rng.random()
        if pick < 0.5:
            status, activity = "working", self.rng.choice(ACTIVITIES[self.spec.role])
        elif pick < 0.8:
            status, activity = "waiting", self.rng.choice(WAITING)
        else:
            status, activity = "idle", ""
        await self.endpoint.presence.update(status=status, activity=activity)  # type: ignore[arg-type]
        self.sent.status_changes += 1

    def _on_event(self, event: EndpointEvent) -> None:
        """Count what arrives; answer a human (a DM from, or a mention by, a non-simulated peer)."""
        if not isinstance(event, MessageReceived):
            return
        self.received += 1
        if event.inbound.durable:
            self.received_durable += 1  # a DLV copy surfaced first: the backstop delivered it
            self.durable_sent_at.append(event.inbound.message.ts)
        if event.inbound.historical:
            return
        msg = event.inbound.message
        sender = msg.from_
        if sender.id == self.id or self._is_sim(sender.id):
            return
        mentioned = self.name.lower() in (msg.mentions or []) or self.id in (msg.mentions or [])
        if event.inbound.kind == "dm" or mentioned:
            task = asyncio.get_running_loop().create_task(
                self._reply(event.inbound.kind, event.inbound.channel, sender.name, sender.id)
            )
            self._replies.add(task)
            task.add_done_callback(self._replies.discard)

    is_sim: Callable[[str], bool] | None = None

    def _is_sim(self, sender_id: str) -> bool:
        return self.is_sim(sender_id) if self.is_sim else False

    async def _reply(self, kind: str, channel: str | None, peer: str, peer_id: str) -> None:
        await asyncio.sleep(0.6)
        text = self.reply_rng.choice(REPLY_LINES).replace("{peer}", peer)
        with contextlib.suppress(Exception):
            if kind == "channel" and channel:
                await self.endpoint.send(channel, text, mentions=[peer])
            else:
                await self.endpoint.send_dm(peer_id, text)
