"""`ConsoleSession`: the live pieces behind a console, started and stopped by one owner.

It resolves where to connect (an explicit `--server`, else the space's embedded server on
127.0.0.1:4222, started here when nothing answers), builds the endpoint and its `MeshSource`,
and optionally hosts the delivery daemon in the same event loop. Starting never raises for a
broker that is down: the session keeps retrying and the source reports the link as unreachable
(the console shows it; `check` reports it). With `watch`, it also owns the `ConsoleWatcher` that
applies edits of the console's config file and creds file live (console/watch.py); notices and
theme switches go through `session.hooks`, which the app or the plain stream binds.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from cotal_tui.agent.identity import load_cred_card
from cotal_tui.agent.membership import Resumed, resume_memberships
from cotal_tui.console.adapter import MeshSource
from cotal_tui.console.commands import CommandResult, Dispatcher, Join, Leave
from cotal_tui.console.source import ConnectionInput
from cotal_tui.console.watch import ConsoleWatcher, LiveHooks, WatchedConfig
from cotal_tui.delivery.daemon import DaemonError, DeliveryDaemon
from cotal_tui.delivery.stages import default_stages
from cotal_tui.mesh.connection import (
    ONE_SHOT_WATCH_INACTIVE_S,
    WATCH_INACTIVE_S,
    Connection,
    ConnectionError_,
)
from cotal_tui.mesh.creds_claims import may_publish
from cotal_tui.mesh.durable import LiveOnly
from cotal_tui.mesh.endpoint import Endpoint, creds_identity
from cotal_tui.mesh.failures import classify
from cotal_tui.mesh.lease import LeaseHeld
from cotal_tui.mesh.plane3_agent import Plane3Agent
from cotal_tui.protocol.cred_card import CredCard
from cotal_tui.protocol.names import dm_durable, dm_stream, kv_subject, presence_bucket
from cotal_tui.protocol.subjects import delivery_request_subject, token
from cotal_tui.server.holder_file import HolderFile
from cotal_tui.server.stale_lease import HolderBusy, claim_holder, start_daemon

if TYPE_CHECKING:
    from cotal_tui.server.auth import SpaceAuth

DEFAULT_URL = "nats://127.0.0.1:4222"
RETRY_START_S = 2.0
STARTER_STOP_S = 5.0
"""How long `stop` waits for a cancelled start task before going on without it."""


@dataclass
class SessionOptions:
    server: str | None = None
    space: str = "main"
    creds: str | None = None
    name: str = "operator"
    role: str | None = None
    """A role binds svc_<role>: only give one the credential is provisioned for."""
    channels: list[str] = field(default_factory=list)
    daemon: bool = False
    daemon_creds: str | None = None
    read_only: bool = False
    state_dir: str = ".cotal"
    observer: bool = False
    """No presence, no consumers (the `check` command)."""
    one_shot: bool = False
    """A reader that exits after one look (`check`): its KV watches lapse soon after it leaves
    (mesh/connection.py ``ONE_SHOT_WATCH_INACTIVE_S``) when its cred may not delete them."""
    connect_timeout: float = 5.0
    embedded_port: int = 4222
    """Where the space's own server listens when no --server is given."""
    state_server: bool = False
    """``server`` is the one `up` on ``state_dir`` recorded (a local cluster, or `up --server`'s
    list), not a flag: the state dir's trust chain supplies the console's identity, as it does
    for the embedded server."""
    watch: bool = False
    """Watch the creds file (and `config`) and apply edits live (console/watch.py)."""
    config: WatchedConfig | None = None
    """The console's config file and what of it is in force (the console command sets it)."""


