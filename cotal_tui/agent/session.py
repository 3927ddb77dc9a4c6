"""The headless agent: one endpoint driven by JSON-lines commands, reporting JSON-lines events.

:class:`AgentSession` is the agent a cred describes (``agent.identity``): its name, role and boot
channels from the cred's card, its read/post ACL from the cred's permissions. It starts the
endpoint with the Plane-3 agent side (PROTOCOL §5.7: boot self-join with the reconcile loop,
fail-closed leave), resumes the durable memberships it already holds (``listMemberships``: they
are joined live again and shown as durable), and then answers commands one at a time, in order.

What it writes goes through ``write`` (one dict per line; ``commands/agent.py`` prints them):
the ``hello`` event first, then replies and events as in :mod:`cotal_tui.agent.lines`. Messages
come through the endpoint's dedupe, so each id is written once whichever copy came first
(live, backfill or the ``dlv_`` durable copy, which owns the ack).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cotal_tui.agent.identity import load_cred_card
from cotal_tui.agent.lines import (
    BadLine,
    Command,
    Via,
    event,
    hello_event,
    message_event,
    parse_command,
)
from cotal_tui.agent.membership import resume_memberships
from cotal_tui.mesh.chat import JoinFailed
from cotal_tui.mesh.endpoint import Endpoint, NotJoinable
from cotal_tui.mesh.events import (
    ChannelDropped,
    EndpointError,
    EndpointEvent,
    MessageReceived,
    PresenceChanged,
)
from cotal_tui.mesh.messages import Inbound, PublishFailed
from cotal_tui.mesh.plane3_agent import Plane3Agent
from cotal_tui.mesh.roster import PeerNotFound
from cotal_tui.protocol.cred_card import CredCard
from cotal_tui.protocol.errors import ProtocolError
from cotal_tui.protocol.peers import AmbiguousPeerError

DEFAULT_SERVER = "nats://127.0.0.1:4222"
Writer = Callable[[dict[str, Any]], None]


class AgentSetupError(Exception):
    """The agent cannot start as asked (cred, name); the message says what to do."""


@dataclass
class AgentOptions:
    creds: str
    server: str = DEFAULT_SERVER
    space: str = "main"
    name: str | None = None
    poll_s: float = 1.0
    """How often pending retries are looked at (a change is an event)."""
    health_s: float = 3.0
    """How often delivery health is read (lease + responder probe; a change is an event)."""
    endpoint_options: dict[str, Any] | None = None


def resolve_identity(options: AgentOptions) -> tuple[CredCard, str, list[str]]:
    """The cred's card, the name to use, and notes for stderr. Raises AgentSetupError."""
    try:
        card = load_cred_card(options.creds, options.space)
    except ValueError as exc:
        raise AgentSetupError(str(exc)) from None
    if not card.is_agent:
        raise AgentSetupError(
            f"{options.creds} is a {card.profile or 'non-agent'} cred; an agent runs with an "
            "agent-profile cred (`cotal-tui mint NAME --profile agent`)"
        )
    notes = []
    name = card.name or options.name
    if name is None:
        raise AgentSetupError(
            f"{options.creds} carries no agent name (minted by another tool or an older "
            "cotal-tui); pass --name NAME"
        )
    if card.name and options.name and options.name != card.name:
        notes.append(f"--name {options.name} ignored: the cred names this agent {card.name}")
    return card, name, notes


def via_of(inbound: Inbound) -> Via:
    if inbound.backlog:
        return "backlog"
    if inbound.durable:
        return "durable"
    return "backfill" if inbound.historical else "live"


