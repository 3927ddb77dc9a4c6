"""One NATS connection per identity, its typed state stream, and the re-arm registry.

nats-py reports the life of a connection through four callbacks; this module turns them into
:data:`ConnectionState` values (``Connected`` / ``Reconnecting`` / ``Closed``) that listeners
receive in order. Everything that the broker forgets on a restart (KV watchers, core
subscriptions, pull pumps) registers an async ``rearm`` callback here; on every reconnect the
callbacks run in registration order in one task owned by the connection (PROTOCOL.md §10.10).

Permission refusals arrive only through ``error_cb`` (§10.9) as lower-cased text naming the
subject; :meth:`Connection.on_refusal` routes them to whoever owns that subscription.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext

from cotal_tui.mesh.tasks import cancel_and_wait
from cotal_tui.protocol.subjects import token

log = logging.getLogger(__name__)


class ConnectionError_(Exception):  # noqa: N801 - avoid shadowing the builtin
    """Base of connection failures."""


class Unreachable(ConnectionError_):
    """The broker could not be reached within the connect timeout."""


class CredsRefused(ConnectionError_):
    """The broker answered and refused the credential (or its absence): Authorization Violation."""


class CredsUnreadable(ConnectionError_):
    """The creds file given does not exist or cannot be read."""


class ConnectionClosed(ConnectionError_):
    """An operation needs a connection that is closed (stopped, or never started)."""


@dataclass(frozen=True)
class Connected:
    server: str
    first: bool
    at: float
    kind: Literal["connected"] = "connected"


@dataclass(frozen=True)
class Reconnecting:
    since: float
    attempt: int
    last_error: str | None = None
    kind: Literal["reconnecting"] = "reconnecting"


@dataclass(frozen=True)
class Closed:
    reason: str
    at: float
    kind: Literal["closed"] = "closed"


ConnectionState = Connected | Reconnecting | Closed


@dataclass(frozen=True)
class PermissionRefusal:
    """A broker refusal parsed from ``error_cb``; ``subject`` is lower-cased (nats-py does that)."""

    operation: Literal["subscription", "publish"]
    subject: str
    text: str


_REFUSAL = re.compile(r'permissions violation for (subscription|publish) to "([^"]*)"', re.I)


def parse_refusal(text: str) -> PermissionRefusal | None:
    m = _REFUSAL.search(text)
    if not m:
        return None
    op = m.group(1).lower()
    return PermissionRefusal(op, m.group(2).lower(), text)  # type: ignore[arg-type]


def server_list(servers: str | list[str]) -> list[str]:
    """A cluster's URLs as nats-py's server list: ``"nats://a:4222,nats://b:4222"`` (what
    ``--server`` takes and ``up --cluster`` prints) or a list. nats-py reconnects to the next
    one when its node goes away (and also learns peers from the server's INFO)."""
    items = servers if isinstance(servers, list) else servers.split(",")
    return [s.strip() for s in items if s.strip()]


def connection_name(name: str) -> str:
    return f"cotal:{name}"


def inbox_prefix(instance_id: str) -> str:
    return f"_INBOX_{token(instance_id)}"


Rearm = Callable[[], Awaitable[None]]
StateListener = Callable[[ConnectionState], None]
ErrorListener = Callable[[Exception], None]
RefusalHandler = Callable[[PermissionRefusal], None]


# How long the broker keeps a KV watch's consumer after its subscriber left (a reconnect within
# it resumes the same consumer). A one-shot reader (`check`, `status`) that may not delete its
# watches on exit uses the short one, so back-to-back runs do not pile them up on the presence
# and registry streams, where the pipeline's consumer-excess rule counts every consumer.
WATCH_INACTIVE_S = 5.0
ONE_SHOT_WATCH_INACTIVE_S = 1.0


@dataclass
class _RearmEntry:
    owner: str
    fn: Rearm


@dataclass
class Connection:
    """A reconnect-forever nats-py client for one identity.

    ``creds`` is a path to a ``.creds`` file (auth mode); None is open mode.
    """

    servers: str | list[str]
    name: str
    instance_id: str
    creds: str | None = None
    connect_timeout: float = 5.0
    reconnect_time_wait: float = 0.5
    js_timeout: float = 5.0
    watch_inactive_s: float = WATCH_INACTIVE_S
    """The inactive threshold of this connection's KV watch consumers (mesh/kv.py)."""
    _nc: Client | None = field(default=None, init=False, repr=False)
    _js: JetStreamContext | None = field(default=None, init=False, repr=False)
    _state: ConnectionState | None = field(default=None, init=False)
    _listeners: list[StateListener] = field(default_factory=list, init=False, repr=False)
    _error_listeners: list[ErrorListener] = field(default_factory=list, init=False, repr=False)
    _rearm: list[_RearmEntry] = field(default_factory=list, init=False, repr=False)
    _refusals: dict[str, RefusalHandler] = field(default_factory=dict, init=False, repr=False)
    _rearm_task: asyncio.Task[None] | None = field(default=None, init=False, repr=False)
    _closing: bool = field(default=False, init=False)
    _last_error: str | None = field(default=None, init=False)
    _generation: int = field(default=0, init=False)
    _info: dict[str, object] = field(default_factory=dict, init=False, repr=False)

    # -- observation -------------------------------------------------------------------------

    @property
    def state(self) -> ConnectionState | None:
        return self._state

    @property
    def is_connected(self) -> bool:
        return isinstance(self._state, Connected) and self._nc is not None and self._nc.is_connected

    @property
    def generation(self) -> int:
        """Bumped on every (re)connect: handles taken under an older generation are stale."""
        return self._generation

    @property
    def nc(self) -> Client:
        if self._nc is None or self._nc.is_closed:
            raise ConnectionClosed(f"connection {connection_name(self.name)} is not open")
        return self._nc

    @property
    def js(self) -> JetStreamContext:
        if self._js is None:
            self._js = self.nc.jetstream(timeout=self.js_timeout)
        return self._js

    def server_info(self) -> dict[str, object]:
        """The connected server's INFO as it stands now: the one sent at (re)connect, updated by
        every INFO the server pushed since (a cluster node pushes one with fewer
        ``connect_urls`` as soon as a route to a peer drops; nats-py keeps only the first).
        Empty when never connected."""
        return dict(self._info)

    def _track_info(self, nc: Client) -> None:
        """Keep :meth:`server_info` current: wrap nats-py's INFO handler (it sees the INFO at
        every (re)connect, ``initial_connection`` True, and every one pushed later)."""
        handler = getattr(nc, "_process_info", None)
        if handler is None:  # another nats-py: server_info() stays empty (callers fall back)
            return

        async def on_info(info: dict[str, object], initial_connection: bool = False) -> None:
            if initial_connection:
                self._info = dict(info)
            else:
                # A pushed INFO leaves out an empty `connect_urls` (no peer routed any more).
                self._info = {**self._info, **info, "connect_urls": info.get("connect_urls") or []}
            await handler(info, initial_connection=initial_connection)

        nc._process_info = on_info  # type: ignore[method-assign]

    @property
    def server_url(self) -> str:
        return self.servers if isinstance(self.servers, str) else ",".join(self.servers)

    def add_state_listener(self, fn: StateListener) -> Callable[[], None]:
        self._listeners.append(fn)
        return lambda: self._listeners.remove(fn) if fn in self._listeners else None

    def add_error_listener(self, fn: ErrorListener) -> Callable[[], None]:
        self._error_listeners.append(fn)
        return lambda: self._error_listeners.remove(fn) if fn in self._error_listeners else None

    def register_rearm(self, owner: str, fn: Rearm) -> Callable[[], None]:
        """Run ``fn`` after every reconnect (in registration order); returns the unregister."""
        entry = _RearmEntry(owner, fn)
        self._rearm.append(entry)
        return lambda: self._rearm.remove(entry) if entry in self._rearm else None

    def on_refusal(self, subject: str, handler: RefusalHandler) -> Callable[[], None]:
        """Route a refusal naming ``subject`` (compared case-insensitively) to ``handler``."""
        key = subject.lower()
        self._refusals[key] = handler
        return lambda: self._refusals.pop(key, None) if self._refusals.get(key) is handler else None

    # -- lifecycle ---------------------------------------------------------------------------

    async def connect(self) -> None:
        """Connect once; raise :class:`Unreachable` if no server answers within the timeout."""
        options: dict[str, object] = {}
        if self.creds is not None:
            if not Path(self.creds).is_file():
                raise CredsUnreadable(
                    f"creds file {self.creds} does not exist; pass --creds with a .creds file "
                    "minted for this space"
                )
            options["user_credentials"] = self.creds
        nc = Client()
        self._track_info(nc)
        self._closing = False
        first_failure: asyncio.Future[Exception] = asyncio.get_running_loop().create_future()
        # A cluster's server list: a closed port is one node down, and nats-py goes on to the
        # next URL; the attempt ends only when every URL has failed that way once.
        fast_failures: list[Exception] = []
        urls = max(1, len(server_list(self.servers)))

        async def on_connect_error(exc: Exception) -> None:
            # nats-py retries a failed first connect until the timeout; a refused credential or
            # a closed port will not change in that time, so the first one ends the attempt
            # (with several URLs, one such failure on each).
            if not first_failure.done() and _fails_fast(exc):
                fast_failures.append(exc)
                if len(fast_failures) >= urls:
                    first_failure.set_result(exc)
            await self._on_error(exc)

        connecting = asyncio.ensure_future(
            asyncio.wait_for(
                nc.connect(
                    server_list(self.servers),
                    name=connection_name(self.name),
                    inbox_prefix=inbox_prefix(self.instance_id),
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=self.reconnect_time_wait,
                    connect_timeout=max(1, int(self.connect_timeout)),
                    error_cb=on_connect_error,
                    disconnected_cb=self._on_disconnected,
                    reconnected_cb=self._on_reconnected,
                    closed_cb=self._on_closed,
                    **options,  # type: ignore[arg-type]
                ),
                timeout=self.connect_timeout,
            )
        )
        try:
            await asyncio.wait({connecting, first_failure}, return_when=asyncio.FIRST_COMPLETED)
            if first_failure.done() and not connecting.done():
                await cancel_and_wait([connecting], timeout=2.0)
                raise first_failure.result()
            first_failure.cancel()
            await connecting
        except asyncio.CancelledError:
            connecting.cancel()
            await close_client(nc, 2.0, connection_name(self.name))
            raise
        except (TimeoutError, OSError, nats.errors.Error) as exc:
            await close_client(nc, 2.0, connection_name(self.name))
            detail = self._last_error or str(exc) or type(exc).__name__
            if _is_auth_refusal(exc) or _is_auth_refusal(detail):
                who = f"the credential {self.creds}" if self.creds else "a connection without creds"
                raise CredsRefused(
                    f"NATS at {self.server_url} refused {who} (Authorization Violation); pass "
                    "--creds with a .creds minted by this server's trust chain (`cotal-tui mint "
                    "NAME` with the --state-dir `up` uses)"
                ) from exc
            if _is_reset(exc) or "reset by peer" in detail.lower():
                raise CredsRefused(
                    f"NATS at {self.server_url} answered, then closed the connection ({detail}): "
                    "an auth-mode server does this to a credential it refuses"
                    + ("" if self.creds else " and to a connection without one; pass --creds")
                ) from exc
            raise Unreachable(
                f"cannot reach NATS at {self.server_url} ({detail}); is the server running? "
                "Start one with `cotal-tui up`"
            ) from exc
        self._nc = nc
        self._js = None
        self._generation += 1
        self._set_state(
            Connected(nc.connected_url.netloc if nc.connected_url else "", True, _now())
        )

    async def close(self, timeout: float = 5.0) -> None:
        """Stop re-arming and close; never hangs longer than about ``timeout`` (no drain,
        §10.13), even when nats-py's close does not finish or the caller is cancelled: see
        :func:`close_client`. The state ends ``Closed`` either way."""
        self._closing = True
        rearm, self._rearm_task = self._rearm_task, None
        nc, self._nc = self._nc, None
        self._js = None
        try:
            await cancel_and_wait([rearm], timeout=min(2.0, timeout))
            if nc is not None and not nc.is_closed:
                await close_client(nc, timeout, connection_name(self.name))
        except asyncio.CancelledError:
            if nc is not None and not nc.is_closed:
                abort_transport(nc)
            raise
        finally:
            if not isinstance(self._state, Closed):
                self._set_state(Closed("stopped", _now()))

    # -- nats-py callbacks -------------------------------------------------------------------

    async def _on_error(self, exc: Exception) -> None:
        text = str(exc) or type(exc).__name__
        self._last_error = text
        refusal = parse_refusal(text)
        if refusal is not None:
            handler = self._refusals.get(refusal.subject)
            if handler is not None:
                try:
                    handler(refusal)
                except Exception as hexc:  # noqa: BLE001 - a handler bug must not kill the client
                    self._emit_error(hexc)
                return
            self._emit_error(PermissionDenied(refusal))
            return
        if isinstance(self._state, Reconnecting):
            st = self._state
            self._set_state(Reconnecting(st.since, st.attempt + 1, text))
            return
        self._emit_error(TransportError(text))

    async def _on_disconnected(self) -> None:
        if self._closing:
            return
        if not isinstance(self._state, Reconnecting):
            self._set_state(Reconnecting(_now(), 0, self._last_error))

    async def _on_reconnected(self) -> None:
        if self._closing:
            return
        self._generation += 1
        self._js = None  # JetStream/KV handles from the old connection are not reused
        nc = self._nc
        url = nc.connected_url.netloc if nc is not None and nc.connected_url else ""
        self._set_state(Connected(url, False, _now()))
        if self._rearm_task is not None:
            self._rearm_task.cancel()
        self._rearm_task = asyncio.get_running_loop().create_task(
            self._run_rearm(), name=f"rearm:{self.name}"
        )

    async def _on_closed(self) -> None:
        if not isinstance(self._state, Closed):
            self._set_state(Closed("stopped" if self._closing else "connection closed", _now()))

    async def _run_rearm(self) -> None:
        for entry in list(self._rearm):
            if self._closing:
                return
            try:
                await entry.fn()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - reported, next owner still re-armed
                self._emit_error(RearmFailed(entry.owner, exc))

    # -- helpers -----------------------------------------------------------------------------

    def _set_state(self, state: ConnectionState) -> None:
        self._state = state
        for fn in list(self._listeners):
            try:
                fn(state)
            except Exception as exc:  # noqa: BLE001
                log.exception("connection state listener failed: %r", exc)

    def _emit_error(self, exc: Exception) -> None:
        for fn in list(self._error_listeners):
            try:
                fn(exc)
            except Exception:  # noqa: BLE001
                log.exception("connection error listener failed")


class PermissionDenied(ConnectionError_):
    """The broker refused an operation and no owner claimed the refusal."""

    def __init__(self, refusal: PermissionRefusal) -> None:
        super().__init__(
            f"broker refused {refusal.operation} to {refusal.subject!r}: the credential in use "
            "does not allow it"
        )
        self.refusal = refusal


class TransportError(ConnectionError_):
    """An asynchronous client error that is not a permission refusal."""


class RearmFailed(ConnectionError_):
    def __init__(self, owner: str, cause: Exception) -> None:
        super().__init__(f"re-arming {owner} after reconnect failed: {cause}")
        self.owner = owner
        self.cause = cause


# Close tasks that outlived their deadline: kept referenced so they are not collected mid-await.
_abandoned: set[asyncio.Task[None]] = set()


async def close_client(nc: Client, timeout: float, label: str) -> bool:
    """Close a nats-py client, bounded and cancellation-safe; True when it closed in time.

    ``Client.close`` cannot be trusted to end: it catches ``CancelledError`` while it waits for
    its reconnect task, and it awaits the socket's flush and ``wait_closed``, which never return
    when the peer stops reading. On Python 3.11 ``asyncio.wait_for`` waits for a timed-out inner
    task to really finish, so ``wait_for(nc.close(), t)`` can hang forever. Here the close runs
    in its own task that is only watched (never awaited unboundedly): past ``timeout`` the
    socket is aborted (which unblocks the flush and ``wait_closed``), the task is cancelled and
    given one more second, and then abandoned with a logged note. If the caller is cancelled,
    the socket is aborted and the cancellation propagates."""
    loop = asyncio.get_running_loop()
    closer = loop.create_task(nc.close(), name=f"nats-close:{label}")
    try:
        done, _ = await asyncio.wait({closer}, timeout=timeout)
    except asyncio.CancelledError:
        abort_transport(nc)
        _abandon(closer)
        raise
    if done:
        _log_close_error(closer, label)
        return True
    log.warning("closing %s took over %.1fs; aborting its socket", label, timeout)
    abort_transport(nc)
    if not await cancel_and_wait([closer], timeout=1.0):
        _abandon(closer)
    else:
        _log_close_error(closer, label)
    return False


def abort_transport(nc: Client) -> None:
    """Drop the client's socket now (no flush): whatever awaits it (a flush, ``wait_closed``)
    gets woken. Best effort, never raises; nats-py keeps the socket in private attributes."""
    transport = getattr(nc, "_transport", None)
    writer = getattr(transport, "_io_writer", None)
    raw = getattr(writer, "transport", None)
    try:
        if raw is not None:
            raw.abort()
        elif transport is not None:
            transport.close()
    except Exception as exc:  # noqa: BLE001 - aborting a socket that is already gone
        log.debug("aborting the socket failed: %r", exc)


def _abandon(task: asyncio.Task[None]) -> None:
    if task.done():
        return
    _abandoned.add(task)
    task.add_done_callback(_abandoned.discard)
    task.add_done_callback(lambda t: None if t.cancelled() else t.exception())


def _log_close_error(task: asyncio.Task[None], label: str) -> None:
    exc = None if task.cancelled() else task.exception()
    if exc is not None:
        log.debug("close of %s did not finish cleanly: %r", label, exc)


def _is_auth_refusal(exc: object) -> bool:
    if isinstance(exc, nats.errors.AuthorizationError):
        return True
    text = str(exc).lower()
    return "authorization violation" in text or "authentication" in text


def _is_reset(exc: object) -> bool:
    return isinstance(exc, ConnectionResetError)


def _fails_fast(exc: Exception) -> bool:
    """A first-connect error that retrying within the timeout will not cure."""
    return _is_auth_refusal(exc) or isinstance(exc, ConnectionRefusedError | ConnectionResetError)


def _now() -> float:
    return time.time()
