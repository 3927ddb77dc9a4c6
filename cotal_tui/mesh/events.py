"""Typed events an :class:`~cotal_tui.mesh.endpoint.Endpoint` emits, in the order they happen."""

from __future__ import annotations

from dataclasses import dataclass

from cotal_tui.mesh.connection import ConnectionState
from cotal_tui.mesh.messages import Inbound
from cotal_tui.mesh.presence import RosterView
from cotal_tui.mesh.roster import PresenceEvent


@dataclass(frozen=True)
class MessageReceived:
    inbound: Inbound


@dataclass(frozen=True)
class PresenceChanged:
    """A ``join`` / ``update`` / ``offline`` per §6.1 (never for a plain heartbeat)."""

    event: PresenceEvent


@dataclass(frozen=True)
class RosterChanged:
    """The roster's entries changed (including a quiet first sighting of an offline peer)."""


@dataclass(frozen=True)
class RosterViewChanged:
    view: RosterView


@dataclass(frozen=True)
class ConnectionChanged:
    state: ConnectionState


@dataclass(frozen=True)
class ChannelChanged:
    """A channel-registry key changed (``=defaults`` included)."""

    key: str


@dataclass(frozen=True)
class ChannelDropped:
    """The broker refused an already-joined channel; it left the joined set."""

    channel: str
    reason: str


@dataclass(frozen=True)
class EndpointError:
    """Something failed in the background; ``context`` names what was being done."""

    error: Exception
    context: str

    @property
    def message(self) -> str:
        return f"{self.context}: {self.error}"


EndpointEvent = (
    MessageReceived
    | PresenceChanged
    | RosterChanged
    | RosterViewChanged
    | ConnectionChanged
    | ChannelChanged
    | ChannelDropped
    | EndpointError
)
