"""Resume the durable memberships an agent already holds (shared by `agent` and the console).

PROTOCOL §5.7 re-establishes only the boot channels at start. A channel joined at runtime in an
earlier run keeps its members record (the daemon keeps routing copies into ``dlv_``), yet the
reference agent neither shows it joined nor can leave it without knowing it. Here every
non-tombstoned membership ``listMemberships`` returns is joined live again through the ordinary
runtime join: its ``durableJoin`` is idempotent for an open, activated record (same generation),
so the channel reads joined (durable) and its leave tombstones it.
"""

from __future__ import annotations

from dataclasses import dataclass

from cotal_tui.mesh.control import NoResponders
from cotal_tui.mesh.endpoint import Endpoint, JoinResult
from cotal_tui.mesh.plane3_agent import Plane3Agent


@dataclass(frozen=True)
class Resumed:
    channel: str
    result: JoinResult | None = None
    error: str | None = None


async def resume_memberships(ep: Endpoint) -> list[Resumed]:
    """Join every durable membership of ``ep`` not joined yet; nothing without a daemon."""
    durable = ep.durable
    if not isinstance(durable, Plane3Agent):
        return []
    try:
        rows = await durable.list_memberships()
    except NoResponders:
        return []  # no daemon now: the boot reconcile loop covers the boot channels
    except Exception as exc:  # noqa: BLE001 - reported by the caller
        return [Resumed("", error=f"listing durable memberships: {exc}")]
    out = []
    for row in rows:
        ch = row.get("channel")
        if not isinstance(ch, str) or ch in ep.joined_channels():
            continue
        try:
            out.append(Resumed(ch, await ep.join_channel(ch)))
        except Exception as exc:  # noqa: BLE001 - e.g. no longer within the read ACL
            out.append(Resumed(ch, error=str(exc) or type(exc).__name__))
    return out
