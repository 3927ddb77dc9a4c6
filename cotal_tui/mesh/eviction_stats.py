"""``evictedBeforeRouting`` as the serving delivery daemon counts it, read over ``ctl.delivery``.

The daemon's fan-out counts, per channel, CHAT messages that CHAT's per-sender cap evicted
before it routed them (delivery/chat_gaps.py): they never reached offline durable members. A
daemon in another process says so only when asked (the ``deliveryStats`` op); `status --json`
and the console both read it here. A figure that could not be read is ``None`` with the reason
in ``evictedBeforeRoutingUnknown`` — never 0. The same for ``belowFloorAtBind`` (what a dead
predecessor held that CHAT evicted below the floor before this daemon bound): ``None`` with
``belowFloorAtBindUnknown`` when the daemon could not count it.
"""

from __future__ import annotations

from typing import Any

from cotal_tui.mesh.endpoint import Endpoint

OP_DELIVERY_STATS = "deliveryStats"
UNKNOWN_CHANNEL = "?"


async def read_evictions(
    ep: Endpoint, answered: bool, why_not: str = "", *, timeout: float = 2.0
) -> dict[str, Any]:
    """``{"evictedBeforeRouting": {channel: n} | None, "evictedBeforeRoutingSince": ms | None}``
    plus ``evictedBeforeRoutingUnknown`` (why) when it could not be read. ``answered``: a
    daemon answered the responder probe (otherwise nobody is asked and the reason is
    ``why_not``)."""
    out: dict[str, Any] = {"evictedBeforeRouting": None, "evictedBeforeRoutingSince": None}
    if not answered:
        out["evictedBeforeRoutingUnknown"] = f"no daemon answered ({why_not or 'not probed'})"
        return out
    try:
        reply = await ep.request_delivery(OP_DELIVERY_STATS, {}, timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - reported as unknown
        out["evictedBeforeRoutingUnknown"] = (
            f"the daemon did not answer {OP_DELIVERY_STATS} ({exc or type(exc).__name__})"
        )
        return out
    data = reply.data if reply.ok and isinstance(reply.data, dict) else None
    counts = data.get("evictedBeforeRouting") if data else None
    if not isinstance(counts, dict):
        out["evictedBeforeRoutingUnknown"] = (
            f"the daemon does not report it ({reply.error or 'no figures in its answer'})"
        )
        return out
    try:
        out["evictedBeforeRouting"] = {str(k): int(v) for k, v in counts.items()}
    except (TypeError, ValueError):
        out["evictedBeforeRoutingUnknown"] = "the daemon's figures are not counts"
        return out
    out["evictedBeforeRoutingSince"] = data.get("since") if data else None
    if data and "belowFloorAtBindUnknown" in data:  # a daemon that counts below its floor
        out["belowFloorAtBind"] = data.get("belowFloorAtBind")
        out["belowFloorAtBindUnknown"] = data.get("belowFloorAtBindUnknown")
    return out


def eviction_words(delivery: Any) -> list[str]:
    """The figures in plain words: one line per channel that lost any, or one line saying the
    figure is unknown (and why); nothing when the daemon counted none."""
    if not isinstance(delivery, dict) or "evictedBeforeRouting" not in delivery:
        return []
    counts = delivery.get("evictedBeforeRouting")
    if not isinstance(counts, dict):
        why = delivery.get("evictedBeforeRoutingUnknown") or "not read"
        return [f"evicted before routing: unknown — {why}"]
    return below_floor_words(delivery) + [
        f"{n} message{'s' if n != 1 else ''} on "
        + ("an unknown channel" if ch == UNKNOWN_CHANNEL else f"#{ch}")
        + " never reached offline members: evicted before routing"
        for ch, n in sorted(counts.items())
        if n
    ]


def below_floor_words(delivery: dict[str, Any]) -> list[str]:
    """One line when the daemon could not count, at its bind, the copies a dead daemon held
    that CHAT evicted below the fan-out's floor (e.g. a cred without the single-read grant)."""
    why = delivery.get("belowFloorAtBindUnknown")
    if not why:
        return []
    return [f"{BELOW_FLOOR_UNKNOWN} — {why}"]


BELOW_FLOOR_UNKNOWN = "evicted below the floor at bind (a dead daemon's copies): unknown"
