"""Read the 0.9.0 reference's membership feed bucket (protocol/membership_feed.py) in one sweep.

No consumer is created: one ``STREAM.INFO`` with a subjects filter lists the keys (history 1, so
one message per key), then one direct get per key. A bucket that does not exist reads as None.
"""

from __future__ import annotations

from dataclasses import dataclass

import nats.errors
import nats.js.errors

from cotal_tui.mesh.connection import Connection
from cotal_tui.mesh.kv import KvBucket, KvUnavailable
from cotal_tui.protocol.membership_feed import (
    FEED_KEY,
    FeedHeartbeat,
    FeedRecord,
    membership_bucket,
    parse_heartbeat,
    parse_record,
)

MAX_KEYS = 2000
"""A sweep reads at most this many agents' records (a space with more is not this console's)."""


@dataclass(frozen=True, slots=True)
class FeedRead:
    records: tuple[FeedRecord, ...]
    heartbeat: FeedHeartbeat | None


def _ignore(refusal: object) -> None:
    return None


async def read_membership_feed(conn: Connection, space: str) -> FeedRead | None:
    """Every agent record and the heartbeat; None when the bucket does not exist.

    Raises :class:`KvUnavailable` (its text says why) when the broker does not answer or the
    credential may not read the bucket."""
    bucket = KvBucket(conn, membership_bucket(space))
    # A cred that may not read the bucket is refused through error_cb; that refusal is this
    # reader's answer (the timeout below), not an endpoint error for the console to show.
    for verb in ("STREAM.INFO", "STREAM.MSG.GET"):
        conn.on_refusal(f"$JS.API.{verb}.{bucket.stream}", _ignore)
    try:
        info = await conn.js.stream_info(bucket.stream, subjects_filter=f"{bucket.prefix}>")
    except nats.js.errors.NotFoundError:
        return None
    except (nats.errors.TimeoutError, nats.errors.NoRespondersError, nats.js.errors.Error) as exc:
        raise KvUnavailable(
            f"reading {bucket.bucket} failed ({type(exc).__name__}); the credential may not "
            "read the membership feed"
        ) from exc
    subjects = sorted((info.state.subjects or {}) if info.state else {})[:MAX_KEYS]
    records: list[FeedRecord] = []
    heartbeat: FeedHeartbeat | None = None
    for subject in subjects:
        key = subject[len(bucket.prefix) :]
        entry = await bucket.get(key)
        if entry is None:
            continue
        if key == FEED_KEY:
            heartbeat = parse_heartbeat(entry.value)
        elif (record := parse_record(key, entry.value)) is not None:
            records.append(record)
    return FeedRead(tuple(records), heartbeat)
