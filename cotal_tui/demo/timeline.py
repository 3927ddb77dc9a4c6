"""When the scripted cases happen, and how fast everything ticks.

Offsets are seconds from the start of the simulation. The default is paced for a person watching
the console (each case visible for several seconds, chatter at a few messages per second in
total); :meth:`Timeline.fast` compresses it for tests.
"""

from __future__ import annotations

from dataclasses import dataclass

from cotal_tui.protocol.names import HEARTBEAT_MS, PRESENCE_TTL_MS


@dataclass(frozen=True)
class Timeline:
    daemon_after_s: float = 6.0
    """The early bird boots at 0 with no daemon; the in-process daemon binds at this offset."""
    stagger_s: float = 0.4
    """The other agents boot one by one after the daemon, this far apart."""
    crash_after_s: float = 22.0
    """The crasher dies (no graceful offline); the roster sweeps it offline a TTL later."""
    narrow_after_s: float = 36.0
    """The narrowed agent loses a channel from its read ACL and is kicked to reconnect."""
    responder_pause_s: float = 7.0
    """While the ACL changes, the daemon's ctl.delivery responder is paused this long (a daemon
    hiccup), so the refused membership's leave fails and is retried until it lands."""
    reboot_after_s: float | None = 60.0
    """The crashed agent comes back (same identity) at this offset; None keeps it dead."""
    chatter_every_s: tuple[float, float] = (1.5, 4.5)
    """Each agent acts once per uniform(lo, hi) seconds: ~2-3 actions/s in total for 8 agents."""
    ttl_ms: int = PRESENCE_TTL_MS
    heartbeat_ms: int = HEARTBEAT_MS
    sweep_ms: int | None = None
    watch_heartbeat_ms: int = 1000
    backoff_base_s: float = 1.0
    backoff_max_s: float = 30.0

    @classmethod
    def fast(cls) -> Timeline:
        """Every case within ~6 s, for headless tests."""
        return cls(
            daemon_after_s=1.5,
            stagger_s=0.05,
            crash_after_s=2.5,
            narrow_after_s=3.0,
            responder_pause_s=2.0,
            reboot_after_s=None,
            chatter_every_s=(0.2, 0.6),
            ttl_ms=1500,
            heartbeat_ms=300,
            sweep_ms=300,
            watch_heartbeat_ms=300,
            backoff_base_s=0.3,
            backoff_max_s=1.0,
        )