def answers(url: str, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections at a nats:// URL."""
    parsed = urlparse(url)
    try:
        with socket.create_connection(
            (parsed.hostname or "127.0.0.1", parsed.port or 4222), timeout
        ):
            return True
    except OSError:
        return False


class SourceDown(MeshSource):
    """A MeshSource whose endpoint has not connected yet: says why, instead of 'connecting'."""

    start_error: str | None = None
    start_kind: str | None = None
    """The failure's kind in the one taxonomy (mesh/failures.py): unreachable, refused
    credentials, wrong space, permission, …"""
    start_unreachable: bool = True
    """False when the broker answered but binding failed (permissions, space not provisioned)."""

    def connection(self) -> ConnectionInput:
        if self.start_error and not self.ep.connected:
            state = "unreachable" if self.start_unreachable else "closed"
            kind = (self.start_kind or "").replace("-", " ")
            text = f"{kind}: {self.start_error}" if kind and not self.start_unreachable else None
            return ConnectionInput(state, last_error=text or self.start_error)
        return super().connection()


class ConsoleSession:
    """Owns: the endpoint, the source's poller, the optional daemon and embedded server."""

    def __init__(self, options: SessionOptions) -> None:
        self.options = options
        self.local = None
        self.server_url = options.server or f"nats://127.0.0.1:{options.embedded_port}"
        self.creds = options.creds
        self.daemon: DeliveryDaemon | None = None
        self.daemon_conn: Connection | None = None
        self.daemon_holder: HolderFile | None = None
        self.notes: list[str] = []
        self._starter: asyncio.Task[None] | None = None
        self._prepared = False
        self.daemon_creds_default: str | None = None
        self.hooks = LiveHooks()
        """Where live-edit notices and theme switches land (the app or the plain stream)."""
        self.watcher: ConsoleWatcher | None = None
        self.agent_card = self._agent_card()
        """The card of the agent cred given with --creds: the console then *is* that agent."""
        card = self.agent_card
        if card is not None and card.name and options.name not in ("operator", card.name):
            self.notes.append(f"--name {options.name} ignored: the cred names this agent "
                              f"{card.name}")  # fmt: skip
        self.resumed: list[Resumed] = []
        self.ep = self._endpoint()
        self.source = SourceDown(self.ep, server=self.server_url)
        self.source.agent_card = self.agent_card

    def _agent_card(self) -> CredCard | None:
        o = self.options
        if o.creds is None or o.observer:
            return None
        try:
            card = load_cred_card(o.creds, o.space)
        except ValueError:
            return None  # unreadable: the connect says so
        return card if card.is_agent else None

    def _endpoint(self) -> Endpoint:
        o = self.options
        observer = o.observer or o.read_only or not self._may_consume()
        card = self.agent_card
        name, role, kind, channels = o.name, o.role, "endpoint", list(o.channels)
        if card is not None:  # name/role/boot channels from the cred; --name only without one
            name = card.name or o.name
            role = card.role or o.role
            kind = "agent"
            channels = list(dict.fromkeys([*card.boot, *o.channels]))
        return Endpoint(
            self.server_url,
            o.space,
            name=name,
            role=role,
            kind=kind,
            creds=self.creds,
            channels=channels,
            register_presence=not observer,
            consume=not observer,
            create_space=False,
            durable=self._durable(observer),
            connect_timeout=o.connect_timeout,
            watch_inactive_s=ONE_SHOT_WATCH_INACTIVE_S if o.one_shot else WATCH_INACTIVE_S,
        )

    def _identity(self) -> str | None:
        if self.creds is None:
            return None
        try:
            return creds_identity(self.creds)
        except (OSError, ValueError, KeyError, IndexError):
            return None

    def _may_consume(self) -> bool:
        """Whether the credential may be a participant: write its own presence and bind its own
        direct-message consumer. An observer or admin cred may not: the console then runs as
        an observer, never looping on (or waiting out) what the broker will refuse."""
        ident = self._identity()
        if ident is None:
            return True
        space = self.options.space
        presence = kv_subject(presence_bucket(space), token(ident))
        dm = f"$JS.API.CONSUMER.INFO.{dm_stream(space)}.{dm_durable(ident)}"
        return may_publish(self.creds, presence) and may_publish(self.creds, dm)

    def _durable(self, observer: bool) -> type[Plane3Agent] | type[LiveOnly] | None:
        """Plane-3 durable membership only for a credential that may ask the daemon
        (ctl.delivery); anything else is live only, so no request waits out its timeout."""
        if self.creds is None:
            return None
        ident = self._identity()
        if observer or ident is None:
            return LiveOnly
        subject = delivery_request_subject(self.options.space, ident)
        return Plane3Agent if may_publish(self.creds, subject) else LiveOnly

    async def prepare(self) -> None:
        """Before starting: with no --server and nothing listening, start the embedded server.

        Idempotent: `start()` calls it again harmlessly."""
        if self._prepared:
            return
        self._prepared = True
        o = self.options
        if o.server is None and not answers(self.server_url):
            from cotal_tui.server.local import start_local_space

            self.local = await start_local_space(
                o.space, state_dir=o.state_dir, port=o.embedded_port
            )
            self.notes.append(f"started the embedded server of {o.space!r} at {self.local.url}")
        if self.creds is None and (o.server is None or o.state_server):
            await self._embedded_identity()
        self.ep = self._endpoint()
        self.source.ep = self.ep
        self.source.mode = "auth" if self.creds else "open"
        self._name_delivery_identities()
        self.source.server = self.server_url

    def _name_delivery_identities(self) -> None:
        """Let the lease pane name the daemon `up` runs on this state dir (its delivery cred),
        without minting anything."""
        o = self.options
        path = Path(o.state_dir) / "auth" / f"delivery.{o.space}.creds"
        if not path.is_file():
            return
        with contextlib.suppress(OSError, ValueError, KeyError, IndexError):
            ident = creds_identity(str(path))
            self.source.up_daemon_id = ident
            self.source.known_holders[ident] = (
                f"the in-process daemon of cotal-tui up on {o.state_dir}"
            )

    async def _embedded_identity(self) -> None:
        """On the space's own server: act as the provisioned operator named --name (an
        ``operator`` cred minted once into <state-dir>/<name>.creds: an agent free to read and
        post any channel that may also read the pipeline's state, never the allow-all manager),
        so joins get a real durable backstop. An existing cred at that path (an agent cred from
        before the operator profile) is used as it is; the header names its profile. An
        in-process daemon (--daemon) runs as the space's delivery cred when the state dir has
        one (minted again for the same key when it lacks a grant, as `up` does), and only
        otherwise as the allow-all manager cred."""
        from cotal_tui.server.auth import AuthNotFound, load_space_auth
        from cotal_tui.server.mint import MintError, mint

        o = self.options
        try:
            auth = load_space_auth(o.state_dir, o.space)
            manager = auth.manager_creds_path()
        except (AuthNotFound, OSError, ValueError):
            self.notes.append(f"no trust chain for {o.space!r} under {o.state_dir}: open mode")
            return
        delivery = manager.parent / f"delivery.{token(o.space)}.creds"
        if delivery.exists():
            self.daemon_creds_default = str(delivery)
            if o.daemon and not o.daemon_creds:
                self._regrant_delivery(auth, delivery)
        elif manager.exists():
            self.daemon_creds_default = str(manager)
        mine = Path(o.state_dir) / f"{o.name}.creds"
        if not mine.exists():
            try:
                await mint(
                    o.name,
                    profile="operator",
                    space=o.space,
                    state_dir=o.state_dir,
                    server=self.server_url,
                    subscribe=o.channels or None,
                )
                self.notes.append(
                    f"minted {mine} (an operator: reads and posts any channel, reads the "
                    "pipeline's state, never another agent's direct messages)"
                )
            except (MintError, OSError, ValueError) as exc:
                # Never the allow-all manager for the console: it is the daemon's fallback only.
                self.notes.append(
                    f"could not mint {mine} ({exc}); pass --creds FILE (e.g. `cotal-tui mint "
                    f"{o.name} --profile operator`)"
                )
                return
        self.creds = str(mine)

    def _regrant_delivery(self, auth: SpaceAuth, path: Path) -> None:
        """The state dir's delivery cred (minted by `up`, shared with it) as `up` keeps it: one
        this trust chain minted before the profile gained a grant is minted again for the same
        key, so the in-process daemon can count what a dead daemon left below its floor."""
        try:
            lacked = auth.regrant_delivery(path)
        except OSError as exc:
            self.notes.append(f"could not re-mint {path} with the delivery profile's grants: {exc}")
            return
        if lacked:
            self.notes.append(
                f"re-minted {path} for the same key: it lacked {', '.join(lacked)} (granted to "
                "the delivery profile since it was minted)"
            )

    async def start(self, *, wait: bool = False) -> None:
        """Start (retrying in the background until connected); `wait` blocks until then."""
        await self.prepare()
        self._start_watch()
        self._starter = asyncio.get_running_loop().create_task(
            self._start_loop(), name="console-session-start"
        )
        if wait:
            await asyncio.shield(self._starter)

    async def _start_loop(self) -> None:
        while True:
            try:
                self.source.listen()
                await self.ep.start()
                break
            except Exception as exc:  # noqa: BLE001 - e.g. the space is not provisioned
                failure = classify(exc, server=self.server_url, space=self.options.space)
                self.source.start_error = failure.text
                self.source.start_kind = failure.kind
                self.source.start_unreachable = failure.kind == "unreachable"
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.ep.stop(graceful=False), 3.0)
            await asyncio.sleep(RETRY_START_S)
            self.ep = self._endpoint()
            self.source.ep = self.ep
        self.source.start_error = None
        await self.source.start()
        if self.agent_card is not None:
            await self._resume_memberships()
        if self.options.daemon:
            await self._start_daemon()

    async def _resume_memberships(self) -> None:
        """As an agent: the durable memberships held from an earlier run are joined again and
        read joined (durable), so they can be seen and left (agent/membership.py)."""
        self.resumed = await resume_memberships(self.ep)
        errors = [r.error for r in self.resumed if r.error]
        if errors:
            self.source.last_error = "; ".join(errors)
        self.source.poke()

    async def _start_daemon(self) -> None:
        creds = self.options.daemon_creds or self.daemon_creds_default or self.creds
        daemon_id = creds_identity(creds) if creds else f"console-delivery-{uuid.uuid4()}"
        conn = Connection(self.server_url, "delivery", daemon_id, creds=creds)
        try:
            await conn.connect()
        except ConnectionError_ as exc:
            self.source.daemon_refused = f"the daemon could not connect: {exc}"
            return
        self.daemon_conn = conn  # closed by stop() even if it is cancelled while waiting
        holder = self._daemon_holder(daemon_id)
        try:
            claim_holder(holder)
        except (HolderBusy, OSError) as exc:
            self.source.daemon_refused = f"{exc} — running as a console only"
            await conn.close()
            return
        daemon = DeliveryDaemon(
            conn,
            self.options.space,
            daemon_id,
            on_lease=holder.record if holder is not None else None,
            stages=default_stages(),
            stage_stderr=subprocess.DEVNULL,  # a stage's stderr must not draw over the screen
        )

        def waiting(text: str) -> None:
            self.source.daemon_refused = text

        try:
            await start_daemon(daemon, holder, waiting, wait=True, countdown_every_s=1.0)
        except LeaseHeld as exc:
            self.source.daemon_refused = f"{exc} — running as a console only"
            await conn.close()
            return
        except DaemonError as exc:
            self.source.daemon_refused = f"{type(exc).__name__}: {exc}"
            await conn.close()
            return
        self.source.daemon_refused = None
        self.daemon = daemon
        self.source.delivery_daemon = daemon
        self.source.progress_via = (conn, creds)  # its cred reads the pipeline's progress
        self.source.known_holders[daemon_id] = "this console's in-process daemon"
        if self.source.up_daemon_id == daemon_id:
            self.source.up_daemon_id = None  # the same delivery cred: this console holds it now

    def _daemon_holder(self, daemon_id: str) -> HolderFile | None:
        """The holder file proving a stale lease of ours dead (server/holder_file.py)."""
        if self.daemon_holder is None:
            self.daemon_holder = HolderFile.for_daemon(
                self.options.state_dir, self.options.space, daemon_id
            )
        return self.daemon_holder

    # -- live edits (console/watch.py) --------------------------------------------------------

    def _start_watch(self) -> None:
        if not self.options.watch or self.watcher is not None:
            return
        identity = None
        if self.creds is not None:
            with contextlib.suppress(OSError, ValueError, KeyError, IndexError):
                identity = creds_identity(self.creds)
        self.watcher = ConsoleWatcher(
            hooks=self.hooks,
            config=self.options.config,
            creds=Path(self.creds) if self.creds else None,
            identity=identity,
            join=self._live_join,
            leave=self._live_leave,
            reconnect=self.reconnect,
        )
        self.watcher.start()

    def _dispatcher(self) -> Dispatcher:
        return Dispatcher(self.source, read_only=self.options.read_only)

    def _started(self) -> bool:
        return self._starter is not None and self._starter.done()

    async def _live_join(self, channel: str) -> CommandResult:
        if not self._started():
            if channel not in self.options.channels:
                self.options.channels.append(channel)
            return CommandResult("ok", f"#{channel} joins when the endpoint connects")
        return await self._dispatcher().run(Join(channel), None)

    async def _live_leave(self, channel: str) -> CommandResult:
        if not self._started() and channel in self.options.channels:
            self.options.channels.remove(channel)
            return CommandResult("ok", f"#{channel} no longer joined at connect")
        return await self._dispatcher().run(Leave(channel), None)

    async def reconnect(self) -> None:
        """Reconnect the endpoint (and a daemon on the same creds file) so a rewritten creds
        file is used: nats-py re-reads it on every connect. A link that is down or still
        starting is left alone; it reads the file when it connects."""
        conns = [self.ep.conn]
        if self.daemon_conn is not None and self.daemon_conn.creds == self.creds:
            conns.append(self.daemon_conn)
        for conn in conns:
            with contextlib.suppress(Exception):
                await conn.nc.force_reconnect()

    async def stop(self) -> None:
        """Release the lease, go offline, close, stop the embedded server. Never hangs."""
        if self.watcher is not None:
            await self.watcher.stop()
            self.watcher = None
        if self._starter is not None and not self._starter.done():
            self._starter.cancel()
            # bounded: a start step that swallows the cancel (a library's own retry, a shield)
            # must not keep the console from stopping; the rest below still runs
            await asyncio.wait({self._starter}, timeout=STARTER_STOP_S)
            if not self._starter.done():
                self._starter.add_done_callback(_retrieve)
                self.notes.append(
                    f"the start task did not stop within {STARTER_STOP_S:g}s of being cancelled"
                )
        if self.daemon is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.daemon.stop(), 6.0)
        self.source.progress_via = None
        if self.daemon_conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.daemon_conn.close(), 2.0)
        if self.daemon_holder is not None:
            self.daemon_holder.unlock()
        await self.source.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ep.stop(graceful=True), 8.0)
        if self.local is not None:
            self.local.stop()
            self.local = None


def _retrieve(task: asyncio.Task[None]) -> None:
    """Take a late task's outcome, so asyncio does not log it as never retrieved."""
    if not task.cancelled():
        task.exception()