class AgentSession:
    def __init__(self, options: AgentOptions, write: Writer, log: Callable[[str], None]) -> None:
        self.options = options
        self._write = write
        self.log = log
        self.card, self.name, notes = resolve_identity(options)
        for note in notes:
            log(note)
        self.ep = Endpoint(
            options.server,
            options.space,
            name=self.name,
            role=self.card.role,
            kind="agent",
            creds=options.creds,
            channels=list(self.card.boot),
            durable=Plane3Agent,
            create_space=False,
            **(options.endpoint_options or {}),
        )
        self._ready = False
        self._early: list[dict[str, Any]] = []
        self._pending: dict[tuple[str, str], tuple[int, float | None]] = {}
        self._health_key: Any = None
        self._tasks: list[asyncio.Task[Any]] = []
        self.ep.on_event(self._on_event)

    # -- output --------------------------------------------------------------------------------

    def emit(self, obj: dict[str, Any]) -> None:
        if self._ready:
            self._write(obj)
        else:
            self._early.append(obj)

    def _on_event(self, ev: EndpointEvent) -> None:
        if isinstance(ev, MessageReceived):
            i = ev.inbound
            self.emit(message_event(i.message, i.kind, i.channel, via_of(i)))
        elif isinstance(ev, PresenceChanged):
            p = ev.event.presence
            if p.card.id == self.ep.id:
                return
            self.emit(
                event(
                    "presence",
                    type=ev.event.type,
                    id=p.card.id,
                    name=p.card.name,
                    role=p.card.role,
                    status=p.status,
                    activity=p.activity,
                )
            )
        elif isinstance(ev, ChannelDropped):
            self.emit(event("left", channel=ev.channel, reason=ev.reason))
        elif isinstance(ev, EndpointError):
            self.log(f"{ev.context}: {ev.error}")
            self.emit(event("error", context=ev.context, error=str(ev.error)))

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the endpoint, write ``hello`` (then what happened meanwhile), resume."""
        await self.ep.start()
        self._write(
            hello_event(
                agent_id=self.ep.id,
                name=self.name,
                role=self.card.role,
                space=self.options.space,
                server=self.options.server,
                boot=list(self.card.boot),
                read=None if self.card.read is None else list(self.card.read),
                post=None if self.card.post is None else list(self.card.post),
            )
        )
        for ch in self.ep.joined_channels():  # the boot channels, before their first messages
            self._write(
                event("joined", channel=ch, durable=self.ep.has_durable_membership(ch), boot=True)
            )
        self._ready = True
        early, self._early = self._early, []
        for obj in early:
            self._write(obj)
        self._poll_pending()
        await self._resume_memberships()
        self._tasks.append(asyncio.get_running_loop().create_task(self._poller()))

    async def _resume_memberships(self) -> None:
        """Join again the durable memberships held from an earlier run (agent.membership)."""
        for r in await resume_memberships(self.ep):
            if r.error is not None:
                where = f"resuming #{r.channel}" if r.channel else "resuming memberships"
                self.emit(event("error", context=where, error=r.error))
            elif r.result is not None:
                res = r.result
                self.emit(
                    event("joined", channel=r.channel, durable=res.durable, reason=res.reason,
                          resumed=True)
                )  # fmt: skip

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
        await self.ep.stop(graceful=True)

    # -- polling: pending retries and delivery health --------------------------------------------

    async def _poller(self) -> None:
        loop = asyncio.get_running_loop()
        next_health = 0.0
        while True:
            self._poll_pending()
            if loop.time() >= next_health:
                next_health = loop.time() + self.options.health_s
                with contextlib.suppress(Exception):
                    await self._poll_health()
            await asyncio.sleep(self.options.poll_s)

    def _poll_pending(self) -> None:
        now: dict[tuple[str, str], tuple[int, float | None]] = {}
        ops = [*self.ep.pending_boot_joins(), *self.ep.pending_leaves()]
        for p in ops:
            key = (p.operation, p.channel)
            now[key] = (p.attempt, p.next_retry_at)
            if self._pending.get(key) != now[key]:
                self.emit(
                    event(
                        "pending",
                        channel=p.channel,
                        operation=p.operation,
                        attempt=p.attempt,
                        nextRetryAt=None
                        if p.next_retry_at is None
                        else int(p.next_retry_at * 1000),
                        lastError=p.last_error,
                    )
                )
        for op, ch in set(self._pending) - set(now):
            if op == "durableJoin":
                durable = self.ep.has_durable_membership(ch)
                self.emit(event("joined", channel=ch, durable=durable, boot=True, settled=True))
            else:
                self.emit(event("left", channel=ch, tombstoned=True, settled=True))
        self._pending = now

    async def _poll_health(self) -> None:
        durable = self.ep.durable
        if not isinstance(durable, Plane3Agent):
            return
        health = (await durable.delivery_health()).to_json()
        key = (
            health["lease"]["verdict"],
            tuple((c["channel"], c.get("deliveryHealth")) for c in health["channels"]),
        )
        if key != self._health_key:
            self._health_key = key
            self.emit(event("health", **{k: v for k, v in health.items() if k != "pending"}))

    # -- commands --------------------------------------------------------------------------------

    async def handle_line(self, line: str) -> bool:
        """Answer one line; False when the agent should stop (``quit``)."""
        if not line.strip():
            return True
        cmd = parse_command(line)
        if isinstance(cmd, BadLine):
            self.emit(cmd.reply())
            return True
        try:
            reply, after = await self._dispatch(cmd)
        except Exception as exc:  # noqa: BLE001 - every command gets one reply, never a crash
            reply, after = cmd.error(_words(exc)), []
        self.emit(reply)
        for obj in after:
            self.emit(obj)
        return cmd.op != "quit"

    async def _dispatch(self, cmd: Command) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        a = cmd.args
        op = cmd.op
        if op == "join":
            return await self._join(cmd, a["channel"])
        if op == "leave":
            return await self._leave(cmd, a["channel"])
        if op == "send":
            ch = a["channel"]
            if not self.card.may_post(ch):
                why = f"this cred posts only on {_listed(self.card.post)} (mint --allow-publish)"
                return cmd.error(f"may not post on #{ch}: {why}"), []
            sent = await self.ep.send_stored(ch, a["text"], mentions=a.get("mentions"))
            return cmd.reply(channel=ch, msgId=sent.message.id, seq=sent.seq), []
        if op == "dm":
            return await self._dm(cmd, a["to"], a["text"])
        if op == "status":
            await self.ep.presence.update(status=a.get("status"), activity=a.get("activity"))
            return cmd.reply(status=self.ep.presence.status, activity=self.ep.presence.activity), []
        if op == "channels":
            return cmd.reply(channels=await self._channels()), []
        if op == "roster":
            return cmd.reply(roster=self._roster()), []
        if op == "health":
            durable = self.ep.durable
            if isinstance(durable, Plane3Agent):
                return cmd.reply(**(await durable.delivery_health()).to_json()), []
            return cmd.reply(lease=None), []
        if op == "quit":
            return cmd.reply(), []
        return cmd.error(f"unknown op {op}"), []

    async def _join(self, cmd: Command, ch: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        if not self.card.may_read(ch):
            why = f"this cred reads only {_listed(self.card.read)} (mint --allow-subscribe)"
            return cmd.error(f"may not read #{ch}: {why}"), []
        try:
            res = await self.ep.join_channel(ch)
        except (JoinFailed, NotJoinable, ProtocolError) as exc:
            return cmd.error(str(exc)), []
        reply = cmd.reply(
            channel=ch,
            joined=res.joined,
            already=True if not res.joined else None,
            durable=res.durable,
            reason=res.reason,
            backfilled=res.backfilled,
        )
        if not res.joined:
            return reply, []
        return reply, [event("joined", channel=ch, durable=res.durable, reason=res.reason)]

    async def _leave(self, cmd: Command, ch: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        was_durable = self.ep.has_durable_membership(ch)
        try:
            left = await self.ep.leave_channel(ch)
        except Exception as exc:  # noqa: BLE001 - fail-closed: nothing changed
            return cmd.error(
                f"leave of #{ch} failed closed, still joined and the durable membership "
                f"unchanged: {_words(exc)}"
            ), []
        if not left:
            return cmd.reply(channel=ch, left=False, note=f"not on #{ch}"), []
        return cmd.reply(channel=ch, left=True, tombstoned=was_durable), [
            event("left", channel=ch, tombstoned=was_durable)
        ]

    async def _dm(self, cmd: Command, to: str, text: str) -> tuple[dict[str, Any], list[Any]]:
        try:
            peer = self.ep.resolve_peer(to)
            target, name = peer.card.id, peer.card.name
        except AmbiguousPeerError as exc:
            return cmd.error(str(exc)), []
        except PeerNotFound:
            if not _looks_like_id(to):
                return cmd.error(
                    f'no peer "{to}" on the roster; use a name seen on it or an id'
                ), []
            target, name = to, None
        sent = await self.ep.send_dm_stored(target, text)
        return cmd.reply(to=target, toName=name, msgId=sent.message.id, seq=sent.seq), []

    async def _channels(self) -> list[dict[str, Any]]:
        rows = []
        for r in await self.ep.list_channels():
            rows.append(
                {
                    "channel": r.channel,
                    "description": r.description,
                    "joined": r.joined,
                    "durable": self.ep.has_durable_membership(r.channel),
                    "deliveryClass": r.delivery_class,
                    "deliveryHealth": r.delivery_health,
                    "durableUnclosed": r.durable_unclosed,
                    "messages": r.messages,
                    "mayRead": self.card.may_read(r.channel),
                    "mayPost": self.card.may_post(r.channel),
                }
            )
        listed = {r["channel"] for r in rows}
        for ch in self.ep.joined_channels():  # joined, but no traffic and no registry key yet
            if ch not in listed:
                rows.append(
                    {
                        "channel": ch,
                        "joined": True,
                        "durable": self.ep.has_durable_membership(ch),
                        "deliveryClass": self.ep.registry.delivery_class(ch),
                        "messages": 0,
                        "mayRead": self.card.may_read(ch),
                        "mayPost": self.card.may_post(ch),
                    }
                )
        return sorted(rows, key=lambda r: r["channel"])

    def _roster(self) -> list[dict[str, Any]]:
        return [
            {
                "id": p.card.id,
                "name": p.card.name,
                "role": p.card.role,
                "kind": p.card.kind,
                "status": p.status,
                "activity": p.activity,
                "self": p.card.id == self.ep.id,
            }
            for p in self.ep.roster_entries()
        ]


def _listed(items: tuple[str, ...] | None) -> str:
    return "[" + ", ".join(items or ()) + "]"


def _looks_like_id(ref: str) -> bool:
    return len(ref) == 56 and ref[0] == "U" and ref.isalnum() and ref.isupper()


def _words(exc: BaseException) -> str:
    if isinstance(exc, PublishFailed):
        return str(exc)
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def stderr_log(text: str) -> None:
    print(f"cotal-tui agent: {text}", file=sys.stderr, flush=True)
