"""The seam for Plane-3 durable membership (the agent side of §5.7).

The endpoint calls a :class:`DurableMembership` at fixed points and never decides durability
itself:

- ``on_connected(first, boot_channels)`` after every (re)connect and bind;
- ``on_join(channel)`` after a runtime join of a durable-class channel is confirmed live;
- ``before_leave(channel)`` before a leave changes anything: raising aborts the leave
  (fail-closed);
- ``on_refused(channel)`` when the broker refuses an already-joined channel late;
- ``stop()`` on shutdown.

Readers (``status``, the console) ask ``pending_boot_joins()``, ``pending_leaves()``,
``has_membership(channel)`` and ``generation(channel)``.

:class:`LiveOnly` is the open-mode implementation: no daemon, so every durable-class join is
reported as live with the reference's reason wording, and there is nothing to tombstone. With
creds the endpoint defaults to :class:`~cotal_tui.mesh.plane3_agent.Plane3Agent` (the real
durable membership); ``Endpoint(durable=factory)`` overrides either default.

The dependency runs one way: ``endpoint → plane3_agent → durable``. An implementation sees the
endpoint only through :class:`DurableHost` (what it may use of the endpoint that holds it), so
neither this module nor ``plane3_agent`` imports ``endpoint``, not even for a type.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from cotal_tui.mesh.channels import ChannelRegistry
from cotal_tui.mesh.lease import LeaseRead

PendingOperation = Literal["durableJoin", "durableLeave"]

OPEN_MODE_REASON = "durable backstop unavailable (no delivery daemon in open mode)"


@dataclass(frozen=True)
class JoinDurability:
    durable: bool
    reason: str | None = None
    generation: int | None = None


@dataclass(frozen=True)
class PendingOp:
    """One entry of the boot-join reconcile or the leave-retry queue."""

    channel: str
    operation: PendingOperation
    attempt: int
    next_retry_at: float | None = None
    last_error: str | None = None


class DurableMembership(Protocol):
    async def on_connected(self, first: bool, boot_channels: list[str]) -> None: ...

    async def on_join(self, channel: str) -> JoinDurability: ...

    async def before_leave(self, channel: str) -> None: ...

    def on_refused(self, channel: str) -> None: ...

    async def stop(self) -> None: ...

    def pending_boot_joins(self) -> list[PendingOp]: ...

    def pending_leaves(self) -> list[PendingOp]: ...

    def has_membership(self, channel: str) -> bool: ...

    def generation(self, channel: str) -> int | None:
        """The join generation of our durable membership of ``channel``; None when there is none."""
        ...


class DurableHost(Protocol):
    """What a durable membership may use of the endpoint that holds it (``Endpoint`` is one)."""

    @property
    def space(self) -> str: ...

    @property
    def id(self) -> str: ...

    @property
    def creds(self) -> str | None: ...

    @property
    def registry(self) -> ChannelRegistry: ...

    @property
    def connected(self) -> bool: ...

    def joined_channels(self) -> list[str]: ...

    def report_error(self, error: Exception, context: str) -> None: ...

    async def read_lease(self, timeout: float = 2.5) -> LeaseRead: ...

    async def request_delivery(
        self, op: str, args: dict[str, Any] | None = None, *, timeout: float = 5.0
    ) -> Any: ...


DurableFactory = Callable[[DurableHost], DurableMembership]


class LiveOnly:
    """No Plane-3 backstop: joins are live, leaves have nothing to close."""

    def __init__(self, endpoint: DurableHost | None = None, reason: str = OPEN_MODE_REASON) -> None:
        self.endpoint = endpoint
        self.reason = reason

    async def on_connected(self, first: bool, boot_channels: list[str]) -> None:
        return None

    async def on_join(self, channel: str) -> JoinDurability:
        return JoinDurability(False, self.reason)

    async def before_leave(self, channel: str) -> None:
        return None

    def on_refused(self, channel: str) -> None:
        return None

    async def stop(self) -> None:
        return None

    def pending_boot_joins(self) -> list[PendingOp]:
        return []

    def pending_leaves(self) -> list[PendingOp]:
        return []

    def has_membership(self, channel: str) -> bool:
        return False

    def generation(self, channel: str) -> int | None:
        return None
