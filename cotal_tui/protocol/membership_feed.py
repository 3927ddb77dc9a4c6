"""The 0.9.0 reference's broker-sourced membership feed (PROTOCOL §7.3, §9), pure.

Bucket ``cotal_membership_<space>`` (history 1, 64 MiB cap), one key per agent id holding
``{"live": [pattern…], "durable": [channel…], "observedAt": ms}`` — ``live`` are the chat
subscription patterns the broker's CONNZ reports for the agent's connections (wildcards kept,
e.g. ``team.>``), ``durable`` the concrete channels of its open, activated members-registry
records — plus the reserved key ``=feed``: ``{"observedAt": ms, "count": n}``, re-stamped by every
complete poll. Written by the 0.9.0 delivery daemon when it holds the feed's scoped creds
(``core/dist/membership-feed.js``); 0.6.0 has no such bucket.

The reference calls the feed display-only ("never an input to delivery/ACL/authorization"), and
so does this console: it is shown, never counted as evidence for a verdict.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from cotal_tui.protocol.channels import subject_matches
from cotal_tui.protocol.subjects import token

FEED_KEY = "=feed"


def membership_bucket(space: str) -> str:
    return f"cotal_membership_{token(space)}"


@dataclass(frozen=True, slots=True)
class FeedRecord:
    """One agent's record: who the broker says is subscribed where, and what is durable."""

    id: str
    live: tuple[str, ...]
    durable: tuple[str, ...]
    observed_at: int | None

    def on(self, channel: str) -> tuple[bool, bool]:
        """(reads it live per CONNZ — a pattern matches —, holds a durable membership of it)."""
        return any(subject_matches(p, channel) for p in self.live), channel in self.durable


@dataclass(frozen=True, slots=True)
class FeedHeartbeat:
    observed_at: int | None
    count: int | None


def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(v for v in value if isinstance(v, str) and v)


def _ms(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _object(data: bytes) -> dict[str, Any] | None:
    try:
        obj = json.loads(data)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def parse_record(key: str, data: bytes) -> FeedRecord | None:
    """An agent's record, or None when the value is not a feed record (garbled, or the
    heartbeat key)."""
    if key == FEED_KEY:
        return None
    obj = _object(data)
    if obj is None or not ("live" in obj or "durable" in obj):
        return None
    return FeedRecord(key, _strings(obj.get("live")), _strings(obj.get("durable")),
                      _ms(obj.get("observedAt")))  # fmt: skip


def parse_heartbeat(data: bytes) -> FeedHeartbeat | None:
    obj = _object(data)
    if obj is None:
        return None
    count = obj.get("count")
    return FeedHeartbeat(_ms(obj.get("observedAt")), count if isinstance(count, int) else None)
