"""Console commands: typed objects, the `:` line parser, gating, and the wording of outcomes.

A key, a `:` line or a palette entry all become one of the command objects below; `Dispatcher`
checks the gate (read-only, no endpoint), calls the `Commands` protocol and words the result
exactly as the reference words it (PROTOCOL §5.9 `cotal_join` replies, "delivery not confirmed").
Failures never raise out of `Dispatcher.run`: they come back as a `CommandResult` to show.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from cotal_tui.console.snapshot import RosterRow, Snapshot
from cotal_tui.console.source import Commands, PeerStatus, PendingOperation


@dataclass(frozen=True, slots=True)
class Join:
    channel: str


@dataclass(frozen=True, slots=True)
class Leave:
    channel: str


@dataclass(frozen=True, slots=True)
class Post:
    channel: str
    text: str


@dataclass(frozen=True, slots=True)
class Dm:
    peer: str
    """A name (with or without @) or an instance id, resolved against the roster."""
    text: str


@dataclass(frozen=True, slots=True)
class SetStatus:
    status: PeerStatus


@dataclass(frozen=True, slots=True)
class SetActivity:
    activity: str | None


@dataclass(frozen=True, slots=True)
class RetryNow:
    channel: str
    operation: PendingOperation
    owner: str | None = None
    """Whose retry loop (a Pending row's owner); None for this console's own endpoint."""

    @property
    def label(self) -> str:
        """``join #general``, or ``join #general @ada`` for another agent's loop."""
        return f"{self.operation} #{self.channel}" + (f" @{self.owner}" if self.owner else "")


Command = Join | Leave | Post | Dm | SetStatus | SetActivity | RetryNow

Outcome = Literal["ok", "refused", "failed", "invalid"]


@dataclass(frozen=True, slots=True)
class CommandResult:
    outcome: Outcome
    text: str

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


@dataclass(frozen=True, slots=True)
class Verb:
    name: str
    usage: str
    help: str
    write: bool = True


VERBS: tuple[Verb, ...] = (
    Verb("join", "join <#channel>", "join a channel (durable backstop when the class is durable)"),
    Verb("leave", "leave <#channel>", "leave a channel (fail-closed on a durable membership)"),
    Verb("post", "post [#channel] <text with @mentions>", "post to a channel"),
    Verb("dm", "dm <@peer|id> <text>", "send a direct message to one peer"),
    Verb("status", "status <working|waiting|idle>", "set your own presence status"),
    Verb("activity", "activity [text]", "set (or clear) your own activity line"),
    Verb(
        "retry",
        "retry <join|leave> <#channel> [@owner]",
        "retry a pending join or leave now (@owner: another agent's row, as in the demo)",
    ),
)
VERB_NAMES = {v.name for v in VERBS} | {"msg"}

MENTION = re.compile(r"(?<![\w@])@([^\s@,;:!?()\[\]{}\"']+)")


class CommandParseError(ValueError):
    """A `:` line that does not make a command; the text says what was wrong and the usage."""


def mentions_in(text: str) -> tuple[str, ...]:
    """Lowercased @names in order of first appearance, as the wire's `mentions` carries them."""
    seen: dict[str, None] = {}
    for m in MENTION.finditer(text):
        seen.setdefault(m.group(1).rstrip(".").lower(), None)
    return tuple(seen)


def _channel(token: str) -> str:
    return token[1:] if token.startswith("#") else token


def _usage(verb: str) -> str:
    for v in VERBS:
        if v.name == verb:
            return v.usage
    return verb


def parse_command(line: str, *, default_channel: str | None = None) -> Command:
    """Parse a `:` line (without the colon). Raises CommandParseError with the usage."""
    line = line.strip()
    if line.startswith(":"):
        line = line[1:].lstrip()
    if not line:
        raise CommandParseError("empty command — try: " + ", ".join(v.name for v in VERBS))
    verb, _, rest = line.partition(" ")
    verb = verb.lower()
    rest = rest.strip()
    if verb == "msg":
        verb = "post"
    if verb not in VERB_NAMES:
        raise CommandParseError(
            f"unknown command {verb!r} — known: " + ", ".join(v.name for v in VERBS)
        )
    if verb in ("join", "leave"):
        if not rest or " " in rest:
            raise CommandParseError(f"usage: {_usage(verb)}")
        channel = _channel(rest)
        return Join(channel) if verb == "join" else Leave(channel)
    if verb == "post":
        if rest.startswith("#"):
            target, _, text = rest.partition(" ")
            channel = _channel(target)
        else:
            channel, text = default_channel or "", rest
        text = text.strip()
        if not channel:
            raise CommandParseError(f"no channel given and none selected — usage: {_usage(verb)}")
        if not text:
            raise CommandParseError(f"nothing to post — usage: {_usage(verb)}")
        return Post(channel, text)
    if verb == "dm":
        peer, _, text = rest.partition(" ")
        peer = peer.lstrip("@")
        if not peer or not text.strip():
            raise CommandParseError(f"usage: {_usage(verb)}")
        return Dm(peer, text.strip())
    if verb == "status":
        if rest not in ("working", "waiting", "idle"):
            raise CommandParseError(
                f"status must be working, waiting or idle (offline is what others see when you "
                f"stop) — usage: {_usage(verb)}"
            )
        return SetStatus(rest)  # type: ignore[arg-type]
    if verb == "activity":
        return SetActivity(rest or None)
    # retry: the operation, the channel, and the owner of another agent's row ("@ada")
    parts = rest.split()
    op = parts[0] if parts else ""
    owner = parts[2] if len(parts) == 3 and parts[2].startswith("@") else None
    if op not in ("join", "leave") or len(parts) != (3 if owner else 2) or owner == "@":
        raise CommandParseError(f"usage: {_usage(verb)}")
    return RetryNow(_channel(parts[1]), op, owner[1:] if owner else None)  # type: ignore[arg-type]


class PeerResolutionError(LookupError):
    """A DM target that does not name exactly one peer; the text lists the candidates."""


def resolve_peer(query: str, snapshot: Snapshot) -> RosterRow:
    """PROTOCOL §6.1 resolvePeer: exact id wins; else a case-insensitive name, live preferred."""
    rows = snapshot.roster.rows
    for row in rows:
        if row.id == query:
            return row
    wanted = query.lower()
    named = [r for r in rows if r.name.lower() == wanted]
    live = [r for r in named if r.status != "offline"]
    if len(live) == 1:
        return live[0]
    if len(live) > 1:
        raise PeerResolutionError(_ambiguous(query, live))
    if len(named) == 1:
        return named[0]
    if len(named) > 1:
        raise PeerResolutionError(_ambiguous(query, named))
    view = snapshot.roster.view
    if view != "current":
        raise PeerResolutionError(
            f"cannot verify @{query}: the roster is {view}, so a missing name is not an absence "
            "— wait for the roster or use the peer's id"
        )
    raise PeerResolutionError(f"no peer named @{query} on the roster — check the Roster pane")


def _ambiguous(query: str, rows: list[RosterRow]) -> str:
    cands = ", ".join(
        f"{r.id} ({r.role or r.kind}, {r.status})" for r in sorted(rows, key=lambda r: r.id)
    )
    return f"@{query} is ambiguous ({len(rows)} peers share the name) — use an id: {cands}"


def verb_of(command: Command) -> str:
    return {
        Join: "join",
        Leave: "leave",
        Post: "post",
        Dm: "dm",
        SetStatus: "status",
        SetActivity: "activity",
        RetryNow: "retry",
    }[type(command)]


def _error_text(exc: BaseException) -> str:
    text = str(exc).strip()
    return text or type(exc).__name__


class Dispatcher:
    """Gates and runs commands against a `Commands` implementation; words every outcome."""

    def __init__(self, commands: Commands | None, *, read_only: bool = False) -> None:
        self.commands = commands
        self.read_only = read_only

    def gate(self, verb: str) -> str | None:
        """Why `verb` may not run here, or None when it may."""
        if self.read_only:
            return (
                f"read-only: {verb!r} changes the mesh and this console was started with "
                "--read-only — restart without --read-only to use it"
            )
        if self.commands is None:
            return f"no endpoint: {verb!r} needs a connected endpoint and this console has none"
        return None

    async def run(self, command: Command, snapshot: Snapshot | None) -> CommandResult:
        verb = verb_of(command)
        refusal = self.gate(verb)
        if refusal is not None:
            return CommandResult("refused", refusal)
        assert self.commands is not None
        try:
            return await self._run(command, snapshot)
        except PeerResolutionError as exc:
            return CommandResult("refused", f"dm refused: {exc}")
        except Exception as exc:  # noqa: BLE001 - every failure is shown, never raised into the UI
            return CommandResult("failed", _failure(command, exc))

    async def _run(self, command: Command, snapshot: Snapshot | None) -> CommandResult:
        c = self.commands
        assert c is not None
        match command:
            case Join(channel):
                out = await c.join(channel)
                if not out.joined:
                    return CommandResult("ok", f"Already on #{channel}.")
                if out.delivery_class == "live":
                    return CommandResult("ok", f"Joined #{channel} (live).")
                if out.durable:
                    return CommandResult("ok", f"Joined #{channel} (durable backstop active).")
                reason = out.reason or "durable backstop unavailable"
                return CommandResult(
                    "ok",
                    f"Joined #{channel} (LIVE only — {reason}; messages sent while you're "
                    "offline won't be replayed)",
                )
            case Leave(channel):
                out = await c.leave(channel)
                return CommandResult(
                    "ok", f"Left #{channel}." if out.left else f"Not on #{channel}."
                )
            case Post(channel, text):
                sent = await c.post(channel, text, mentions_in(text))
                seq = f"stored seq {sent.seq}" if sent.seq is not None else "stored"
                return CommandResult("ok", f"Posted to #{channel} ({seq}; delivery not confirmed).")
            case Dm(peer, text):
                if snapshot is None:
                    raise PeerResolutionError(f"cannot verify @{peer}: no roster yet")
                row = resolve_peer(peer, snapshot)
                sent = await c.dm(row.id, text)
                seq = f"stored seq {sent.seq}" if sent.seq is not None else "stored"
                return CommandResult(
                    "ok",
                    f"DM to @{row.name} ({seq}; recipient {row.status} at send; delivery not "
                    "confirmed).",
                )
            case SetStatus(status):
                await c.set_status(status)
                return CommandResult("ok", f"Status set to {status}.")
            case SetActivity(activity):
                await c.set_activity(activity)
                return CommandResult(
                    "ok", f"Activity set to {activity!r}." if activity else "Activity cleared."
                )
            case RetryNow(channel, operation, owner):
                await c.retry_now(channel, operation, owner)
                return CommandResult("ok", f"Retrying {command.label} now.")
        raise TypeError(f"not a console command: {command!r}")


def _failure(command: Command, exc: BaseException) -> str:
    msg = _error_text(exc)
    match command:
        case Join(channel):
            return f"join #{channel} failed: {msg}"
        case Leave(channel):
            return (
                f"leave #{channel} failed: {msg} — nothing changed locally (fail-closed); "
                "try again when the delivery daemon answers"
            )
        case Post(channel, _):
            return f"post to #{channel} failed: {msg}"
        case Dm(peer, _):
            return f"dm to @{peer} failed: {msg}"
        case RetryNow():
            return f"retry {command.label} failed: {msg}"
    return f"{verb_of(command)} failed: {msg}"
