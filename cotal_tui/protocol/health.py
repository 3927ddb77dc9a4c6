"""The delivery-health surface (§5.9): the verdict table and the rendered wording.

The verdict is a table, not nested ifs: a row is (daemon known, joined, class, lease live,
membership) and every combination not listed has no health value (live class, not joined, or
no daemon known). There is no "live" health string at 0.6.0.
"""

from __future__ import annotations

from typing import Literal

Health = Literal["active", "degraded"]

_LEASE_AND_MEMBERSHIP: dict[tuple[bool, bool], Health] = {
    (True, True): "active",
    (True, False): "degraded",
    (False, True): "degraded",
    (False, False): "degraded",
}


def delivery_health(
    daemon_known: bool,
    joined: bool,
    delivery_class: str,
    lease_live: bool,
    has_membership: bool,
) -> Health | None:
    """``active``/``degraded`` for a joined durable-class channel with a known daemon; else None."""
    if not (daemon_known and joined and delivery_class == "durable"):
        return None
    return _LEASE_AND_MEMBERSHIP[(lease_live, has_membership)]


HEALTH_SUFFIX: dict[Health, str] = {
    "degraded": (
        "durable backstop unavailable — live messages still arrive; offline replay is at risk "
        "after backlog cap"
    ),
    "active": "durable backstop active",
}
DURABLE_UNCLOSED_SUFFIX = "durable cleanup pending (§7 backstop may still deliver — retrying)"


def channel_line(
    channel: str,
    description: str = "",
    *,
    joined: bool,
    replay: bool = True,
    mode: str | None = None,
    durable_unclosed: bool = False,
    health: Health | None = None,
) -> str:
    """One ``cotal_channels`` row: ``● #ch — desc (subscribed, replay on) · …``."""
    mark = "●" if joined else "○"
    sub = "subscribed" if joined else "not subscribed"
    line = f"{mark} #{channel} — {description} ({sub}, replay {'on' if replay else 'off'})"
    if mode in ("quiet", "muted"):
        line += f" · {mode}"
    if durable_unclosed:
        line += f" · {DURABLE_UNCLOSED_SUFFIX}"
    if health is not None:
        line += f" · {HEALTH_SUFFIX[health]}"
    return line


JoinOutcome = Literal["durable", "live-only", "live", "already"]


def join_reply_text(
    channel: str, outcome: JoinOutcome, *, detail: str = "", reason: str = ""
) -> str:
    """The ``cotal_join`` reply for each outcome (``detail``/``reason`` fill the parentheses)."""
    if outcome == "already":
        return f"Already on #{channel}."
    if outcome == "live":
        return f"Joined #{channel} (live)."
    if outcome == "durable":
        return f"Joined #{channel} (durable backstop active — {detail})"
    return (
        f"Joined #{channel} (LIVE only — {reason}; messages sent while you're offline won't be "
        "replayed)"
    )
